"""Side-by-side preference: two configurations' lists for a query, left and right, and the grader
picks the better one (or "same").

Which list goes left is drawn from the trial, the query and the grader alone (`first_on_left`), so
it is random across queries, stable across reruns, and says nothing of which configuration is
which; it is stored with each answer, so a bias for one side can be read back. The result
(`win_rate`) is the share of decisive answers won by the second configuration, with Wilson's 95%
interval and a two-sided binomial test against an even split (scipy); "same" counts for neither.

>>> import pandas as pd
>>> answers = pd.DataFrame({"winner": ["second"] * 8 + ["first"] * 2 + ["same"]})
>>> result = win_rate(answers)
>>> result["wins_second"], result["wins_first"], result["same"], result["rate_second"]
(8, 2, 1, 0.8)
"""

from __future__ import annotations

import hashlib
import math

import pandas as pd
from scipy import stats

WINNERS = ("first", "second", "same")


def first_on_left(trial_id: int, query: str, grader: str) -> bool:
    return hashlib.sha256(f"{trial_id}\x00{query}\x00{grader}".encode()).digest()[0] % 2 == 0


def winner_of(side: str, first_left: bool) -> str:
    """What the grader's pick of `side` ("left", "right" or "same") says of the two configurations."""
    if side not in ("left", "right", "same"):
        raise ValueError(f"a side-by-side answer is left, right or same, not {side!r}")
    if side == "same":
        return "same"
    return "first" if (side == "left") == first_left else "second"


def wilson(wins: int, n: int, z: float = 1.959964) -> tuple[float, float] | None:
    if n == 0:
        return None
    share = wins / n
    centre = (share + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(share * (1 - share) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return round(centre - half, 4), round(centre + half, 4)


def win_rate(answers: pd.DataFrame) -> dict:
    """{wins_first, wins_second, same, rate_second, ci95, p_value, left_share} of `answers` (winner,
    and first_on_left when there is one: left_share is the share of decisive answers won by the left list)."""
    wins_first = int((answers["winner"] == "first").sum())
    wins_second = int((answers["winner"] == "second").sum())
    decisive = wins_first + wins_second
    result = {"wins_first": wins_first, "wins_second": wins_second, "same": int((answers["winner"] == "same").sum()),
              "rate_second": None if decisive == 0 else round(wins_second / decisive, 4),
              "ci95": wilson(wins_second, decisive), "p_value": None, "left_share": None}
    if decisive:
        result["p_value"] = round(float(stats.binomtest(wins_second, decisive, 0.5).pvalue), 6)
        if "first_on_left" in answers:
            won = answers[answers["winner"] != "same"]
            left_won = ((won["winner"] == "first") == won["first_on_left"].astype(bool)).sum()
            result["left_share"] = round(float(left_won) / decisive, 4)
    return result
