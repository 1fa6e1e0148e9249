"""The contract every retriever keeps, and the shared work behind it.

A retriever is fitted on a catalog (one row per product: ``product_id``,
``title`` and, when its config names them in `extra_fields`, more text columns
such as ``description`` or ``category``) and then answers:

- ``search(query, k)``: the k best products for a query, as `SearchHit`s
  (product id, score, structured `SearchReason`s), best first;
- ``search_many(queries, k)``: the same for many queries at once (batched,
  much faster for evaluation);
- ``score(query, product_ids)`` / ``score_many(queries, product_id_lists)``:
  the scores of given products, e.g. to rerank the products judged for a query.
  A product that is not in the catalog scores ``-inf``, so it sorts last;
- ``save(folder)`` / ``Retriever.load(folder)``: config (JSON) plus arrays (npz).

Every retriever ranks the whole catalog: ``k`` larger than the catalog returns
every product. Products that do not match the query at all (for BM25: no query
term in their text) rank after every match; ``matched_only=True`` leaves them
out, which is what a fusion of several retrievers asks for.

The base does the shared work: input checks, id mapping, batching, top-k
selection with deterministic ties (catalog order), unknown products and
persistence. A subclass only scores: it implements `_fit`, `_scores` and, where
it can, `_reasons`, `_matches`, `_arrays`/`_restore`. A retriever that composes
others (the hybrid) overrides `_search_many` and `_score_many` instead, and
reads its sources through `_ranked` (top-k positions and scores, no reasons)
and `_reasons`.

Adding a retriever is one new file with a subclass decorated by `@register`;
the contract tests and the pages pick it up from `REGISTRY`.

>>> import pandas as pd
>>> from recsys.search import get
>>> catalog = pd.DataFrame({"product_id": ["1", "2"], "title": ["Red mug", "Garden chair"]})
>>> [hit.product_id for hit in get("bm25")().fit(catalog).search("red mug", k=1)]
['1']
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Iterator
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from recsys.config import JsonConfig
from recsys.registry import Registry

REGISTRY = Registry("retriever")
register = REGISTRY.register

# Queries scored at once by the default `_search_many`: bounds the (queries x
# catalog) score matrix to about 100 MB for a 100k-product catalog.
QUERY_CHUNK = 256


@dataclass
class SearchReason:
    """One reason a product was found.

    `kind` is "term" (a query word found in the product's text; `term` is the
    indexed form of the word), "cosine" (similarity of query and product
    embeddings), "rerank" (the reranker's move) or "spelling" (the query
    was searched with misspelled words corrected); `weight` is its contribution
    to the source's score.
    """

    kind: str
    text: str
    weight: float = 0.0
    term: str | None = None


@dataclass
class SearchHit:
    """One product found for a query, with its score and why.

    A fused hit also has `sources` (source name -> `recsys.fusion.SourceScore`:
    rank, raw and normalised score, contribution) and the `effects` of the
    business rules that moved it (`recsys.fusion.rules.RuleEffect`).
    """

    product_id: str
    score: float
    reasons: list[SearchReason] = field(default_factory=list)
    sources: dict[str, Any] = field(default_factory=dict)
    effects: list[Any] = field(default_factory=list)


@dataclass
class RetrieverConfig(JsonConfig):
    """Base of every retriever's config: a dataclass that round-trips through JSON.

    `extra_fields` names catalog columns appended to the title to make a
    product's text, e.g. ``["category", "description"]``.
    """

    extra_fields: list[str] = field(default_factory=list)


def check_query(query: Any) -> str:
    """`query` if it is a non-blank string; a ValueError that says what to do otherwise."""
    if not isinstance(query, str):
        raise ValueError(f"a search query must be text, not {type(query).__name__}")
    if not query.strip():
        raise ValueError("the search query is empty; type at least one word to search for")
    return query


def check_k(k: Any) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k <= 0:
        raise ValueError(f"k, the number of results, must be a positive whole number, not {k!r}")
    return int(k)


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest finite scores, best first; ties broken by index.

    >>> top_k(np.array([0.2, 0.9, 0.2, -np.inf, 0.5]), 3)
    array([1, 4, 0])
    """
    finite = np.isfinite(scores)
    k = min(k, int(finite.sum()))
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    ascending = np.where(finite, -scores, np.inf)
    threshold = np.partition(ascending, k - 1)[k - 1]
    # Everything tied with the k-th score is kept, so the cut below goes by index.
    top = np.flatnonzero(ascending <= threshold)
    return top[np.lexsort((top, ascending[top]))][:k]


