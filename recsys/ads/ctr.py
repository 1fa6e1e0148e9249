"""Predicted click-through of products, from recorded impressions and clicks, corrected for position.

A product shown at the top of a page is clicked more than the same product shown lower, because
more people look there. The position-based model (Craswell et al., "An experimental comparison of
click position-bias models", WSDM 2008; Chuklin, Markov and de Rijke, "Click Models for Web
Search", 2015, ch. 3) separates the two: a click needs the position to be examined and the product
to attract, ``P(click | product i at position p) = propensity_p x ctr_i``, where ``ctr_i`` is the
product's click-through at position 1 (propensity 1) and ``propensity_p`` how often position p is
examined relative to position 1.

`CtrModel.fit` reads a frame of impressions (product_id, position from 1, clicked 0/1, and
optionally the query):

1. The propensities, by expectation-maximisation of the position-based model (Wang et al.,
   "Position bias estimation for unbiased learning to rank in personal search", WSDM 2018,
   section 4, without its regression), on the impressions counted by (unit, position), a unit
   being the (query, product) pair when the impressions name the query (a product attracts
   differently for different queries, and a product shown high for one query and low for another
   would otherwise pass its relevance off as position), else the product. A position's propensity
   is only identified when units were also shown at other positions (a share of randomised pages
   provides that): positions with fewer than `min_position_impressions` impressions, or sharing no
   unit (directly or through other positions) with position 1, take ``1 / p^eta`` instead. Only
   units shown at two positions or more take part: one seen at a single position says nothing of
   positions, and its clicks low on the page would bias their propensities up.
2. Each product's click-through at position 1 by clicks over expected examinations (COEC: clicks /
   the sum of the propensities of its impressions), with a Beta prior: its mean the log's own COEC
   (the position-corrected overall click-through), its strength `prior_strength` examinations, so
   ``ctr_i = (clicks_i + strength x mean) / (examinations_i + strength)``. A product never shown
   gets the prior mean; one shown a few times stays near it.

>>> import pandas as pd
>>> log = pd.DataFrame({"product_id": ["a", "a", "b", "b"], "position": [1, 2, 1, 2],
...                     "clicked": [1, 1, 0, 1]})
>>> model = CtrModel(prior_strength=0.0, min_position_impressions=1).fit(log)
>>> model.predict(["a", "b", "new"]).round(3).tolist()
[1.0, 0.5, 0.75]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

COLUMNS = ("product_id", "position", "clicked")


class CtrModel:
    """Position-corrected click-through per product with a Beta prior; see the module docstring.

    `prior_strength`: the prior's weight, in examinations (pseudo-impressions at position 1);
    `eta`: the exponent of ``1 / p^eta``, the propensity of positions the data cannot identify;
    `min_position_impressions`: the fewest impressions at a position to estimate its propensity;
    `iterations` / `tolerance`: when EM stops (the largest change of a propensity under `tolerance`).
    """

    def __init__(self, prior_strength: float = 100.0, eta: float = 1.0, min_position_impressions: int = 100,
                 iterations: int = 500, tolerance: float = 1e-6):
        if prior_strength < 0:
            raise ValueError(f"prior_strength must be 0 or more examinations, not {prior_strength}")
        if eta < 0:
            raise ValueError(f"eta, the exponent of the fallback propensity 1/p^eta, must be 0 or more, "
                             f"not {eta}")
        self.prior_strength, self.eta = float(prior_strength), float(eta)
        self.min_position_impressions = min_position_impressions
        self.iterations, self.tolerance = iterations, tolerance
        self.propensities = np.ones(1)  # by position - 1, relative to position 1
        # Whether each propensity was read from the data (position 1, the reference, when it was shown)
        self.estimated = np.zeros(1, dtype=bool)
        self.prior_mean = 0.0
        self._ctr: dict[str, float] = {}

    def fallback(self, positions: np.ndarray) -> np.ndarray:
        """``1 / p^eta``: the propensity of positions the data does not identify."""
        return np.asarray(positions, dtype=np.float64) ** -self.eta

    def propensity(self, positions: Sequence[int] | np.ndarray) -> np.ndarray:
        """The examination propensity of `positions` (from 1) relative to position 1."""
        positions = np.asarray(positions, dtype=np.int64)
        inside = positions <= len(self.propensities)
        return np.where(inside, self.propensities[np.minimum(positions, len(self.propensities)) - 1],
                        self.fallback(positions))

    def fit(self, impressions: pd.DataFrame) -> CtrModel:
        """Fit on `impressions`: one row per product shown, with product_id, position (1 = top),
        clicked (0/1 or bool) and optionally query. ValueError when a column is missing or a
        position is below 1."""
        missing = [column for column in COLUMNS if column not in impressions.columns]
        if missing:
            raise ValueError(f"the impressions need the column(s) {missing}; "
                             f"they have {list(impressions.columns)}")
        products = impressions["product_id"].astype(str)
        queries = impressions["query"].astype(str) if "query" in impressions.columns else ""
        frame = pd.DataFrame({"unit": queries + "\x1f" + products, "product_id": products,
                              "position": pd.to_numeric(impressions["position"]).astype(np.int64),
                              "clicked": impressions["clicked"].astype(np.float64)})
        if len(frame) and frame["position"].min() < 1:
            raise ValueError(f"positions count from 1 (the top of the page); found {frame['position'].min()}")
        cells = frame.groupby(["unit", "product_id", "position"])["clicked"].agg(["size", "sum"])
        cells = cells.reset_index()
        unit_index = np.unique(cells["unit"].to_numpy(dtype=str), return_inverse=True)[1]
        products, product_index = np.unique(cells["product_id"].to_numpy(dtype=str), return_inverse=True)
        position_index = cells["position"].to_numpy() - 1
        shown, clicks = cells["size"].to_numpy(np.float64), cells["sum"].to_numpy(np.float64)
        depth = int(position_index.max()) + 1 if len(cells) else 1
        # A unit seen at one position only says nothing of the positions (its attraction absorbs any
        # propensity), yet a click on it low on the page would push that propensity up through the
        # bound attraction <= 1: only units seen at two positions or more inform the propensities.
        spread = (np.bincount(unit_index) >= 2)[unit_index] if len(cells) else np.zeros(0, dtype=bool)
        informative = unit_index[spread], position_index[spread], shown[spread], clicks[spread]
        self.estimated = self._identified(*informative[:3], depth)
        self.propensities = self._expectation_maximisation(*informative, depth)
        examinations = np.bincount(product_index, shown * self.propensities[position_index], len(products))
        product_clicks = np.bincount(product_index, clicks, len(products))
        total = examinations.sum()
        self.prior_mean = float(min(1.0, clicks.sum() / total)) if total > 0 else 0.0
        strength = self.prior_strength
        ctr = np.divide(product_clicks + strength * self.prior_mean, examinations + strength,
                        out=np.full(len(products), self.prior_mean), where=examinations + strength > 0)
        self._ctr = dict(zip(products.tolist(), np.clip(ctr, 0.0, 1.0).tolist()))
        return self

    def predict(self, product_ids: Sequence[str]) -> np.ndarray:
        """Each product's predicted click-through at position 1; the prior mean for one never shown."""
        return np.array([self._ctr.get(str(p), self.prior_mean) for p in product_ids], dtype=np.float64)

    def predict_at(self, product_ids: Sequence[str], positions: Sequence[int]) -> np.ndarray:
        """Predicted click probability of each product at its position: propensity x click-through."""
        return self.predict(product_ids) * self.propensity(positions)

    def _identified(self, units: np.ndarray, positions: np.ndarray, shown: np.ndarray,
                    depth: int) -> np.ndarray:
        """Positions whose propensity the data identifies: enough impressions, and linked to position
        1 through units (query and product) shown at both (or through a chain of such positions)."""
        counts = np.bincount(positions, shown, depth)
        enough = counts >= self.min_position_impressions
        if not len(units) or not enough[0]:
            return np.zeros(depth, dtype=bool)
        kept = enough[positions]
        grid = np.zeros((int(units.max()) + 1, depth), dtype=bool)
        grid[units[kept], positions[kept]] = True
        linked = (grid.T.astype(np.int64) @ grid.astype(np.int64)) > 0  # positions sharing a unit
        reached = np.zeros(depth, dtype=bool)
        reached[0] = True
        frontier = reached.copy()
        while frontier.any():
            frontier = linked[frontier].any(axis=0) & ~reached
            reached |= frontier
        return reached & enough

    def _expectation_maximisation(self, units: np.ndarray, positions: np.ndarray, shown: np.ndarray,
                                  clicks: np.ndarray, depth: int) -> np.ndarray:
        """Propensities relative to position 1: EM of the position-based model over the identified
        positions, `fallback` at the others."""
        fallback = self.fallback(np.arange(1, depth + 1))
        if not self.estimated.any():
            return fallback
        estimated = self.estimated[positions]
        units, positions = units[estimated], positions[estimated]
        shown, clicks = shown[estimated], clicks[estimated]
        unclicked = shown - clicks
        examination = fallback.copy()
        per_position = np.bincount(positions, shown, depth)
        per_unit = np.bincount(units, shown)
        expected = np.bincount(units, shown * examination[positions])
        start = np.divide(np.bincount(units, clicks), expected, out=np.zeros(len(expected)),
                          where=expected > 0)
        attraction = np.clip(start, 1e-6, 1 - 1e-6)
        for _ in range(self.iterations):
            theta, gamma = examination[positions], attraction[units]
            unseen = 1.0 - theta * gamma
            # Among the impressions not clicked, the expected share examined (and not attracted) and
            # attracted (and not examined); every clicked impression was both.
            examined = clicks + unclicked * theta * (1.0 - gamma) / unseen
            attracted = clicks + unclicked * (1.0 - theta) * gamma / unseen
            updated = np.where(self.estimated, np.bincount(positions, examined, depth)
                               / np.maximum(per_position, 1), examination)
            updated = np.clip(updated, 1e-6, 1.0)
            attraction = np.clip(np.bincount(units, attracted, len(per_unit))
                                 / np.maximum(per_unit, 1), 1e-6, 1 - 1e-6)
            change = np.abs(updated / updated[0] - examination / examination[0]).max()
            examination = updated
            if change < self.tolerance:
                break
        relative = examination / examination[0]
        return np.where(self.estimated, relative, fallback)
