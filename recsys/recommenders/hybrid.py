"""Hybrid recommendations: collaborative filtering and semantic lists fused, then business rules.

What it computes: each source algorithm (by default EASE for co-purchase
signal and the semantic recommender for product texts) recommends its
`candidates` best products for the user or session; the named lists are fused
by `recsys.fusion.fuse` (weighted min-max by default) and the config's
business rules are applied with the catalog's product attributes. Similar
items fuse the sources' item-to-item lists the same way. Explanations are the
sources' own reasons ("because you bought X", "similar to X you bought"),
each labelled with its source, plus each source's rank, score and contribution.

The hybrid composes its sources, it does not subclass them; each is fitted on
the same interactions and catalog and saved in a folder of its own.

>>> import pandas as pd
>>> interactions = pd.DataFrame({"user_id": ["u1", "u1", "u2", "u2", "u3"],
...                              "product_id": ["mug", "teapot", "mug", "teapot", "mug"],
...                              "weight": [1.0] * 5})
>>> catalog = pd.DataFrame({"product_id": ["mug", "teapot", "chair"],
...                         "title": ["Red mug", "Glass teapot", "Garden chair"]})
>>> hybrid = HybridRecommender(sources=["item_knn", "popularity"]).fit(interactions, catalog)
>>> [product for product, _ in hybrid.recommend("u3", k=1)]
['teapot']
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from recsys.fusion import (FusedItem, FusionConfig, defaults, apply_rules, attributes_from, check_sources,
                           fuse, load_attributes, save_attributes)
from recsys.recommenders.base import REGISTRY, Ranking, Reason, Recommender, RecommenderConfig, register
from recsys.timing import stage

DEFAULT_FUSION = defaults.RECOMMENDATIONS
Candidates = dict[str, Ranking]


@dataclass
class HybridRecommenderConfig(RecommenderConfig):
    sources: list[str] = field(default_factory=lambda: ["ease", "semantic"])
    source_configs: dict[str, dict] = field(default_factory=dict)  # config of each source by name
    # A `recsys.fusion.FusionConfig` as a dict: method, weights by source, rules, ...
    fusion: dict = field(default_factory=lambda: json.loads(json.dumps(DEFAULT_FUSION)))


@register
class HybridRecommender(Recommender):
    name = "hybrid"
    Config = HybridRecommenderConfig

    def __init__(self, config=None, **params):
        super().__init__(config, **params)
        check_sources(self.config.sources, REGISTRY, self.name)
        self.fusion = FusionConfig.resolve(self.config.fusion)
        self.sources: list[Recommender] = []
        self.attributes: dict[str, dict] = {}

    @property
    def needs_catalog(self) -> bool:  # type: ignore[override]
        return any(REGISTRY[name].needs_catalog for name in self.config.sources)

    @classmethod
    def from_sources(cls, sources: list[Recommender], fusion: FusionConfig | dict | None = None,
                     attributes: Mapping[str, dict] | None = None) -> HybridRecommender:
        """A hybrid over already fitted `sources` (fitted on the same interactions)."""
        if not sources:
            raise ValueError("a hybrid needs at least one source algorithm")
        params = {} if fusion is None else {"fusion": FusionConfig.resolve(fusion).to_dict()}
        hybrid = cls(sources=[s.name for s in sources],
                     source_configs={s.name: s.config.to_dict() for s in sources}, **params)
        first = sources[0]
        for name in ("user_ids", "item_ids", "_user_index", "_item_index", "matrix", "popularity"):
            setattr(hybrid, name, getattr(first, name))
        hybrid.item_titles = dict(first.item_titles)
        hybrid.sources = list(sources)
        hybrid.attributes = dict(attributes or {})
        return hybrid

    def with_fusion(self, fusion: FusionConfig | dict) -> HybridRecommender:
        """The same fitted sources under another fusion config (nothing is refitted)."""
        return HybridRecommender.from_sources(self.sources, fusion, self.attributes)

    def _fit(self, frame: pd.DataFrame, catalog: pd.DataFrame | None) -> None:
        interactions = frame.drop(columns=["user_index", "item_index"])
        self.sources = [REGISTRY[name](self.config.source_configs.get(name, {})).fit(interactions, catalog)
                        for name in self.config.sources]
        self.attributes = attributes_from(catalog) if catalog is not None else {}

    # --- recommending: candidates, then fusion and rules ----------------------------------

    def candidates(self, user_ids: list[str | None], histories: list[list[str] | None] | None = None,
                   depth: int | None = None, exclude_seen: bool = True) -> list[Candidates]:
        """Each user's candidate lists: {source name: [(product_id, score), ...]}, best first."""
        self._check_fitted()
        depth = depth or self.fusion.candidates
        results: list[Candidates] = [{} for _ in user_ids]
        for source in self.sources:
            if self.fusion.weight(source.name) <= 0:
                continue
            with stage("retrieve"):
                found = source.recommend_many(user_ids, depth, exclude_seen, histories)
            for lists, ranking in zip(results, found):
                lists[source.name] = ranking
        return results

    def fuse_candidates(self, lists: Candidates, k: int, fusion: FusionConfig | None = None,
                        query: str | None = None, category: str | None = None) -> list[FusedItem]:
        """The top-k fused items of `lists` (from `candidates`) with the rules applied."""
        fusion = fusion or self.fusion
        with stage("fuse"):
            items = fuse(lists, fusion)
        if fusion.rules:
            with stage("rules"):
                items = apply_rules(items, fusion.rules, self.attributes,
                                    query=query, category=category).items
        return items[:k]

    def recommend_many(self, user_ids: list[str | None], k: int = 10, exclude_seen: bool = True,
                       histories: list[list[str] | None] | None = None) -> list[Ranking]:
        if k <= 0:
            raise ValueError(f"k must be positive, not {k}")
        depth = max(self.fusion.candidates, k)
        return [[(item.product_id, item.score) for item in self.fuse_candidates(lists, k)]
                for lists in self.candidates(user_ids, histories, depth, exclude_seen)]

    def similar_items(self, product_id: str, k: int = 10) -> Ranking:
        self._check_fitted()
        lists = {}
        for source in self.sources:
            if self.fusion.weight(source.name) > 0:
                try:
                    lists[source.name] = source.similar_items(product_id, max(self.fusion.candidates, k))
                except NotImplementedError:
                    continue
        return [(item.product_id, item.score) for item in self.fuse_candidates(lists, k)]

    def falls_back(self, user_id: str | None, history: list[str] | None = None) -> bool:
        """Whether every source falls back to the most popular products for this user or session."""
        return all(source.falls_back(user_id, history) for source in self.sources)

    def explain(self, user_id: str | None, product_id: str, history: list[str] | None = None,
                sources: Collection[str] | None = None) -> list[Reason]:
        """The sources' reasons, labelled with the source, strongest first.

        `sources` limits them to the sources that put the product in the fused list (a
        `FusedItem`'s `sources`), so the reasons agree with its explanation table; None: all.
        Sources score on different scales, so a reason's weight is its share of its source's
        reasons times the source's fusion weight.
        """
        self._check_fitted()
        reasons = []
        for source in self.sources:
            if sources is not None and source.name not in sources:
                continue
            found = source.explain(user_id, product_id, history)
            total = sum(abs(reason.weight) for reason in found) or 1.0
            for reason in found:
                reasons.append(Reason(reason.kind, f"{source.name}: {reason.text}",
                                      self.fusion.weight(source.name) * abs(reason.weight) / total,
                                      reason.product_id))
        return sorted(reasons, key=lambda reason: -reason.weight)

    # --- persistence: each source in a folder of its own ------------------------------------

    def _save_files(self, folder: Path) -> None:
        for source in self.sources:
            source.save(folder / source.name)
        save_attributes(self.attributes, folder)

    def _restore_files(self, folder: Path) -> None:
        self.sources = [Recommender.load(folder / name) for name in self.config.sources]
        self.attributes = load_attributes(folder)