def catalog_ranks(scores: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """1-based position of `indices` in the ranking of all `scores` (as `top_k` orders them).

    >>> catalog_ranks(np.array([0.5, 0.9, 0.5, 0.1]), np.array([2, 0, 1]))
    array([3, 2, 1])
    """
    if len(indices) > 64:  # one sort beats a comparison with every score per index
        order = np.lexsort((np.arange(len(scores)), -scores))
        positions = np.empty(len(scores), dtype=np.int64)
        positions[order] = np.arange(1, len(scores) + 1)
        return positions[indices]
    chosen = scores[indices]
    higher = (scores[None, :] > chosen[:, None]).sum(axis=1)
    tied_before = ((scores[None, :] == chosen[:, None])
                   & (np.arange(len(scores))[None, :] < indices[:, None])).sum(axis=1)
    return higher + tied_before + 1


class QueryScores:
    """What one retriever says of the catalog for one query, as far as the hybrid and its reranker
    read it: its best matching products (`top`), its score of given products (`at`) and how many
    products it matches. This one holds the score of every product; a retriever that finds its best
    products without scoring them all (`recsys.search.dense` through a nearest-neighbour graph)
    gives its own."""

    def __init__(self, row: np.ndarray, hits: np.ndarray):
        self.row, self.hits = row, hits
        self.matches = int(hits.sum())
        self._tops: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # the candidates' and a reranker's

    def top(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(catalog positions, scores) of its k best matching products, best first."""
        if k not in self._tops:
            # Among the matching products only: BM25 matches a few thousand of 55,000, and the cut
            # then sorts those instead of the catalog. Positions keep catalog order, so ties still go by index.
            matching = np.flatnonzero(self.hits)
            best = matching[top_k(self.row[matching], k)]
            self._tops[k] = best, self.row[best]
        return self._tops[k]

    def at(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(score, whether it matches) of the products at `indices`; the score is 0 where it does not."""
        matched = self.hits[indices]
        return np.where(matched, self.row[indices], 0.0), matched


class Retriever:
    """Base class; see the module docstring for the contract."""

    name: ClassVar[str]
    Config: ClassVar[type[RetrieverConfig]] = RetrieverConfig

    def __init__(self, config: RetrieverConfig | dict | None = None, **params):
        self.config = self.Config.resolve(config, **params)
        self.product_ids = np.array([], dtype=object)
        self._index: dict[str, int] = {}

    # --- fitting ---------------------------------------------------------------

    def fit(self, catalog: pd.DataFrame) -> Retriever:
        """Index `catalog`: product_id and title, plus the config's `extra_fields`.

        Product ids are compared as strings; a repeated id keeps its first row.
        """
        needed = ["product_id", "title", *self.config.extra_fields]
        missing = [column for column in needed if column not in catalog.columns]
        if missing:
            raise ValueError(f"the catalog needs the column(s) {missing}; it has "
                             f"{list(catalog.columns)}")
        if len(catalog) == 0:
            raise ValueError("the catalog is empty: there is nothing to search")
        catalog = catalog.assign(product_id=catalog["product_id"].astype(str))
        catalog = catalog.drop_duplicates("product_id", keep="first").reset_index(drop=True)
        self.product_ids = catalog["product_id"].to_numpy(dtype=object)
        self._index = {p: i for i, p in enumerate(self.product_ids)}
        self._fit(catalog)
        return self

    def texts(self, catalog: pd.DataFrame) -> list[str]:
        """Each product's text: its title, then the config's `extra_fields`, blanks skipped."""
        columns = ["title", *self.config.extra_fields]
        parts = catalog[columns].astype("string").fillna("")
        joined = parts[columns[0]].str.strip()
        for column in columns[1:]:
            extra = parts[column].str.strip()
            joined = joined.where(extra == "", joined + ". " + extra)
        return joined.tolist()

    def _fit(self, catalog: pd.DataFrame) -> None:
        """Build the index of `catalog` (string product_id, deduplicated, in `self.product_ids` order)."""
        raise NotImplementedError

    # --- scoring (subclasses) ----------------------------------------------------

    def _scores(self, queries: list[str]) -> np.ndarray:
        """Scores of every product, shape (len(queries), n_products); higher is better."""
        raise NotImplementedError

    def _matches(self, scores: np.ndarray) -> np.ndarray:
        """Which of `scores` (any shape) belong to products that match the query at all."""
        return np.isfinite(scores)

    def _query_scores(self, queries: list[str]) -> list[QueryScores]:
        """Each query's `QueryScores` (at most a chunk of queries at a time): by default every
        product's score (`_scores`) and which match (`_matches`)."""
        rows = np.asarray(self._scores(queries), dtype=np.float64)
        return [QueryScores(row, hits) for row, hits in zip(rows, self._matches(rows))]

    def _reasons(self, query: str, indices: np.ndarray, scores: np.ndarray) -> list[list[SearchReason]]:
        """Reasons for the products at `indices` (their `scores` given), one list each."""
        return [[] for _ in indices]

    def _ranked(self, queries: list[str], k: int,
                matched_only: bool) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(catalog positions, scores) of the top-k products of each query, in chunks of queries."""
        for start in range(0, len(queries), QUERY_CHUNK):
            scores = np.asarray(self._scores(queries[start:start + QUERY_CHUNK]), dtype=np.float64)
            if matched_only:
                scores = np.where(self._matches(scores), scores, -np.inf)
            for row in scores:
                top = top_k(row, k)
                yield top, row[top]

    def _hits(self, query: str, indices: np.ndarray, scores: np.ndarray) -> list[SearchHit]:
        reasons = self._reasons(query, indices, scores)
        return [SearchHit(self.product_ids[i], float(score), why)
                for i, score, why in zip(indices, scores, reasons)]

    def _search_many(self, queries: list[str], k: int, matched_only: bool) -> list[list[SearchHit]]:
        return [self._hits(query, indices, scores)
                for query, (indices, scores) in zip(queries, self._ranked(queries, k, matched_only))]

    def _score_many(self, queries: list[str], indices: list[np.ndarray]) -> list[np.ndarray]:
        """Scores of the products at `indices` (valid catalog positions) for each query."""
        results = []
        for start in range(0, len(queries), QUERY_CHUNK):
            scores = np.asarray(self._scores(queries[start:start + QUERY_CHUNK]), dtype=np.float64)
            results += [row[chosen] for row, chosen in zip(scores, indices[start:start + QUERY_CHUNK])]
        return results

    # --- the contract --------------------------------------------------------------

    @property
    def fitted(self) -> bool:
        return len(self.product_ids) > 0

    def search(self, query: str, k: int = 10, *, matched_only: bool = False) -> list[SearchHit]:
        """The top-k products for `query`, best first; the whole catalog when k exceeds it.

        Raises ValueError for a blank query or a k that is not positive. With
        `matched_only`, products that do not match the query at all are left out.
        """
        return self.search_many([query], k, matched_only=matched_only)[0]

    def search_many(self, queries: list[str], k: int = 10, *,
                    matched_only: bool = False) -> list[list[SearchHit]]:
        """`search` for many queries at once (encoded and scored in batches)."""
        self._check_fitted()
        queries = [check_query(query) for query in queries]
        k = check_k(k)
        if not queries:
            return []
        return self._search_many(queries, k, matched_only)

    def score(self, query: str, product_ids: list[str]) -> np.ndarray:
        """Scores of `product_ids` for `query`, shape (len(product_ids),); -inf for unknown ids."""
        return self.score_many([query], [product_ids])[0]

    def score_many(self, queries: list[str], product_id_lists: list[list[str]]) -> list[np.ndarray]:
        """`score` for many queries at once, each with its own products."""
        self._check_fitted()
        queries = [check_query(query) for query in queries]
        if len(queries) != len(product_id_lists):
            raise ValueError(f"{len(queries)} queries but {len(product_id_lists)} lists of products")
        positions = [np.array([self._index.get(str(p), -1) for p in ids], dtype=np.int64)
                     for ids in product_id_lists]
        known = [chosen[chosen >= 0] for chosen in positions]
        scored = self._score_many(queries, known) if queries else []
        results = []
        for chosen, values in zip(positions, scored):
            row = np.full(len(chosen), -np.inf)
            row[chosen >= 0] = values
            results.append(row)
        return results

    def explain(self, query: str, product_ids: list[str]) -> list[list[SearchReason]]:
        """Why each of `product_ids` matches `query` (e.g. the matched terms); [] for unknown ids."""
        scores = self.score(query, product_ids)
        known = [i for i, p in enumerate(product_ids) if str(p) in self._index]
        reasons: list[list[SearchReason]] = [[] for _ in product_ids]
        if known:
            indices = np.array([self._index[str(product_ids[i])] for i in known], dtype=np.int64)
            for i, why in zip(known, self._reasons(query, indices, scores[known])):
                reasons[i] = why
        return reasons

    def _check_fitted(self) -> None:
        if not self.fitted:
            raise RuntimeError(f"{self.name} is not fitted; call fit(catalog) first")

    # --- persistence ---------------------------------------------------------------

    def _arrays(self) -> dict[str, np.ndarray]:
        """The arrays a subclass needs to score again after `load`."""
        return {}

    def _restore(self, arrays: dict[str, np.ndarray], folder: Path) -> None:
        """Rebuild the index from `_arrays` (and any files the subclass wrote into `folder`)."""

    def _save_files(self, folder: Path) -> None:
        """Write files other than arrays.npz (e.g. a library's own index format)."""

    def save(self, folder: str | Path) -> Path:
        """Write config.json and arrays.npz (plus any files of the subclass) into `folder`."""
        self._check_fitted()
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        arrays = {"product_ids": self.product_ids.astype(str),
                  **{f"model_{k}": v for k, v in self._arrays().items()}}
        # Uncompressed: embeddings barely compress and would load slower.
        np.savez(folder / "arrays.npz", **arrays)
        self._save_files(folder)
        meta = {"retriever": self.name, "config": self.config.to_dict()}
        (folder / "config.json").write_text(json.dumps(meta, indent=2))
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> Retriever:
        """Load what `save` wrote; on the base class, the saved retriever is chosen."""
        folder = Path(folder)
        meta = json.loads((folder / "config.json").read_text())
        target = REGISTRY[meta["retriever"]] if cls is Retriever else cls
        if target.name != meta["retriever"]:
            raise ValueError(f"{folder} holds a {meta['retriever']} retriever, not {target.name}")
        retriever = target(target.Config.from_dict(meta["config"]))
        with np.load(folder / "arrays.npz", allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
        retriever.product_ids = arrays["product_ids"].astype(object)
        retriever._index = {p: i for i, p in enumerate(retriever.product_ids)}
        retriever._restore({k[len("model_"):]: v for k, v in arrays.items() if k.startswith("model_")},
                           folder)
        return retriever
