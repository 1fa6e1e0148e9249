"""Impressions and clicks: a click is charged once, only on an ad served, and never past a budget, also
when threads and processes charge at once, on SQLite and PostgreSQL."""

from __future__ import annotations

import multiprocessing
import random
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select

from db import experiments as experiment_store
from db.engine import session_scope
from db.models import AdCampaign, AdClick, AdSpendDay
from recsys.ads import campaigns
from recsys.ads.campaigns import ClickCharge, Impression
from tests.ads.conftest import OPERATOR

DAY = datetime(2026, 12, 1, 9)
IMPRESSIONS = 60  # served, each clicked by every worker under the same event id
PRICE = 0.3  # 60 clicks would cost 18.0


def _campaign(url: str, **changes) -> int:
    fields = {"advertiser": "Acme", "name": "Mugs", "products": ["P1", "P2"], "max_cpc": 0.5,
              "daily_budget": 10.0, "starts_at": DAY - timedelta(days=1), **changes}
    return campaigns.create_campaign(OPERATOR, **fields, url=url).campaign_id


def _ledger(url: str, campaign_id: int) -> dict:
    """What SQL holds of the campaign's spend, three ways, and its clicks."""
    with session_scope(url) as session:
        clicks, charged = session.execute(
            select(func.count(), func.coalesce(func.sum(AdClick.price_charged), 0.0))
            .where(AdClick.campaign_id == campaign_id)).one()
        return {"clicks": clicks, "charged": charged,
                "campaign": session.get(AdCampaign, campaign_id).spent,
                "days": session.scalar(select(func.sum(AdSpendDay.spent))
                                       .where(AdSpendDay.campaign_id == campaign_id))}


def test_a_click_is_charged_once_and_only_on_an_ad_served(shop):
    campaign = _campaign(shop)
    served = [Impression("r1", campaign, "P1", 1, 0.4, unit="session:s1", at=DAY),
              Impression("r1", campaign, "P2", 4, 0.25, unit="session:s1", at=DAY)]
    assert campaigns.record_impressions(served) == 2
    assert campaigns.record_impressions(served) == 0  # the same request's ads again: kept once
    with session_scope(shop) as session:
        experiment_store.insert_served(session, [{"request_id": "r2", "endpoint": "/search",
                                                  "products": ["P1"], "at": DAY}])
    at = DAY + timedelta(minutes=1)
    assert campaigns.charge_click("e1", "r1", "P1", at) == ClickCharge("charged", 0.4, campaign)
    assert campaigns.charge_click("e1", "r1", "P1", at) == ClickCharge("replayed", 0.0, campaign)
    assert campaigns.charge_click("e2", "r1", "P1", at) == ClickCharge("already_clicked", 0.0, campaign)
    assert campaigns.charge_click("e3", "r1", "P3", at) == ClickCharge("not_an_ad")  # served, not as an ad
    assert campaigns.charge_click("e4", "r2", "P1", at) == ClickCharge("not_an_ad")  # a list without ads
    assert campaigns.charge_click("e5", "forged", "P1", at) == ClickCharge("unknown_request")
    with pytest.raises(ValueError, match="event_id: must be a string of 1 to 128 characters"):
        campaigns.charge_click("", "r1", "P2", at)
    with pytest.raises(ValueError, match="impression 1 .*position counts from 1"):
        campaigns.record_impressions([Impression("r3", campaign, "P1", 0, 0.4)])
    assert _ledger(shop, campaign) == {"clicks": 1, "charged": 0.4, "campaign": 0.4, "days": 0.4}

    spend = campaigns.spend_today([campaign, 999], now=at)
    assert list(spend) == [campaign]
    today = spend[campaign]
    assert (today.spent_today, today.total_spent, today.left_today) == (0.4, 0.4, 9.6)
    result = campaigns.report(OPERATOR, url=shop, now=at)
    [row] = result.campaigns
    assert (row.impressions, row.clicks, row.click_through, row.spend, row.cost_per_click) == (
        2, 1, 0.5, 0.4, 0.4)
    assert row.daily_budget_used == pytest.approx(0.04) and row.total_budget_used is None
    days = [(day.day, day.impressions, day.clicks, day.spend) for day in result.days]
    assert days == [(DAY.date(), 2, 1, 0.4)]


