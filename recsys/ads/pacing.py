"""Budget pacing: spread a campaign's daily spend over the day, and never spend past a budget.

Without pacing, a campaign whose budget is small against the traffic that wants it spends it all
in the morning and is absent the rest of the day. Probabilistic throttling (Agarwal et al.,
"Budget pacing for targeted online advertisements at LinkedIn", KDD 2014; Xu et al., "Smart
pacing for effective online ad campaign optimization", KDD 2015) lets a campaign take part in only
a share of the auctions it qualifies for, and lowers that share when it spends faster than planned.

- `planned_share`: the share of the daily budget the plan has spent by a time of day: uniform, or
  following a traffic curve (the day's traffic in equal periods, e.g. 24 hourly counts), so that a
  shop with evening traffic keeps budget for the evening;
- `pacing_rate`: the probability that a campaign takes part in an auction now: 1 while its spend
  is at or under the plan, falling linearly to 0 when it is `tolerance` of the daily budget ahead
  of it. Stateless: it reads only what was spent, so several service processes agree;
- `takes_part`: one draw of that probability from a given random generator (deterministic for a
  seeded one);
- `affordable`: whether a price still fits in what is left of the daily and the total budget. An
  auction asks it of the bid (the most a click can cost) before the campaign takes part, and the
  charge of a click asks it again of the price.

>>> round(pacing_rate(spent_today=30.0, daily_budget=100.0, elapsed=0.5), 3)
1.0
>>> round(pacing_rate(spent_today=51.0, daily_budget=100.0, elapsed=0.5), 3)
0.5
>>> affordable(0.8, spent_today=99.5, daily_budget=100.0)
False
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

DEFAULT_TOLERANCE = 0.02


def _check_elapsed(elapsed: float) -> float:
    if not 0 <= elapsed <= 1:
        raise ValueError(f"the elapsed share of the day must be from 0 to 1, not {elapsed}")
    return float(elapsed)


def planned_share(elapsed: float, traffic: Sequence[float] | None = None) -> float:
    """The share of the day's budget the plan has spent once `elapsed` (0 to 1) of the day has passed.

    `traffic`: the expected traffic of the day's equal periods (any positive scale); the plan then
    spends as traffic comes, linearly within a period. None: uniformly over the day.

    >>> planned_share(0.25), planned_share(0.25, traffic=[1, 3])
    (0.25, 0.125)
    """
    elapsed = _check_elapsed(elapsed)
    if traffic is None:
        return elapsed
    weights = np.asarray(traffic, dtype=np.float64)
    if len(weights) == 0 or (weights < 0).any() or weights.sum() <= 0:
        raise ValueError(f"the traffic curve must be numbers of 0 or more with a positive sum, "
                         f"not {list(traffic)}")
    cumulative = np.concatenate([[0.0], np.cumsum(weights) / weights.sum()])
    return float(np.interp(elapsed, np.linspace(0.0, 1.0, len(cumulative)), cumulative))


def pacing_rate(spent_today: float, daily_budget: float, elapsed: float,
                traffic: Sequence[float] | None = None, tolerance: float = DEFAULT_TOLERANCE) -> float:
    """The probability in [0, 1] that a campaign takes part in an auction now; see the module docstring.

    `spent_today` of `daily_budget` once `elapsed` (0 to 1) of the day has passed; `traffic` as in
    `planned_share`; `tolerance`: how far ahead of plan (a share of the daily budget) throttles to 0.
    """
    if not daily_budget > 0:
        raise ValueError(f"a daily budget must be above 0, not {daily_budget}")
    if not tolerance > 0:
        raise ValueError(f"the pacing tolerance must be above 0, not {tolerance}")
    ahead = spent_today - daily_budget * planned_share(elapsed, traffic)
    return float(np.clip(1.0 - ahead / (tolerance * daily_budget), 0.0, 1.0))


def takes_part(rate: float, rng: np.random.Generator) -> bool:
    """Whether a campaign paced at `rate` takes part in this auction: one draw from `rng`."""
    return bool(rate >= 1.0 or (rate > 0.0 and rng.random() < rate))


def affordable(price: float, spent_today: float, daily_budget: float, spent_total: float = 0.0,
               total_budget: float | None = None) -> bool:
    """Whether `price` fits in what is left of the daily budget and of the total (None: no total)."""
    if price < 0:
        raise ValueError(f"a price must be 0 or more, not {price}")
    within_day = spent_today + price <= daily_budget
    return within_day and (total_budget is None or spent_total + price <= total_budget)
