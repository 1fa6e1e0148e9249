"""Who is in an experiment, which arm they get, and team-draft interleaving.

A unit (a session, or a user when no session is sent) is in an experiment when a stable hash of
(experiment, unit) falls under the experiment's traffic share, and an A/B unit's arm is another
stable hash of the same: a returning session always sees the same arm, and two experiments split
traffic independently.

Team-draft interleaving (Radlinski, Kurup and Joachims, CIKM 2008): the two lists take turns, like
captains picking teams, the team with fewer picks going next and a coin toss deciding ties; each
pick is that list's best product not yet in the merged list. A click credits the team that picked
the product; the list with more clicked picks wins the impression, equal counts are a tie.

>>> import random
>>> products, teams = team_draft(["a", "b", "c"], ["b", "d", "a"], 4, random.Random(1))
>>> sorted(products) == ["a", "b", "c", "d"] and sorted(set(teams)) == ["control", "treatment"]
True
>>> credit(["control", "treatment", "control"], [1, 3])
'control'
"""

from __future__ import annotations

import hashlib
import random

CONTROL, TREATMENT = "control", "treatment"
ARMS = (CONTROL, TREATMENT)
INTERLEAVED = "interleaved"


def _unit_hash(experiment_id: int, unit: str, salt: str) -> float:
    digest = hashlib.blake2b(f"{experiment_id}:{salt}:{unit}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2 ** 64


def in_experiment(experiment_id: int, unit: str | None, traffic: float) -> bool:
    """Whether `unit` takes part; a request without a session or user never does."""
    return unit is not None and _unit_hash(experiment_id, unit, "traffic") < traffic


def ab_arm(experiment_id: int, unit: str) -> str:
    """The arm of an A/B unit: half control, half treatment, the same every time."""
    return CONTROL if _unit_hash(experiment_id, unit, "arm") < 0.5 else TREATMENT


def team_draft(control: list[str], treatment: list[str], k: int,
               rng: random.Random) -> tuple[list[str], list[str]]:
    """The interleaved top `k` of two rankings, and the team ("control"/"treatment") of each position."""
    lists = {CONTROL: control, TREATMENT: treatment}
    cursors = {CONTROL: 0, TREATMENT: 0}
    picks = {CONTROL: 0, TREATMENT: 0}
    products: list[str] = []
    teams: list[str] = []
    taken: set[str] = set()

    def next_of(team: str) -> str | None:
        ranking = lists[team]
        while cursors[team] < len(ranking) and ranking[cursors[team]] in taken:
            cursors[team] += 1
        return ranking[cursors[team]] if cursors[team] < len(ranking) else None

    while len(products) < k:
        candidates = {team: next_of(team) for team in ARMS}
        left = [team for team in ARMS if candidates[team] is not None]
        if not left:
            break
        if len(left) == 1:
            team = left[0]
        elif picks[CONTROL] != picks[TREATMENT]:
            team = min(ARMS, key=picks.get)
        else:
            team = CONTROL if rng.random() < 0.5 else TREATMENT
        product = candidates[team]
        products.append(product)
        teams.append(team)
        taken.add(product)
        picks[team] += 1
    return products, teams


def credit(teams: list[str | None], clicked_positions: list[int]) -> str | None:
    """Who won an interleaved impression: "control", "treatment", "tie", or None without clicks.

    `clicked_positions` are 1-based; a position clicked twice counts once; a position of no team
    (None: a sponsored product placed in the list, `recsys.ads`) credits neither arm.
    """
    clicks = {CONTROL: 0, TREATMENT: 0}
    for position in set(clicked_positions):
        if 1 <= position <= len(teams) and teams[position - 1] in clicks:
            clicks[teams[position - 1]] += 1
    if not any(clicks.values()):
        return None
    if clicks[CONTROL] == clicks[TREATMENT]:
        return "tie"
    return max(ARMS, key=clicks.get)
