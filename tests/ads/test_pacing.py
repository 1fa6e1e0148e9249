"""Pacing: a simulated day of traffic spends a small budget across the day and never past it, while
a campaign with ample budget is never throttled."""

from __future__ import annotations

import numpy as np
import pytest

from recsys.ads.pacing import affordable, pacing_rate, planned_share, takes_part

EVENING = [1, 1, 1, 1, 1, 1, 2, 3, 4, 4, 4, 4, 4, 4, 4, 5, 6, 8, 10, 12, 12, 10, 6, 3]  # hourly


def simulated_day(daily_budget: float, paced: bool = True, traffic=None, auctions: int = 20_000,
                  seed: int = 0):
    """(spend by auction, participations): a campaign that would win every auction it enters, clicked
    a tenth of the time at a price from 0.3 to 0.7; auctions come as `traffic` (hourly) says."""
    rng = np.random.default_rng(seed)
    hourly = np.ones(24) if traffic is None else np.asarray(traffic, dtype=float)
    hours = rng.choice(24, size=auctions, p=hourly / hourly.sum())
    times = np.sort((hours + rng.random(auctions)) / 24)
    spent, spend, joined = 0.0, np.zeros(auctions), 0
    for i, elapsed in enumerate(times):
        rate = pacing_rate(spent, daily_budget, elapsed, traffic) if paced else 1.0
        if not takes_part(rate, rng) or not affordable(0.7, spent, daily_budget):
            continue
        joined += 1
        if rng.random() < 0.1:
            price = rng.uniform(0.3, 0.7)
            assert affordable(price, spent, daily_budget)
            spent += price
            spend[i] = price
    return times, spend, joined


def test_a_small_budget_is_spent_across_the_day_and_never_exceeded():
    budget = 100.0  # against a demand of about 20,000 x 0.1 x 0.5 = 1,000
    times, spend, _ = simulated_day(budget)
    assert 0.97 * budget < spend.sum() <= budget
    assert spend[times < 0.5].sum() <= 0.53 * budget
    quarters = [spend[(times >= q / 4) & (times < (q + 1) / 4)].sum() / spend.sum() for q in range(4)]
    assert all(0.2 < share < 0.3 for share in quarters)


def test_without_pacing_the_same_budget_is_gone_in_the_morning():
    times, spend, _ = simulated_day(100.0, paced=False)
    assert spend.sum() <= 100.0
    assert spend[times < 0.25].sum() > 0.95 * spend.sum()


def test_the_plan_can_follow_a_traffic_curve():
    budget = 100.0
    times, spend, _ = simulated_day(budget, traffic=EVENING, auctions=30_000)
    assert spend.sum() <= budget
    evening = planned_share(1.0, EVENING) - planned_share(18 / 24, EVENING)
    assert spend[times >= 18 / 24].sum() / spend.sum() == pytest.approx(evening, abs=0.05)
    assert spend[times < 0.5].sum() <= (planned_share(0.5, EVENING) + 0.03) * budget


def test_ample_budget_is_not_throttled():
    times, spend, joined = simulated_day(10_000.0)
    assert joined == len(times)
    assert spend[times < 0.25].sum() > 0.2 * spend.sum()


def test_rates_plan_and_budgets():
    assert pacing_rate(0.0, 10.0, 0.0) == 1.0
    assert pacing_rate(5.2, 10.0, 0.5) == 0.0  # 2% of the budget ahead of plan
    assert pacing_rate(5.1, 10.0, 0.5) == pytest.approx(0.5)
    assert planned_share(0.5, [1, 1, 2]) == pytest.approx(0.375)  # half of the second third: 0.25 + 0.125
    assert planned_share(1.0, EVENING) == pytest.approx(1.0)
    assert affordable(1.0, spent_today=9.0, daily_budget=10.0)
    assert not affordable(1.0, spent_today=9.5, daily_budget=10.0)
    assert not affordable(1.0, spent_today=0.0, daily_budget=10.0, spent_total=49.5, total_budget=50.0)
    assert affordable(1.0, spent_today=0.0, daily_budget=10.0, spent_total=49.0, total_budget=50.0)
    rng_a, rng_b = np.random.default_rng(1), np.random.default_rng(1)
    assert [takes_part(0.3, rng_a) for _ in range(50)] == [takes_part(0.3, rng_b) for _ in range(50)]
    assert not takes_part(0.0, rng_a) and takes_part(1.0, rng_a)


@pytest.mark.parametrize("call, message", [
    (lambda: pacing_rate(1.0, 0.0, 0.5), "a daily budget must be above 0"),
    (lambda: pacing_rate(1.0, 10.0, 1.5), "elapsed share of the day must be from 0 to 1"),
    (lambda: planned_share(0.5, [0, 0]), "traffic curve must be numbers of 0 or more with a positive sum"),
    (lambda: affordable(-1.0, 0.0, 10.0), "a price must be 0 or more"),
])
def test_bad_values_are_refused(call, message):
    with pytest.raises(ValueError, match=message):
        call()
