"""What every fusion method shares: the fused item with its explanation, the config, `fuse`.

A fuser takes named, ranked and scored lists from any engines (``{"bm25":
[(product_id, score), ...], "semantic": [...]}``, each best first) and returns
one list of `FusedItem`s, best first. Every item carries, per source that found
it, its rank, raw score, normalised score and contribution to the fused score,
so that the explanation panel and the offline metrics read the same numbers.
A fuser composes the components that made the lists; it never subclasses them.

Methods register themselves in `FUSERS` by name (one file each: `weighted.py`,
`rrf.py`); `fuse(lists, config)` picks the one named by `config.method`.

Ties in the fused score are broken by product id, so the result does not depend
on the order in which the sources are given.

>>> config = FusionConfig(method="rrf", weights={"bm25": 1.0, "semantic": 0.5})
>>> items = fuse({"bm25": [("a", 9.1), ("b", 4.0)], "semantic": [("b", 0.8)]}, config)
>>> [(item.product_id, round(item.score, 4)) for item in items]
[('b', 0.0243), ('a', 0.0164)]
>>> items[0].sources["semantic"].rank, round(items[0].sources["semantic"].contribution, 4)
(1, 0.0082)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from recsys.ann import IndexConfig
from recsys.config import JsonConfig
from recsys.embedding_model import check_backend
from recsys.registry import Registry

Ranked = Sequence[tuple[str, float]]
FUSERS = Registry("fusion method")
# A preset's `reranker` that names no folder but whichever reranker the model registry serves:
# activating another version (or rolling back) changes what such a preset reranks with.
ACTIVE_RERANKER = "active"
NORMALISATIONS = ("minmax", "zscore")


@dataclass
class SourceScore:
    """One source's part in a fused item."""

    rank: int  # 1-based rank of the item in that source's list
    score: float  # the source's own (raw) score
    normalised: float  # the score after the method's normalisation (RRF: 1 / (k + rank))
    contribution: float  # weight x normalised: what the source adds to the fused score


@dataclass
class FusedItem:
    """A product of the fused list, its fused score and how each source and rule shaped it."""

    product_id: str
    score: float
    sources: dict[str, SourceScore] = field(default_factory=dict)
    effects: list[Any] = field(default_factory=list)  # `recsys.fusion.rules.RuleEffect`s

    def to_dict(self) -> dict:
        return {"product_id": self.product_id, "score": self.score,
                "sources": {name: vars(part) for name, part in self.sources.items()},
                "effects": [vars(effect) for effect in self.effects]}