def test_the_daily_budget_caps_a_day_and_the_next_day_starts_afresh(shop):
    campaign = _campaign(shop, max_cpc=0.4, daily_budget=1.0)
    campaigns.record_impressions([Impression(f"r{n}", campaign, "P1", 1, 0.4, at=DAY) for n in range(6)])
    outcomes = [campaigns.charge_click(f"e{n}", f"r{n}", "P1", DAY) for n in range(4)]
    assert [(found.outcome, round(found.charged, 9)) for found in outcomes] == [
        ("charged", 0.4), ("charged", 0.4), ("capped", 0.2), ("budget_exhausted", 0.0)]
    assert campaigns.get_campaign(OPERATOR, campaign, now=DAY).status == "out_of_budget"
    assert campaigns.serving_campaigns(now=DAY) == []
    tomorrow = DAY + timedelta(days=1)
    assert campaigns.get_campaign(OPERATOR, campaign, now=tomorrow).status == "active"
    assert campaigns.charge_click("e4", "r4", "P1", tomorrow) == ClickCharge("charged", 0.4, campaign)
    assert campaigns.spend_today([campaign], now=tomorrow)[campaign].spent_today == 0.4
    days = campaigns.report(OPERATOR, campaign, now=tomorrow).days
    assert [(day.day, day.clicks, round(day.spend, 9)) for day in days] == [(DAY.date(), 4, 1.0),
                                                                            (tomorrow.date(), 1, 0.4)]


def test_a_click_never_costs_more_than_the_current_bid(shop):
    campaign = _campaign(shop, max_cpc=0.5)
    campaigns.record_impressions([Impression("r1", campaign, "P1", 1, 0.5, at=DAY)])
    campaigns.update_campaign(OPERATOR, campaign, {"max_cpc": 0.2})
    assert campaigns.charge_click("e1", "r1", "P1", DAY) == ClickCharge("capped", 0.2, campaign)


def _serve(url: str, campaign: int) -> None:
    campaigns.record_impressions([Impression(f"r{n}", campaign, "P1", 1, PRICE, at=DAY)
                                  for n in range(IMPRESSIONS)], url=url)


def click_all(url: str, seed: int) -> Counter:
    """Click every impression once, in an order of `seed`'s (event id e<n> for impression r<n>)."""
    order = list(range(IMPRESSIONS))
    random.Random(seed).shuffle(order)
    return Counter(campaigns.charge_click(f"e{n}", f"r{n}", "P1", DAY, url=url).outcome for n in order)


def _check_budget_held(url: str, campaign: int, budget: float, outcomes: Counter, workers: int) -> None:
    ledger = _ledger(url, campaign)
    assert ledger["clicks"] == IMPRESSIONS  # one click row per impression, whoever sent it first
    assert ledger["charged"] == pytest.approx(budget) and ledger["charged"] <= budget + 1e-9
    assert ledger["campaign"] == pytest.approx(ledger["charged"], abs=1e-9)
    assert ledger["days"] == pytest.approx(ledger["charged"], abs=1e-9)
    # 33 clicks at 0.3, one capped at what is left, the rest free; every other attempt a replay.
    charged = (outcomes["charged"], outcomes["capped"], outcomes["budget_exhausted"])
    assert charged == (33, 1, IMPRESSIONS - 34)
    assert outcomes["replayed"] + outcomes["already_clicked"] == IMPRESSIONS * (workers - 1)


def _threads(url: str, campaign: int, threads: int) -> Counter:
    with ThreadPoolExecutor(threads) as pool:
        return sum(pool.map(click_all, [url] * threads, range(threads)), Counter())


def test_budgets_hold_under_concurrent_clicks_from_threads(shop):
    campaign = _campaign(shop)
    _serve(shop, campaign)
    _check_budget_held(shop, campaign, 10.0, _threads(shop, campaign, 8), 8)


def _in_process(url: str, seed: int, start, results) -> None:
    start.wait(60)  # both processes click at once, each having imported and connected
    results.put(click_all(url, seed))


def test_budgets_hold_under_concurrent_clicks_from_processes(shop):
    campaign = _campaign(shop, total_budget=10.0)  # the total and the daily budget bind at once
    _serve(shop, campaign)
    context = multiprocessing.get_context("spawn")  # a fresh interpreter, as a second service process
    results, start = context.Queue(), context.Barrier(2)
    workers = [context.Process(target=_in_process, args=(shop, seed, start, results)) for seed in range(2)]
    for worker in workers:
        worker.start()
    outcomes = sum((results.get(timeout=60) for _ in workers), Counter())
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    _check_budget_held(shop, campaign, 10.0, outcomes, 2)
    assert campaigns.get_campaign(OPERATOR, campaign, url=shop).status == "out_of_budget"


@pytest.mark.postgres
def test_budgets_hold_under_concurrent_clicks_on_postgresql(pg_shop):
    campaign = _campaign(pg_shop, total_budget=10.0)
    _serve(pg_shop, campaign)
    _check_budget_held(pg_shop, campaign, 10.0, _threads(pg_shop, campaign, 8), 8)
