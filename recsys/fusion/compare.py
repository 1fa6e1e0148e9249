"""How a ranked list changed: each product's move between two rankings of the same request.

The Fusion & rules page shows the active preset's list next to the working
config's and marks every product of the new list with its move: up or down by
so many places, or new to the list; products that left the list are reported
apart. Ranks are 1-based and only the lists as given are compared (a product
below the cut-off of the first list counts as new).

>>> moves = rank_moves(["a", "b", "c"], ["c", "a", "d"])
>>> [(move.product_id, move.before, move.after, move.label) for move in moves]
[('c', 3, 1, '↑2'), ('a', 1, 2, '↓1'), ('d', None, 3, 'new')]
>>> [(move.product_id, move.label) for move in dropped_out(["a", "b", "c"], ["c", "a", "d"])]
[('b', 'out')]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class RankMove:
    """Where one product stood in the first list and stands in the second (None: absent)."""

    product_id: str
    before: int | None
    after: int | None

    @property
    def change(self) -> int | None:
        """Places gained (positive: moved up); None when the product is new or gone."""
        if self.before is None or self.after is None:
            return None
        return self.before - self.after

    @property
    def label(self) -> str:
        """"↑3", "↓2", "=" (same place), "new" or "out"."""
        if self.before is None:
            return "new"
        if self.after is None:
            return "out"
        if self.change > 0:
            return f"↑{self.change}"
        if self.change < 0:
            return f"↓{-self.change}"
        return "="


def _ranks(ranking: Sequence[str]) -> dict[str, int]:
    ranks: dict[str, int] = {}
    for rank, product_id in enumerate(ranking, 1):
        ranks.setdefault(product_id, rank)  # a repeated product keeps its best rank
    return ranks


def rank_moves(before: Sequence[str], after: Sequence[str]) -> list[RankMove]:
    """The move of every product of `after` (product ids, best first) relative to `before`."""
    old = _ranks(before)
    return [RankMove(product_id, old.get(product_id), rank) for product_id, rank in _ranks(after).items()]


def dropped_out(before: Sequence[str], after: Sequence[str]) -> list[RankMove]:
    """The products of `before` missing from `after`, in their old order."""
    new = _ranks(after)
    return [RankMove(product_id, rank, None) for product_id, rank in _ranks(before).items()
            if product_id not in new]