@dataclass
class FusionConfig(JsonConfig):
    """How lists are fused, and the business rules applied after: what a preset stores.

    `weights` by source name (a source not named weighs 1; weight 0 removes a
    source); `normalisation` is used by the weighted method, `rrf_k` by RRF;
    `candidates` is how many of each source's best items are fused; `rules`
    are `recsys.fusion.rules.Rule` dicts, applied in order. `backend` is the
    encoder of the semantic source where an engine is built from the preset
    (`recsys.embeddings.BACKENDS`: "torch", "onnx-fp32", "onnx-int8"); it is
    fixed when the engine is fitted, so a live re-fusion does not change it; so is
    `semantic_index`, the semantic source's nearest-neighbour index (`recsys.ann.IndexConfig` as
    a dict, every parameter stated once saved: kind "auto" | "exact" | "hnsw" | "ivfpq",
    thresholds, HNSW and IVF-PQ parameters; None: the source's own default, "auto").
    `reranker` is ACTIVE_RERANKER ("active": the registry's active reranker, resolved by
    `recsys.active` with `with_reranker`) or a reranker folder, a learned ranker
    (`recsys.training.ltr`) or a cross-encoder (`recsys.training.reranker`), and
    `rerank_top` how many of the fused list's best items it reorders, after
    fusion and before the rules (0: no reranking); it applies to search only.
    Presets stored before these two fields existed load with reranking off.
    `min_scores` is a floor per source on its own (raw) scores: an item scoring below its
    source's floor is not that source's candidate, so a query nothing matches finds nothing
    rather than the least distant products (the semantic source's cosine; see `above_floors`).
    `sponsored` names the page's sponsored slots (`recsys.fusion.sponsored.SponsoredSlots`: positions,
    at most how many ads, relevance floor, reserve price, frequency cap); None: no ads.
    """

    method: str = "weighted"
    weights: dict[str, float] = field(default_factory=dict)
    normalisation: str = "minmax"
    rrf_k: int = 60
    candidates: int = 100
    rules: list[dict] = field(default_factory=list)
    backend: str = "torch"
    reranker: str | None = None
    rerank_top: int = 0
    min_scores: dict[str, float] = field(default_factory=dict)
    sponsored: dict | None = None
    semantic_index: dict | None = None

    def __post_init__(self) -> None:
        check_backend(self.backend)
        if self.method not in FUSERS:
            raise ValueError(f"unknown fusion method {self.method!r}; choose one of "
                             f"{', '.join(FUSERS.names())}")
        if self.normalisation not in NORMALISATIONS:
            raise ValueError(f"unknown normalisation {self.normalisation!r}; choose one of "
                             f"{', '.join(NORMALISATIONS)}")
        bad = {name: w for name, w in self.weights.items() if not isinstance(w, (int, float)) or w < 0}
        if bad:
            raise ValueError(f"fusion weights must be numbers of 0 or more, not {bad}")
        if self.rrf_k < 0:
            raise ValueError(f"the RRF constant k must be 0 or more, not {self.rrf_k}")
        if self.candidates <= 0:
            raise ValueError(f"candidates must be a positive number, not {self.candidates}")
        if isinstance(self.rerank_top, bool) or not isinstance(self.rerank_top, int) or self.rerank_top < 0:
            raise ValueError(f"rerank_top, how many fused items the reranker reorders, must be a "
                             f"whole number of 0 or more (0: off), not {self.rerank_top!r}")
        if self.reranker is not None and (not isinstance(self.reranker, str) or not self.reranker.strip()):
            raise ValueError("the reranker must be the folder of a learned ranker or a cross-encoder, "
                             f"not {self.reranker!r}")
        if self.rerank_top and self.reranker is None:
            raise ValueError(f"rerank_top is {self.rerank_top} but no reranker is set: name a reranker "
                             "folder, or set rerank_top to 0")
        self.weights = {name: float(w) for name, w in self.weights.items()}
        bad = {name: floor for name, floor in self.min_scores.items()
               if isinstance(floor, bool) or not isinstance(floor, (int, float))}
        if bad:
            raise ValueError(f"score floors must be numbers, not {bad}")
        self.min_scores = {name: float(floor) for name, floor in self.min_scores.items()}
        if self.semantic_index is not None:
            if not isinstance(self.semantic_index, dict):
                raise ValueError("semantic_index must be a dict of recsys.ann.IndexConfig parameters, "
                                 f"e.g. {{'kind': 'hnsw'}}, not {self.semantic_index!r}")
            try:
                self.semantic_index = IndexConfig.from_dict(self.semantic_index).to_dict()
            except (TypeError, ValueError) as error:
                raise ValueError(f"semantic_index: {error}") from None

    @property
    def follows_active_reranker(self) -> bool:
        return self.reranker == ACTIVE_RERANKER

    def with_reranker(self, folder: str | None) -> FusionConfig:
        """This config as served when `folder` is the active reranker's (None: none is active):
        ACTIVE_RERANKER becomes `folder`, or reranking is off without one. A config that names
        a folder, or reranks with nothing, is returned as it is."""
        if not self.follows_active_reranker:
            return self
        return replace(self, reranker=folder, rerank_top=self.rerank_top if folder else 0)

    @property
    def reranks(self) -> bool:
        """Whether a reranker reorders the fused list's top `rerank_top` items."""
        return bool(self.reranker) and self.rerank_top > 0

    def weight(self, source: str) -> float:
        return self.weights.get(source, 1.0)


