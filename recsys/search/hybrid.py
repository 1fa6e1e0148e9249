"""Hybrid search: lexical (BM25) and semantic retrieval fused, optionally reranked, then business rules.

What it computes: misspelled query words are first corrected against the
catalog's own words (`recsys.search.spelling`: "toliet" -> "toilet"; off with
``spelling=False``); each source retriever ranks the catalog for the query and
keeps its `candidates` best matches (BM25 contributes only products that
contain a query word); the named lists are fused by `recsys.fusion.fuse` with
the config's method (weighted min-max by default, or reciprocal rank fusion);
when the fusion names a `reranker` and a `rerank_top` N, that reranker
reorders the fused list's N best items (`recsys.search.rerank`: the hybrid
gives it each query's `rerank_requests`): a learned ranker (`recsys.search.ltr`)
by the sources' scores of each item and the words it shares with the query, or
a cross-encoder (`recsys.search.cross_encoder`) over the product texts (title and
description, as it was trained on them); then the
business rules of `recsys.fusion.rules` are applied (so pins and filters still
win over the rerank), with the
product attributes (category, price, in_stock, ...) of the catalog it was
fitted on. The fusion's `backend` is the semantic source's encoder (by default
the int8 ONNX export of the model) unless `source_configs` names another. When k exceeds what the sources matched, the rest of the catalog
follows with score 0, in catalog order.

The default fusion, weighted min-max with BM25 0.75 and semantic 0.25, beat
BM25 alone, semantic alone and every RRF setting tried on Home Depot's dev
queries (nDCG@10 0.386 against 0.380 for BM25, with BM25's former k1 1.2 / b 0.75
and queries as typed; the weight was chosen on one half of the queries and
confirmed on the other; docs/benchmarks.md). With spelling correction and k1 0.5 /
b 0.75 it gives 0.410 on the fine-tuning split's test queries.

Each hit carries `sources` (per source: rank, raw score, normalised score and
contribution; a reranked hit also has a "rerank" part: the reranker's score
and kind, its rank after the rerank and, as `fused_rank`, before), its
sources' own reasons (matched terms, cosine, the rerank's move, the spelling
correction) and the
`effects` of any rule that moved it. `candidates(queries)` and
`fuse_candidates(...)` split the work so that a page can keep the candidate
lists and re-fuse them as weights and rules change, without searching again.

`relevance(lists, product_ids)` reads from a query's candidate lists how relevant given products
are to it, in [0, 1] (their fused score over the best one): the floor a sponsored product must reach.

`score(query, product_ids)` applies the fusion's normalisation, fixed on the
query's candidates, to every product's score in each source (RRF: its rank in
each source's full ranking), so judged products can be reranked; neither the
cross-encoder nor the rules are applied there.

The hybrid composes its sources, it does not subclass them: build it from a
config (it fits its own sources and keeps the product texts) or from already
fitted ones with `HybridRetriever.from_sources` (give it the texts to rerank
and to correct spelling against).

>>> import pandas as pd
>>> catalog = pd.DataFrame({"product_id": ["a", "b", "c"],
...                         "title": ["Red coffee mug", "Lawn mower", "Blue teapot"]})
>>> hits = HybridRetriever().fit(catalog).search("red mug", k=2)
>>> hits[0].product_id, sorted(hits[0].sources)
('a', ['bm25', 'semantic'])
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from recsys.embedding_model import model_identity, product_texts
from recsys.fusion import (FusedItem, FusionConfig, RulesResult, apply_rules, attributes_from, check_sources,
                           defaults, fuse, load_attributes, relevance, save_attributes)
from recsys.search.base import (QUERY_CHUNK, REGISTRY, QueryScores, Retriever, RetrieverConfig, SearchHit,
                                SearchReason, catalog_ranks, check_k, check_query, register, top_k)
from recsys.search.rerank import RERANK_SOURCE, RerankRequest, SourceSignals, load_reranker
from recsys.search.spelling import Correction, SpellingCorrector
from recsys.timing import stage

DEFAULT_FUSION = defaults.SEARCH
Candidates = dict[str, list[tuple[str, float]]]


# By source name, each query's `QueryScores` of a chunk of queries: what `retrieve` kept for a
# reranker that reads the sources, so that no query is encoded or scored twice.
ScoredChunk = dict[str, list[QueryScores]]

TEXTS_FILE = "texts.json"
SPELLING_FILE = "spelling.json"


@dataclass
class HybridConfig(RetrieverConfig):
    sources: list[str] = field(default_factory=lambda: ["bm25", "semantic"])
    # Config of each source by name, e.g. {"semantic": {"model_path": "models/ft"}};
    # `extra_fields` of the hybrid is passed on to sources that do not set their own.
    source_configs: dict[str, dict] = field(default_factory=dict)
    # A `recsys.fusion.FusionConfig` as a dict: method, weights by source, rules, ...
    fusion: dict = field(default_factory=lambda: json.loads(json.dumps(DEFAULT_FUSION)))
    # Correct query words no product text contains to the closest catalog words before
    # searching (`recsys.search.spelling`); rules still see the query as typed.
    spelling: bool = True


@register
class HybridRetriever(Retriever):
    name = "hybrid"
    Config = HybridConfig

    def __init__(self, config=None, **params):
        super().__init__(config, **params)
        check_sources(self.config.sources, REGISTRY, self.name)
        self.fusion = FusionConfig.resolve(self.config.fusion)
        self.sources: list[Retriever] = []
        self.attributes: dict[str, dict] = {}
        # product_id -> the text the cross-encoder reads (`recsys.embedding_model.product_texts`)
        self.product_texts: dict[str, str] | None = None
        self.speller: SpellingCorrector | None = None
        self._rerankers: dict[str, tuple] = {}  # folder: (its files' latest change, the opened reranker)

    @classmethod
    def from_sources(cls, sources: list[Retriever], fusion: FusionConfig | dict | None = None,
                     attributes: Mapping[str, dict] | None = None,
                     texts: Mapping[str, str] | pd.Series | None = None) -> HybridRetriever:
        """A hybrid over already fitted `sources`, which must share one catalog.

        `fusion` None keeps the default; `attributes` ({product_id: {column: value}})
        are what business rules test; `texts` ({product_id: text}, e.g.
        `recsys.training.pairs.product_texts(catalog)`) are what a reranker reads
        and the words query spelling is corrected against; without them queries
        are searched as typed (``config.spelling`` is False).
        """
        if not sources:
            raise ValueError("a hybrid needs at least one source retriever")
        for source in sources[1:]:
            if not np.array_equal(source.product_ids, sources[0].product_ids):
                raise ValueError(f"{source.name} was fitted on another catalog than {sources[0].name}")
        params = {} if fusion is None else {"fusion": FusionConfig.resolve(fusion).to_dict()}
        hybrid = cls(sources=[s.name for s in sources],
                     source_configs={s.name: s.config.to_dict() for s in sources},
                     spelling=texts is not None, **params)
        hybrid.sources = list(sources)
        hybrid.product_ids = sources[0].product_ids
        hybrid._index = dict(sources[0]._index)
        hybrid.attributes = dict(attributes or {})
        hybrid.product_texts = None if texts is None else _first_per_product(texts)
        if texts is not None:
            hybrid.speller = SpellingCorrector().fit(hybrid.product_texts.values())
        return hybrid

    def with_fusion(self, fusion: FusionConfig | dict) -> HybridRetriever:
        """The same fitted sources under another fusion config (nothing is refitted)."""
        hybrid = HybridRetriever.from_sources(self.sources, fusion, self.attributes)
        # Shared, not copied: they are only read.
        hybrid.product_texts, hybrid.speller = self.product_texts, self.speller
        hybrid.config.spelling = self.config.spelling
        return hybrid

    def embedding_path(self) -> str | None:
        """The semantic source's model folder (None: the shipped model, or no semantic source)."""
        semantic = next((source for source in self.sources if source.name == "semantic"), None)
        return None if semantic is None else semantic.config.model_path

    def embedding_identity(self) -> str | None:
        """`recsys.embedding_model.model_identity` of the semantic source's model; None without one."""
        if not any(source.name == "semantic" for source in self.sources):
            return None
        return model_identity(self.embedding_path())

    def _source_config(self, name: str) -> dict:
        defaults = {"extra_fields": self.config.extra_fields}
        if name == "semantic":
            defaults["backend"] = self.fusion.backend
            if self.fusion.semantic_index is not None:
                defaults["index"] = self.fusion.semantic_index
        return {**defaults, **self.config.source_configs.get(name, {})}

    def _fit(self, catalog: pd.DataFrame) -> None:
        self.sources = [REGISTRY[name](self._source_config(name)).fit(catalog)
                        for name in self.config.sources]
        self.attributes = attributes_from(catalog)
        self.product_texts = _first_per_product(product_texts(catalog))
        self.speller = SpellingCorrector().fit(self.product_texts.values()) if self.config.spelling else None

    def correct(self, query: str) -> Correction:
        """`query` as it is searched: its misspelled words corrected (unchanged when spelling is off)."""
        if self.speller is None or not self.config.spelling:
            return Correction(query, query)
        return self.speller.correct(query)

    def _searched(self, queries: list[str]) -> list[str]:
        return [self.correct(query).query for query in queries]

    # --- search: candidates, then fusion, the rerank and the rules -----------------------

    def candidates(self, queries: list[str], depth: int | None = None) -> list[Candidates]:
        """Each query's candidate lists: {source name: [(product_id, raw score), ...]}, best first.

        Sources of weight 0 are skipped. `depth` defaults to the fusion's `candidates`.
        Each query is searched as `correct` spells it.
        """
        results: list[Candidates] = []
        for start in range(0, len(queries), QUERY_CHUNK):
            results += self.retrieve(queries[start:start + QUERY_CHUNK], depth)[0]
        return results

    def relevance(self, lists: Candidates, product_ids: Sequence[str],
                  fusion: FusionConfig | None = None) -> np.ndarray:
        """How relevant each of `product_ids` is to the query whose candidate `lists` these are (from
        `candidates` or `retrieve`), in [0, 1] (`recsys.fusion.relevance`: its fused score over the
        best): what an ad's product must reach to be shown (`recsys.ads.auction.eligible`), read from
        what the search read, at no second query encoding. `fusion` overrides the retriever's own."""
        return relevance(lists, fusion or self.fusion, product_ids)

    def retrieve(self, queries: list[str], depth: int | None = None,
                 keep: tuple[str, ...] = ()) -> tuple[list[Candidates], ScoredChunk]:
        """`candidates` of one chunk of queries, and the scores of every product by the sources
        named in `keep` (those a reranker will read), so that they are not computed twice."""
        depth = depth or self.fusion.candidates
        results: list[Candidates] = [{} for _ in queries]
        scored: ScoredChunk = {}
        searched = self._searched(queries)
        for source in self.sources:
            if self.fusion.weight(source.name) <= 0:
                continue
            with stage("retrieve"):
                said = source._query_scores(searched)
                tops = [scores.top(depth) for scores in said]
            if source.name in keep:
                scored[source.name] = said
            for lists, (top, values) in zip(results, tops):
                lists[source.name] = list(zip(self.product_ids[top].tolist(), values.tolist()))
        return results, scored

    def rank_candidates(self, queries: list[str], lists: list[Candidates],
                        fusion: FusionConfig | None = None,
                        category: str | None = None, scored: ScoredChunk | None = None) -> list[RulesResult]:
        """Each query's whole list: its candidate `lists` fused, the top reranked, the rules applied.

        `fusion` overrides the retriever's own config (for a live preview). The
        cross-encoder reads every query's top items in one batched pass. `scored`:
        the sources' scores `retrieve` kept for these queries, which a learned
        ranker then reads instead of scoring the catalog again.
        """
        fusion = fusion or self.fusion
        with stage("fuse"):
            fused = [fuse(candidates, fusion) for candidates in lists]
        if fusion.reranks:
            fused = self._rerank(queries, fused, fusion, scored)
        if not fusion.rules:
            return [RulesResult(items) for items in fused]
        with stage("rules"):
            return [apply_rules(items, fusion.rules, self.attributes, query=query, category=category)
                    for query, items in zip(queries, fused)]

    def _rerank(self, queries: list[str], fused: list[list[FusedItem]],
                fusion: FusionConfig, scored: ScoredChunk | None = None) -> list[list[FusedItem]]:
        reranker = self._reranker(fusion.reranker)
        tops = [list(ranked[:fusion.rerank_top]) for ranked in fused]
        signals = self._signal_sources(reranker)
        return reranker.rerank(fused, self.rerank_requests(queries, tops, signals, reranker.depth, scored))

    def _signal_sources(self, reranker) -> list[str] | None:
        """The sources whose signals `reranker` reads (None: it reads only the texts)."""
        if not reranker.uses_sources:
            return None
        return reranker.sources or [source.name for source in self.sources]

    def _kept_sources(self, fusion: FusionConfig) -> tuple[str, ...]:
        """The sources whose scores of the whole catalog `retrieve` keeps for `fusion`'s reranker."""
        if not fusion.reranks:
            return ()
        return tuple(self._signal_sources(self._reranker(fusion.reranker)) or ())

    def _reranker(self, folder: str):
        """The reranker saved in `folder`, opened (and checked to fit this hybrid) once, not at every
        search: reading its files took about 0.6 ms a time. Opened again when its folder changes."""
        try:  # a folder saved again is renamed into place (a new inode) or has its files replaced
            info = os.stat(folder)
            stamp = (info.st_ino, info.st_mtime_ns)
        except OSError:
            stamp = None
        cached = self._rerankers.get(folder)
        if cached is None or cached[0] != stamp:
            reranker = load_reranker(folder)
            reranker.check_fits(self)
            self._rerankers[folder] = cached = (stamp, reranker)
        return cached[1]

    def rerank_requests(self, queries: list[str], tops: list[list[FusedItem]],
                        signals: list[str] | None = None, depth: int | None = None,
                        scored: ScoredChunk | None = None) -> list[RerankRequest]:
        """What a reranker reads of each query's `tops` (`recsys.search.rerank.RerankRequest`).

        `queries` are read as typed (spelling correction is applied here, as the
        candidates were found). `signals` names the sources whose `SourceSignals`
        to compute (None: none, a reranker that only reads texts); each scores
        every item, whatever its weight. `depth` is the size of each source's own
        top (default the fusion's `candidates`). `scored`, kept by `retrieve` for
        these same queries, holds sources' scores of the whole catalog already
        computed: those are read, not computed again (one query encoding a search).
        """
        if self.product_texts is None:
            raise ValueError("this hybrid has no product texts for the reranker to read: fit it on "
                             "the catalog, or give from_sources the texts (recsys.training.pairs."
                             "product_texts(catalog))")
        searched = self._searched(queries)
        requests = [RerankRequest(query, list(top), [self.product_texts.get(item.product_id, "") for item in top])
                    for query, top in zip(searched, tops)]
        by_name = {source.name: source for source in self.sources}
        missing = [name for name in signals or () if name not in by_name]
        if missing:
            raise ValueError(f"this ranker reads the sources {signals}, but the hybrid has no {missing}: "
                             "train a ranker for this engine's sources")
        depth = depth or self.fusion.candidates
        with stage("rerank"):
            for name in signals or ():
                kept = (scored or {}).get(name)
                for start in range(0, len(queries), QUERY_CHUNK):
                    chunk = requests[start:start + QUERY_CHUNK]
                    said = (kept[start:start + QUERY_CHUNK] if kept is not None
                            else by_name[name]._query_scores([request.query for request in chunk]))
                    for request, scores in zip(chunk, said):
                        request.sources[name] = self._signals(scores, request.items, depth)
        return requests

    def _signals(self, said: QueryScores, items: list[FusedItem], depth: int) -> SourceSignals:
        """A source's signals of `items` from what it says of the catalog for the query (`said`)."""
        indices = np.array([self._index[item.product_id] for item in items], dtype=int)
        retrieved, best = said.top(depth)
        places = dict(zip(retrieved.tolist(), range(1, len(retrieved) + 1)))
        scores, matched = said.at(indices)
        return SourceSignals(scores=np.asarray(scores, dtype=np.float64), matched=matched,
                             top=list(zip(self.product_ids[retrieved].tolist(), best.tolist())),
                             ranks=np.array([places.get(i, depth + 1) for i in indices.tolist()], dtype=np.float64),
                             matches=said.matches)

    def fuse_candidates(self, query: str, lists: Candidates, k: int,
                        fusion: FusionConfig | None = None, category: str | None = None,
                        explain: bool = True) -> list[SearchHit]:
        """The top-k hits of fusing `lists` (from `candidates`), reranking and applying the rules.

        `fusion` overrides the retriever's own config (for a live preview);
        `explain` adds the sources' reasons (matched terms, cosine, the rerank) to each hit.
        """
        items = self.rank_candidates([query], [lists], fusion, category)[0].items
        return self._fused_hits(query, items, k, explain)

    def _fused_hits(self, query: str, items: list[FusedItem], k: int, explain: bool) -> list[SearchHit]:
        hits = [SearchHit(item.product_id, item.score, sources=item.sources, effects=item.effects)
                for item in items[:k]]
        if explain:
            self._explain(query, hits)
        return hits

    def _explain(self, query: str, hits: list[SearchHit]) -> None:
        correction = self.correct(query)
        query = correction.query
        for source in self.sources:
            found = [(row, hit) for row, hit in enumerate(hits) if source.name in hit.sources]
            if not found:
                continue
            indices = np.array([self._index[hit.product_id] for _, hit in found])
            scores = np.array([hit.sources[source.name].score for _, hit in found])
            for (_, hit), why in zip(found, source._reasons(query, indices, scores)):
                hit.reasons += why
        for hit in hits:
            part = hit.sources.get(RERANK_SOURCE)
            if part is not None:
                hit.reasons.append(SearchReason(
                    "rerank", f"{part.by} {part.score:.3f}: #{part.fused_rank} in the fused list, "
                    f"#{part.rank} after the rerank", part.score))
            if correction.changed:
                hit.reasons.append(SearchReason("spelling", f"searched for '{correction.query}': "
                                                f"{correction.describe()}"))

    def search_many(self, queries: list[str], k: int = 10, *, matched_only: bool = False,
                    category: str | None = None, explain: bool = True) -> list[list[SearchHit]]:
        """As `Retriever.search_many`; `category` is the request's category, for scoped rules.

        `explain=False` leaves out the sources' reasons (each hit keeps its
        per-source ranks and contributions and its rule effects): a little faster.
        """
        return [hits for hits, _ in self._searched_lists(queries, k, matched_only, category, explain)]

    def search(self, query: str, k: int = 10, *, matched_only: bool = False,
               category: str | None = None, explain: bool = True) -> list[SearchHit]:
        return self.search_many([query], k, matched_only=matched_only, category=category,
                                explain=explain)[0]

    def search_relevance(self, query: str, k: int, product_ids: Sequence[str], *, matched_only: bool = False,
                         category: str | None = None,
                         explain: bool = True) -> tuple[list[SearchHit], np.ndarray]:
        """`search`, and the `relevance` of `product_ids` to the query read from the same candidate
        lists (one retrieval, one query encoding): a page and the sponsored products that may join it."""
        [(hits, lists)] = self._searched_lists([query], k, matched_only, category, explain)
        return hits, self.relevance(lists, product_ids)

    def _searched_lists(self, queries: list[str], k: int, matched_only: bool, category: str | None,
                        explain: bool) -> list[tuple[list[SearchHit], Candidates]]:
        """Each query's hits and the candidate lists they were fused from."""
        self._check_fitted()
        queries = [check_query(query) for query in queries]
        k = check_k(k)
        results = []
        keep = self._kept_sources(self.fusion)
        # A chunk of queries at a time: the cross-encoder reads a chunk's top items in one pass, and
        # only one chunk's candidates (and the scores a learned ranker reads) are held at once.
        for start in range(0, len(queries), QUERY_CHUNK):
            chunk = queries[start:start + QUERY_CHUNK]
            found, scored = self.retrieve(chunk, max(self.fusion.candidates, k), keep)
            ranked = self.rank_candidates(chunk, found, category=category, scored=scored)
            for query, result, lists in zip(chunk, ranked, found):
                hits = self._fused_hits(query, result.items, k, explain)
                if not matched_only and len(hits) < k:
                    taken = {hit.product_id for hit in hits}
                    rest = (p for p in self.product_ids if p not in taken)
                    hits += [SearchHit(p, 0.0) for p, _ in zip(rest, range(k - len(hits)))]
                results.append((hits, lists))
        return results

    def _score_many(self, queries: list[str], indices: list[np.ndarray]) -> list[np.ndarray]:
        results = [np.zeros(len(chosen)) for chosen in indices]
        queries = self._searched(queries)
        for start in range(0, len(queries), QUERY_CHUNK):
            chunk = queries[start:start + QUERY_CHUNK]
            for source in self.sources:
                weight = self.fusion.weight(source.name)
                if weight <= 0:
                    continue
                scores = np.asarray(source._scores(chunk), dtype=np.float64)
                kept = source._matches(scores)
                if source.name in self.fusion.min_scores:  # below its floor, not a candidate (as in `fuse`)
                    kept &= scores >= self.fusion.min_scores[source.name]
                scores = np.where(kept, scores, -np.inf)
                for row, position in zip(scores, range(start, start + len(chunk))):
                    chosen = indices[position]
                    matched = np.isfinite(row[chosen])
                    results[position][matched] += weight * self._normalised(row, chosen[matched])
        return results

    def _normalised(self, row: np.ndarray, chosen: np.ndarray) -> np.ndarray:
        """The fusion's normalised score of the products at `chosen`, fixed on the candidates."""
        if self.fusion.method == "rrf":
            return 1.0 / (self.fusion.rrf_k + catalog_ranks(row, chosen))
        candidates = row[top_k(row, self.fusion.candidates)]
        if len(candidates) == 0:
            return np.zeros(len(chosen))
        if self.fusion.normalisation == "minmax":
            low, high = candidates.min(), candidates.max()
            return (row[chosen] - low) / (high - low) if high > low else np.ones(len(chosen))
        mean, spread = candidates.mean(), candidates.std()
        return (row[chosen] - mean) / spread if spread > 0 else np.zeros(len(chosen))

    # --- persistence: each source in a folder of its own, the texts as JSON -------------

    def _save_files(self, folder: Path) -> None:
        for source in self.sources:
            source.save(folder / source.name)
        save_attributes(self.attributes, folder)
        if self.product_texts is not None:
            (folder / TEXTS_FILE).write_text(json.dumps(self.product_texts), encoding="utf-8")
        if self.speller is not None:
            (folder / SPELLING_FILE).write_text(json.dumps(self.speller.to_dict()), encoding="utf-8")

    def _restore(self, arrays: dict[str, np.ndarray], folder: Path) -> None:
        self.sources = [Retriever.load(folder / name) for name in self.config.sources]
        self.attributes = load_attributes(folder)
        texts = folder / TEXTS_FILE
        self.product_texts = json.loads(texts.read_text(encoding="utf-8")) if texts.exists() else None
        spelling = folder / SPELLING_FILE
        self.speller = (SpellingCorrector.from_dict(json.loads(spelling.read_text(encoding="utf-8")))
                        if spelling.exists() else None)


def _first_per_product(texts: Mapping[str, str] | pd.Series) -> dict[str, str]:
    """{product_id (str): text}; a repeated id keeps its first text, as `Retriever.fit` its first row."""
    if isinstance(texts, pd.Series):
        texts = texts[~texts.index.astype(str).duplicated()]
        return dict(zip(texts.index.astype(str), texts.astype(str)))
    return {str(product_id): str(text) for product_id, text in texts.items()}

