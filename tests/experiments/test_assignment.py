"""Who an experiment takes, which arm, team-draft interleaving and its credit."""

from __future__ import annotations

import random

import pytest

from recsys.experiments.analysis import ab_result, interleaving_result
from recsys.experiments.assignment import ab_arm, credit, in_experiment, team_draft


def test_traffic_share_and_arms_are_stable_hashes_of_the_unit():
    units = [f"session:{i}" for i in range(4000)]
    taken = [unit for unit in units if in_experiment(7, unit, 0.25)]
    assert 0.22 < len(taken) / len(units) < 0.28
    assert taken == [unit for unit in units if in_experiment(7, unit, 0.25)]  # the same every time
    arms = [ab_arm(7, unit) for unit in units]
    assert 0.46 < arms.count("control") / len(arms) < 0.54
    assert arms == [ab_arm(7, unit) for unit in units]
    assert not in_experiment(7, None, 1.0)  # no session, no experiment
    # Another experiment splits independently.
    other = {unit for unit in units if in_experiment(8, unit, 0.25)}
    assert 0.03 < len(other & set(taken)) / len(units) < 0.10


@pytest.mark.parametrize("seed", range(20))
def test_team_draft_keeps_each_lists_order_and_balances_the_teams(seed):
    rng = random.Random(seed)
    control = rng.sample("abcdefghij", 8)
    treatment = rng.sample("abcdefghij", 8)
    products, teams = team_draft(control, treatment, 10, random.Random(seed))
    assert len(products) == len(set(products)) == len(teams)
    assert set(products) == set(control) | set(treatment) or len(products) == 10
    for team, ranking in (("control", control), ("treatment", treatment)):
        picked = [product for product, by in zip(products, teams) if by == team]
        assert picked == sorted(picked, key=ranking.index)  # a team picks in its list's order
    # Lists with nothing in common never run dry: at every prefix the teams differ by at most one.
    products, teams = team_draft(control, [p.upper() for p in treatment], 10, random.Random(seed))
    for cut in range(1, len(teams) + 1):
        assert abs(teams[:cut].count("control") - teams[:cut].count("treatment")) <= 1


def test_team_draft_of_identical_lists_is_that_list_and_one_empty_list_gives_the_other():
    products, teams = team_draft(list("abc"), list("abc"), 3, random.Random(0))
    assert products == list("abc")
    products, teams = team_draft([], list("xyz"), 5, random.Random(0))
    assert products == list("xyz") and teams == ["treatment"] * 3


def test_credit_counts_distinct_clicked_positions_per_team():
    teams = ["control", "treatment", "control", "treatment"]
    assert credit(teams, []) is None
    assert credit(teams, [2]) == "treatment"
    assert credit(teams, [1, 2]) == "tie"
    assert credit(teams, [1, 1, 1, 2]) == "tie"  # a position clicked again counts once
    assert credit(teams, [1, 3, 4]) == "control"
    assert credit(teams, [9]) is None  # a position past the list credits nobody
    with_ad = [None, "control", "treatment"]  # a sponsored product at position 1 is neither arm's
    assert credit(with_ad, [1]) is None and credit(with_ad, [1, 3]) == "treatment"


def test_interleaving_sign_test_and_sessions_still_needed():
    even = interleaving_result(50, 50, 10, sessions=200)
    assert even["winner"] is None and even["p_value"] == pytest.approx(1.0)
    clear = interleaving_result(30, 70, 5, sessions=200)
    assert clear["winner"] == "treatment" and clear["p_value"] < 0.001
    assert clear["sessions_still_needed"] == 0 or clear["decided_needed"] > 100
    early = interleaving_result(3, 5, 0, sessions=16)
    # 782 decided impressions detect a 55% win rate; 8 came from 16 sessions: about 1,550 more.
    assert early["decided_needed"] == 783 and 1500 < early["sessions_still_needed"] < 1600
    assert interleaving_result(0, 0, 0, sessions=0)["sessions_still_needed"] is None


def test_ab_two_proportion_test_per_arm():
    result = ab_result({"sessions": 2000, "clicked": 200, "bought": 20},
                       {"sessions": 2000, "clicked": 300, "bought": 22})
    assert result["winner"] == "treatment" and result["p_value"] < 0.001
    assert result["arms"]["treatment"]["ctr"] == pytest.approx(0.15)
    assert result["p_value_conversion"] > 0.5
    assert result["sessions_still_needed"] > 20_000  # a 10% lift on a 10% rate needs ~29,000 sessions
    assert ab_result({"sessions": 0}, {"sessions": 0})["winner"] is None