Fuser = Callable[[Mapping[str, Ranked], FusionConfig], list[FusedItem]]


def register_fuser(name: str) -> Callable[[Fuser], Fuser]:
    """Decorator: make a fusion function available as `FusionConfig.method` = `name`."""
    def decorate(function: Fuser) -> Fuser:
        function.name = name  # type: ignore[attr-defined]
        return FUSERS.register(function)
    return decorate


def check_sources(sources: Sequence[str], registry: Mapping[str, type], composite: str) -> None:
    """ValueError unless every name in `sources` is a registered component other than `composite`."""
    unknown = [name for name in sources if name not in registry or name == composite]
    if unknown:
        raise ValueError(f"unknown source {registry.kind}(s) {unknown}; choose from "
                         f"{sorted(set(registry) - {composite})}")


def deduplicated(ranking: Ranked, limit: int) -> list[tuple[str, float]]:
    """The first `limit` distinct products of `ranking`; a repeated product keeps its best rank."""
    seen: set[str] = set()
    kept = []
    for product_id, score in ranking:
        if product_id not in seen:
            seen.add(product_id)
            kept.append((str(product_id), float(score)))
            if len(kept) == limit:
                break
    return kept


def ranked(items: dict[str, FusedItem]) -> list[FusedItem]:
    """Items best first; equal scores by product id.

    Each score is the exactly rounded sum of its sources' contributions (`math.fsum`): a sum
    added up in the sources' order could differ in its last bit for another order, and so break a
    tie between two products differently (2/29 + 2/30 against 1/30 + 1/29 + 1/30 + 1/29)."""
    for item in items.values():
        if item.sources:
            item.score = math.fsum(part.contribution for part in item.sources.values())
    return sorted(items.values(), key=lambda item: (-item.score, item.product_id))


def above_floors(lists: Mapping[str, Ranked], config: FusionConfig) -> dict[str, list[tuple[str, float]]]:
    """Each source's list without the items scoring below the source's floor in `config.min_scores`.

    >>> config = FusionConfig(min_scores={"semantic": 0.3})
    >>> above_floors({"semantic": [("a", 0.5), ("b", 0.2)], "bm25": [("c", 0.1)]}, config)
    {'semantic': [('a', 0.5)], 'bm25': [('c', 0.1)]}
    """
    return {name: [(product, score) for product, score in ranking
                   if name not in config.min_scores or score >= config.min_scores[name]]
            for name, ranking in lists.items()}


def fuse(lists: Mapping[str, Ranked], config: FusionConfig | dict | None = None) -> list[FusedItem]:
    """Fuse the named `lists` as `config` says; see the module docstring.

    Sources of weight 0 are left out entirely: an item only they found does not appear; nor
    does an item below its source's floor (`config.min_scores`).
    """
    config = FusionConfig.resolve(config)
    kept = {name: deduplicated(ranking, config.candidates) for name, ranking in above_floors(lists, config).items()
            if config.weight(name) > 0}
    return FUSERS[config.method](kept, config)


def relevance(lists: Mapping[str, Ranked], config: FusionConfig | dict | None,
              product_ids: Sequence[str]) -> np.ndarray:
    """How relevant each of `product_ids` is to the request whose candidate `lists` these are, in
    [0, 1]: its fused score (`fuse`, before any rerank and rules) over the best fused score of the
    request; 0 for a product no source has among its candidates (or only under a source's floor),
    and for every product when nothing matched. It reads what the request's page was made from, so
    the page and a sponsored product joining it agree on relevance (`recsys.ads`).

    >>> relevance({"bm25": [("a", 4.0), ("b", 2.0), ("c", 0.0)]}, None, ["b", "z"]).tolist()
    [0.5, 0.0]
    """
    fused = fuse(lists, config)
    best = fused[0].score if fused else 0.0
    if best <= 0:
        return np.zeros(len(product_ids))
    scores = {item.product_id: item.score for item in fused}
    found = np.array([scores.get(str(p), 0.0) for p in product_ids], dtype=np.float64)
    return np.clip(found / best, 0.0, 1.0)
