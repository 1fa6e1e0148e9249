"""The statistics of experiment reports.

Interleaving: each session with clicks is won by control, by treatment, or tied (one vote per
session, `recsys.experiments.report`: a session's impressions are not independent); the
treatment's share of the decided sessions is tested against one half with an exact binomial
(sign) test, ties left out. A/B: each arm's share of sessions that clicked (and that bought) is
compared with a two-proportion z-test. "Sessions still needed" is how many more sessions a test
with 5% significance and 80% power needs to detect a stated effect (statsmodels' power
analysis): a win rate of 0.5 + `effect` for interleaving, a relative lift of `effect` in the
control's click-through for A/B; 0 once that many are in. A winner named while sessions are still
needed (`early`) comes from a test looked at before its planned size: looking again and again and
stopping at the first p < 0.05 finds a difference more often than 5% of the time when there is
none, so the report says so.

>>> interleaving_result(wins_control=30, wins_treatment=60, ties=10, sessions=150)["winner"]
'treatment'
>>> ab_result({"sessions": 1000, "clicked": 100}, {"sessions": 1000, "clicked": 104})["winner"] is None
True
"""

from __future__ import annotations

import math

from scipy.stats import binomtest
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import proportion_effectsize, proportions_ztest

ALPHA = 0.05
POWER = 0.8
INTERLEAVING_EFFECT = 0.05  # a win rate of 55% against 45%
AB_EFFECT = 0.10  # a 10% relative lift in click-through


def _needed_units(effect_size: float, ratio: float) -> float:
    if effect_size == 0 or not math.isfinite(effect_size):
        return math.inf
    return float(NormalIndPower().solve_power(abs(effect_size), alpha=ALPHA, power=POWER, ratio=ratio))


def check_effect(method: str, effect: float) -> None:
    """ValueError unless `effect` is one a test can be sized for."""
    if method == "interleaving" and not 0 < effect < 0.5:
        raise ValueError(f"the effect of an interleaving experiment is the win rate above one half, "
                         f"between 0 and 0.5 (0.05: a 55% win rate), not {effect}")
    if method == "ab" and not effect > 0:
        raise ValueError(f"the effect of an A/B test is a relative lift above 0 (0.10: 10%), not {effect}")


def interleaving_result(wins_control: int, wins_treatment: int, ties: int, sessions: int,
                        effect: float = INTERLEAVING_EFFECT) -> dict:
    """Win rate, sign test, winner (significant at 5%, else None) and sessions still needed."""
    check_effect("interleaving", effect)
    decided = wins_control + wins_treatment
    p_value = float(binomtest(wins_treatment, decided, 0.5).pvalue) if decided else 1.0
    winner = None
    if decided and p_value < ALPHA:
        winner = "treatment" if wins_treatment > wins_control else "control"
    # Decided impressions needed (one-sample test of a proportion against 0.5), turned into
    # sessions at the rate sessions have given decided impressions so far.
    needed_decided = _needed_units(proportion_effectsize(0.5 + effect, 0.5), ratio=0)
    per_session = decided / sessions if sessions and decided else None
    still = (0 if decided >= needed_decided else
             None if per_session is None else math.ceil((needed_decided - decided) / per_session))
    return {"wins_control": wins_control, "wins_treatment": wins_treatment, "ties": ties,
            "win_rate_treatment": wins_treatment / decided if decided else None,
            "p_value": p_value, "test": "two-sided exact binomial (sign) test of wins, ties left out",
            "winner": winner, "effect": f"win rate {0.5 + effect:.0%}",
            "decided_needed": math.ceil(needed_decided), "sessions_still_needed": still,
            "early": still is None or still > 0}


def ab_result(control: dict, treatment: dict, effect: float = AB_EFFECT) -> dict:
    """Per-arm rates from {"sessions", "clicked"[, "bought"]}, a z-test of the click-through and
    of the conversion, the winner (click-through significant at 5%) and sessions still needed."""
    check_effect("ab", effect)
    arms = {"control": control, "treatment": treatment}
    rates = {}
    for name, arm in arms.items():
        sessions = arm.get("sessions", 0)
        rates[name] = {"ctr": arm.get("clicked", 0) / sessions if sessions else None,
                       "conversion": arm.get("bought", 0) / sessions if sessions else None}

    def z_test(key: str) -> float:
        counts = [arms[name].get(key, 0) for name in ("treatment", "control")]
        totals = [arms[name].get("sessions", 0) for name in ("treatment", "control")]
        if min(totals) == 0 or sum(counts) == 0 or sum(counts) == sum(totals):
            return 1.0
        return float(proportions_ztest(counts, totals)[1])

    p_value, p_conversion = z_test("clicked"), z_test("bought")
    winner = None
    if p_value < ALPHA:
        winner = "treatment" if rates["treatment"]["ctr"] > rates["control"]["ctr"] else "control"
    base = rates["control"]["ctr"]
    sessions = control.get("sessions", 0) + treatment.get("sessions", 0)
    still = None
    if base is not None and 0 < base < 1:
        lifted = min(base * (1 + effect), 0.999)
        per_arm = _needed_units(proportion_effectsize(lifted, base), ratio=1)
        still = max(0, math.ceil(2 * per_arm - sessions)) if math.isfinite(per_arm) else None
    return {"arms": rates, "p_value": p_value, "p_value_conversion": p_conversion,
            "test": "two-proportion z-test of sessions that clicked", "winner": winner,
            "effect": f"{effect:.0%} relative lift in click-through", "sessions_still_needed": still,
            "early": still is None or still > 0}
