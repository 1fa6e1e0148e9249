"""Hybrid search: reciprocal rank fusion of lexical (BM25) and semantic retrieval.

What it computes: each source retriever ranks the catalog for the query and
keeps its `candidates` best matches (at least k); the lists are fused by
`recsys.fusion.fuse_rrf`, a product scoring ``sum_s weight_s / (rrf_k + rank_s)``
over the sources that found it (Cormack et al., SIGIR 2009). BM25 contributes
only products that contain a query word. By default BM25 weighs 1 and semantic
0.5: on Home Depot's dev queries, equal weights ranked below BM25 alone
(nDCG@10 0.353 vs 0.380) because MiniLM alone is much weaker (0.273); 0.5 was
chosen on one half of the dev queries and confirmed on the other. When k exceeds what the sources
matched, the rest of the catalog follows with score 0, in catalog order.

`score(query, product_ids)` gives each product the fused score it would get if
every source ranked the whole catalog (its rank in each source's full ranking,
no candidate cut-off), so judged products can be reranked without ties.

The hybrid composes its sources, it does not subclass them: build it from a
config (it fits its own sources) or from already fitted ones with
`HybridRetriever.from_sources`.

>>> import pandas as pd
>>> catalog = pd.DataFrame({"product_id": ["a", "b", "c"],
...                         "title": ["Red coffee mug", "Lawn mower", "Blue teapot"]})
>>> hits = HybridRetriever().fit(catalog).search("red mug", k=2)
>>> hits[0].product_id, [reason.text for reason in hits[0].reasons if reason.kind == "rank"]
('a', ['bm25 rank 1', 'semantic rank 1'])
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from recsys.fusion.rrf import fuse_rrf, rrf_contribution
from recsys.search.base import (QUERY_CHUNK, REGISTRY, Retriever, RetrieverConfig, SearchHit,
                                SearchReason, catalog_ranks, register)


@dataclass
class HybridConfig(RetrieverConfig):
    sources: list[str] = field(default_factory=lambda: ["bm25", "semantic"])
    # Config of each source by name, e.g. {"semantic": {"model_path": "models/ft"}};
    # `extra_fields` of the hybrid is passed on to sources that do not set their own.
    source_configs: dict[str, dict] = field(default_factory=dict)
    # Weight of each source's contributions by name; a source not named weighs 1.
    # Lexical counts twice semantic by default: with all-MiniLM-L6-v2, equal weights
    # ranked worse than BM25 alone on Home Depot (docs/benchmarks.md).
    weights: dict[str, float] = field(default_factory=lambda: {"bm25": 1.0, "semantic": 0.5})
    rrf_k: int = 60  # the RRF constant of Cormack et al.
    candidates: int = 100  # how many matches of each source are fused


@register
class HybridRetriever(Retriever):
    name = "hybrid"
    Config = HybridConfig

    def __init__(self, config=None, **params):
        super().__init__(config, **params)
        unknown = [name for name in self.config.sources if name not in REGISTRY or name == self.name]
        if unknown:
            raise ValueError(f"unknown source retriever(s) {unknown}; choose from "
                             f"{sorted(set(REGISTRY) - {self.name})}")
        self.sources: list[Retriever] = []

    @classmethod
    def from_sources(cls, sources: list[Retriever], weights: dict[str, float] | None = None,
                     rrf_k: int = 60, candidates: int = 100) -> HybridRetriever:
        """A hybrid over already fitted `sources`, which must share one catalog.

        `weights` by source name; None keeps the config's default.
        """
        if not sources:
            raise ValueError("a hybrid needs at least one source retriever")
        for source in sources[1:]:
            if not np.array_equal(source.product_ids, sources[0].product_ids):
                raise ValueError(f"{source.name} was fitted on another catalog than {sources[0].name}")
        params = {} if weights is None else {"weights": dict(weights)}
        hybrid = cls(sources=[s.name for s in sources],
                     source_configs={s.name: s.config.to_dict() for s in sources},
                     rrf_k=rrf_k, candidates=candidates, **params)
        hybrid.sources = list(sources)
        hybrid.product_ids = sources[0].product_ids
        hybrid._index = dict(sources[0]._index)
        return hybrid

    def _source_config(self, name: str) -> dict:
        return {"extra_fields": self.config.extra_fields, **self.config.source_configs.get(name, {})}

    def _fit(self, catalog: pd.DataFrame) -> None:
        self.sources = [REGISTRY[name](self._source_config(name)).fit(catalog)
                        for name in self.config.sources]

    @property
    def _weights(self) -> list[float]:
        return [float(self.config.weights.get(source.name, 1.0)) for source in self.sources]

    def _search_many(self, queries: list[str], k: int, matched_only: bool) -> list[list[SearchHit]]:
        depth = max(self.config.candidates, k)
        # Candidates come without reasons; only the fused top k are explained.
        ranked = [list(source._ranked(queries, depth, matched_only=True)) for source in self.sources]
        results = []
        for position, query in enumerate(queries):
            lists = [found[position] for found in ranked]
            fused = fuse_rrf([[(self.product_ids[i], score) for i, score in zip(indices, scores)]
                              for indices, scores in lists], self.config.rrf_k, self._weights)[:k]
            hits = [SearchHit(product_id, score) for product_id, score in fused]
            self._explain(query, hits, lists)
            if not matched_only and len(hits) < k:
                taken = {hit.product_id for hit in hits}
                rest = (p for p in self.product_ids if p not in taken)
                hits += [SearchHit(p, 0.0) for p, _ in zip(rest, range(k - len(hits)))]
            results.append(hits)
        return results

    def _explain(self, query: str, hits: list[SearchHit],
                 lists: list[tuple[np.ndarray, np.ndarray]]) -> None:
        """Give each hit its rank in every source that found it, then that source's reasons."""
        details: list[list[SearchReason]] = [[] for _ in hits]
        positions = {hit.product_id: row for row, hit in enumerate(hits)}
        for source, weight, (indices, scores) in zip(self.sources, self._weights, lists):
            found = [(rank, row) for rank, index in enumerate(indices, start=1)
                     if (row := positions.get(self.product_ids[index])) is not None]
            if not found:
                continue
            chosen = np.array([rank - 1 for rank, _ in found])
            reasons = source._reasons(query, indices[chosen], scores[chosen])
            for (rank, row), why in zip(found, reasons):
                contribution = rrf_contribution(rank, self.config.rrf_k, weight)
                hits[row].reasons.append(SearchReason("rank", f"{source.name} rank {rank}", contribution))
                details[row] += why
        for hit, why in zip(hits, details):
            hit.reasons += why

    def _score_many(self, queries: list[str], indices: list[np.ndarray]) -> list[np.ndarray]:
        results = [np.zeros(len(chosen)) for chosen in indices]
        for start in range(0, len(queries), QUERY_CHUNK):
            chunk = queries[start:start + QUERY_CHUNK]
            for source, weight in zip(self.sources, self._weights):
                scores = np.asarray(source._scores(chunk), dtype=np.float64)
                scores = np.where(source._matches(scores), scores, -np.inf)
                for row, position in zip(scores, range(start, start + len(chunk))):
                    chosen = indices[position]
                    matched = np.isfinite(row[chosen])
                    ranks = catalog_ranks(row, chosen[matched])
                    results[position][matched] += rrf_contribution(ranks, self.config.rrf_k, weight)
        return results

    # --- persistence: each source in a folder of its own -----------------------------

    def _save_files(self, folder: Path) -> None:
        for source in self.sources:
            source.save(folder / source.name)

    def _restore(self, arrays: dict[str, np.ndarray], folder: Path) -> None:
        self.sources = [Retriever.load(folder / name) for name in self.config.sources]
