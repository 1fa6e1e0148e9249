"""The reranker contract: a second stage that reorders the first `top_n` of a hybrid's fused list.

A `Reranker` receives, for each query, a `RerankRequest`: the query as searched, the fused items to
reorder, their product texts and, when the reranker reads them (`uses_sources`), each source's
`SourceSignals` (its raw score of every item, whether it matches it, its own top, each item's
place in that top and how many products it matches), which the hybrid computes from its own sources. A reranker only scores
(`scores`); the base reorders (`rerank`): the reordered items take the fused scores of the places
they land on, so the list still falls in score and the rules' boost span is unchanged, and each
carries a `RerankScore` under ``sources["rerank"]`` (its score, its rank before and after, which
kind of model) for the explanation panel. Equal scores keep the fused order.

Kinds register themselves in `RERANKERS` (one file each: `cross_encoder.py`, `ltr.py`) and say which
folders hold one of theirs (`holds`); `load_reranker(folder)` opens the right one, `kind_of(folder)`
names it without loading the model. Contract tests run
over every registered kind (tests/search/test_rerankers.py).

>>> reranker = load_reranker("var/models/reranker/job7")                            # doctest: +SKIP
>>> requests = hybrid.rerank_requests(["toilet seat"], [fused[:100]], reranker.sources)  # doctest: +SKIP
>>> reranker.rerank([fused], requests)                                               # doctest: +SKIP
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np

from recsys.fusion.base import ACTIVE_RERANKER, FusedItem, SourceScore
from recsys.registry import Registry

RERANK_SOURCE = "rerank"
RERANKERS = Registry("reranker")


@dataclass
class RerankScore(SourceScore):
    """The reranker's part in a reranked item: `rank` is its place after the rerank,
    `fused_rank` its place in the fused list before; `score` and `normalised` are the
    reranker's score (a cross-encoder's probability, a learned ranker's score);
    `contribution` is how much the item's score changed."""

    fused_rank: int = 0
    by: str = ""  # the kind of model that scored it (`Reranker.kind`)


@dataclass
class SourceSignals:
    """What one source of the hybrid says of a query's items to rerank."""

    scores: np.ndarray  # its raw score of each item, 0 where it does not match the item
    matched: np.ndarray  # whether it matches each item at all
    top: list[tuple[str, float]]  # its own best (product_id, raw score), `depth` of them at most, best first
    ranks: np.ndarray  # each item's place in `top` (1 = its best); depth + 1 when not in it
    matches: int  # how many catalog products it matches


@dataclass
class RerankRequest:
    """One query's items to reorder, with what a reranker may read of them."""

    query: str  # as searched: misspelled words corrected
    items: list[FusedItem]  # the fused list's first `top_n`, best first
    texts: list[str]  # each item's product text
    sources: dict[str, SourceSignals] = field(default_factory=dict)  # filled when `uses_sources`


class Reranker(ABC):
    """Base of every reranker; see the module docstring for the contract."""

    kind: ClassVar[str]
    # Whether it reads the sources' signals (the hybrid then computes them); else only the texts.
    uses_sources: ClassVar[bool] = False

    @staticmethod
    @abstractmethod
    def holds(folder: Path) -> bool:
        """Whether `folder` holds a saved reranker of this kind."""

    @abstractmethod
    def scores(self, requests: Sequence[RerankRequest]) -> list[np.ndarray]:
        """Each request's score of each of its items, higher first."""

    @property
    def sources(self) -> list[str] | None:
        """The hybrid's sources it reads (None: all of them)."""
        return None

    @property
    def depth(self) -> int | None:
        """How many of each source's best items its signals' `top` should hold (None: the fusion's)."""
        return None

    def check_fits(self, hybrid) -> None:
        """ValueError when this reranker cannot rerank for `hybrid` (a `HybridRetriever`): e.g. it
        was trained over another embedding model or another catalog. Nothing to check by default."""

    @classmethod
    def saved_top_n(cls, folder: Path) -> int | None:
        """How many fused items the reranker saved in `folder` was trained to order, when it was
        trained for a number (read without loading the model)."""
        return None

    def rerank(self, items: Sequence[Sequence[FusedItem]], requests: Sequence[RerankRequest]) -> list[list[FusedItem]]:
        """Each query's fused `items` with its request's items (its first ones) reordered by `scores`."""
        return reordered(items, [request.items for request in requests], self.scores(requests), self.kind)


def register(cls: type[Reranker]) -> type[Reranker]:
    """Class decorator: make a reranker kind available to `load_reranker` (under its `kind`)."""
    cls.name = cls.kind
    return RERANKERS.register(cls)


def kind_of(model_path: str | os.PathLike) -> type[Reranker] | None:
    """The registered kind of reranker saved in `model_path`, None when none is."""
    folder = Path(model_path)
    return next((cls for cls in RERANKERS.values() if cls.holds(folder)), None)


def load_reranker(model_path: str | os.PathLike) -> Reranker:
    """The reranker saved in `model_path`, of whichever registered kind holds it (FileNotFoundError
    naming the kinds otherwise). A config that reranks with ACTIVE_RERANKER is resolved to a folder
    before it is searched with (`recsys.active.Active.resolve`), once, not at every search."""
    if str(model_path) == ACTIVE_RERANKER:
        raise ValueError("this fusion config reranks with the active reranker, which was not resolved to "
                         "its folder: resolve it with recsys.active.Active.resolve before searching")
    folder = Path(model_path)
    cls = kind_of(folder)
    if cls is not None:
        return cls(folder)
    raise FileNotFoundError(f"{folder} holds no reranker: none of {', '.join(RERANKERS.names())} was saved "
                            "there; train one on the Fine-tune page")


def reordered(items: Sequence[Sequence[FusedItem]], tops: Sequence[Sequence[FusedItem]],
              scores: Sequence[np.ndarray], by: str) -> list[list[FusedItem]]:
    """Each query's `items` with its first ``len(top)`` items ordered by `scores`, higher first.

    The reordered items take the fused scores of the places they land on and
    carry a `RerankScore` (`by` names the model); equal scores keep the fused order.
    """
    results = []
    for ranked, top, values in zip(items, tops, scores):
        values = np.asarray(values, dtype=np.float64)
        # Python ints and floats, and positional arguments: half the time of indexing numpy
        # arrays item by item with keywords (0.15 against 0.28 ms for 100 items), in every search.
        order = np.argsort(-values, kind="stable").tolist()
        values = values.tolist()
        moved = []
        for rank, (position, place) in enumerate(zip(order, top), 1):
            item = top[position]
            value = values[position]
            sources = item.sources.copy()
            # rank, score, normalised, contribution, fused_rank, by
            sources[RERANK_SOURCE] = RerankScore(rank, value, value, place.score - item.score, position + 1, by)
            moved.append(FusedItem(item.product_id, place.score, sources, list(item.effects)))
        results.append(moved + list(ranked[len(top):]))
    return results


