"""A learned ranker (LambdaMART): a second stage that reorders the hybrid's fused candidates
by the signals search already has, weighed by a model trained on the shop's judgments.

What it computes: fusion adds the sources' normalised scores with one weight
per source, the same for every query. A learned ranker instead reads, for each
of the fused list's first `top_n` products, the `features` below and scores it
with gradient-boosted trees trained with the LambdaMART objective, which
optimises nDCG directly (Burges, "From RankNet to LambdaRank to LambdaMART: An
Overview", 2010; LightGBM's ``lambdarank``). So it can trust semantic more for
a long descriptive query and BM25 more where every query word is in the title.
It reads no text with a transformer: on the 2-core machine it adds about 11 ms
to a search over the top 100 (mostly scoring them with both sources again),
where a cross-encoder on the top 20 adds 139 ms (docs/benchmarks.md).

Features of a (query, product) pair, for each source of the hybrid (`bm25`,
`semantic`, ...): the source's raw score of the product (scored for every
candidate, also those the source did not retrieve itself: BM25 0 when no query
word matches), that score min-max normalised over the source's own top
`candidates` (as the weighted fusion normalises; below 0 for products it ranks
lower; `candidates` as the ranker was trained), the product's place in that top
(`candidates` + 1 when not in it), its
gap to the best score among the reranked items, that best score, and how many
catalog products the source matches at all (log); and from the texts, read as
BM25's default tokeniser reads them (stems, units written one way): the number of query terms,
how many of them and which share the product text contains, the text's length
in terms, whether it contains the query's first and last term (a query usually
ends with the kind of product), how many adjacent query-term pairs it contains
in the same order, how many numbers the query has and the text shares, and the
share of the query's letter trigrams the text contains (which catches compound
words and spellings the correction left: "snowblower" and "Snow Blower"). The
query is read as spelling correction left it.

A ranker is a folder: ``ranker.txt`` (the LightGBM booster) and ``ranker.json``
(the feature names, the sources it was trained with, its training metrics).
`recsys.training.ltr` trains one; `load_reranker` opens either kind of
reranker folder, and a fusion preset's `reranker` names it.

>>> ranker = load_reranker("var/models/reranker/job7")          # doctest: +SKIP
>>> ranker.rerank_hybrid(hybrid, ["toilet seat"], [fused], top_n=100)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from recsys.fusion.base import FusedItem
from recsys.search.base import QUERY_CHUNK, top_k
from recsys.search.bm25 import Tokenizer
from recsys.search.rerank import Reranker, reordered
from recsys.timing import stage

LEARNED_RANKER = "learned ranker"
MODEL_FILE = "ranker.txt"
META_FILE = "ranker.json"
SOURCE_FEATURES = ("score", "normalised", "rank", "gap", "best", "matches_log")
TEXT_FEATURES = ("query_terms", "matched_terms", "matched_share", "text_terms", "first_term_matched",
                 "last_term_matched", "matched_pairs", "query_numbers", "matched_numbers", "matched_trigrams")
_WORD = re.compile(r"[^\W_]+")  # runs of letters and digits, for the letter trigrams


def feature_names(sources: Sequence[str]) -> list[str]:
    """The features of a hybrid over `sources`, in the order the model reads them."""
    return [f"{source}_{name}" for source in sources for name in SOURCE_FEATURES] + list(TEXT_FEATURES)


def _source_columns(row: np.ndarray, hits: np.ndarray, indices: np.ndarray, depth: int) -> list[np.ndarray]:
    """One source's feature columns for the products at `indices`, from its scores of the whole
    catalog (`row`; `hits`: which of them match the query at all)."""
    scores = np.where(hits[indices], row[indices], 0.0)
    retrieved = top_k(np.where(hits, row, -np.inf), depth)
    # Min-max over the source's own top `depth`, as the weighted fusion normalises (beyond 0..1 for
    # products the source ranks lower), and the place in that top (depth + 1: not in it).
    low, high = (row[retrieved].min(), row[retrieved].max()) if len(retrieved) else (0.0, 0.0)
    normalised = np.where(hits[indices], (row[indices] - low) / (high - low) if high > low else 1.0, 0.0)
    places = dict(zip(retrieved.tolist(), range(1, len(retrieved) + 1)))
    ranks = np.array([places.get(i, depth + 1) for i in indices.tolist()], dtype=np.float64)
    best = scores.max() if len(scores) else 0.0
    size = len(indices)
    return [scores, normalised, ranks, best - scores, np.full(size, best), np.full(size, np.log1p(hits.sum()))]


@lru_cache(maxsize=1)
def _tokenizer() -> Tokenizer:
    return Tokenizer()


@dataclass(frozen=True)
class _Analysed:
    """A text as BM25 indexes it (its terms in order, as a set, its adjacent pairs, its numbers),
    and its lower-cased words joined by single spaces (for letter trigrams)."""

    terms: tuple[str, ...]
    words: frozenset[str]
    pairs: frozenset[tuple[str, str]]
    numbers: frozenset[str]
    letters: str

    @property
    def trigrams(self) -> frozenset[str]:
        return frozenset(self.letters[i:i + 3] for i in range(len(self.letters) - 2))


# Product texts of recent candidates; a few KB each for a title, more with a description.
@lru_cache(maxsize=50_000)
def _analysed(text: str) -> _Analysed:
    terms = tuple(_tokenizer().tokens(text))
    return _Analysed(terms, frozenset(terms), frozenset(zip(terms, terms[1:])),
                     frozenset(term for term in terms if term[:1].isdigit()),
                     " ".join(_WORD.findall(text.lower())))


def _text_columns(query: str, texts: list[str]) -> list[np.ndarray]:
    """The text features of `query` against each of `texts` (see the module docstring)."""
    asked = _analysed(query)
    found = [_analysed(text) for text in texts]
    size = max(len(asked.words), 1)

    def column(values) -> np.ndarray:
        return np.fromiter(values, dtype=np.float64, count=len(found))

    matched = column(len(asked.words & text.words) for text in found)
    trigrams = asked.trigrams  # a text contains a trigram when its joined words do
    first, last = (asked.terms[0], asked.terms[-1]) if asked.terms else ("", "")
    return [np.full(len(found), float(len(asked.words))), matched, matched / size,
            column(len(text.terms) for text in found),
            column(first in text.words for text in found), column(last in text.words for text in found),
            column(len(asked.pairs & text.pairs) for text in found),
            np.full(len(found), float(len(asked.numbers))),
            column(len(asked.numbers & text.numbers) for text in found),
            column(sum(gram in text.letters for gram in trigrams) / max(len(trigrams), 1) for text in found)]


def candidate_features(hybrid, queries: Sequence[str], tops: Sequence[Sequence[FusedItem]],
                       sources: Sequence[str] | None = None, depth: int | None = None) -> list[np.ndarray]:
    """Each query's feature matrix, one row per item of its `tops` (see the module docstring).

    `queries` are read as typed: spelling correction is applied here, as the
    hybrid's candidates were found. `sources` (default: all of the hybrid's)
    must be sources of the hybrid; each scores every item, whatever its weight.
    `depth` is the size of each source's own top that normalises and places an
    item (default the hybrid's fusion `candidates`; a ranker passes its training's).
    """
    by_name = {source.name: source for source in hybrid.sources}
    sources = list(sources or by_name)
    missing = [name for name in sources if name not in by_name]
    if missing:
        raise ValueError(f"this ranker reads the sources {sources}, but the hybrid has no {missing}: "
                         "train a ranker for this engine's sources")
    searched = [hybrid.correct(query).query for query in queries]
    texts = hybrid.product_texts or {}
    depth = depth or hybrid.fusion.candidates
    results = []
    with stage("rerank"):
        columns_by_query: list[list[np.ndarray]] = [[] for _ in queries]
        for name in sources:
            source = by_name[name]
            for start in range(0, len(queries), QUERY_CHUNK):
                chunk = searched[start:start + QUERY_CHUNK]
                rows = np.asarray(source._scores(chunk), dtype=np.float64)
                matched = source._matches(rows)
                for offset, (row, hits) in enumerate(zip(rows, matched)):
                    position = start + offset
                    indices = np.array([hybrid._index[item.product_id] for item in tops[position]], dtype=int)
                    columns_by_query[position] += _source_columns(row, hits, indices, depth)
        for query, top, columns in zip(searched, tops, columns_by_query):
            columns += _text_columns(query, [texts.get(item.product_id, "") for item in top])
            results.append(np.column_stack(columns) if len(top) else np.zeros((0, len(columns))))
    return results


@lru_cache(maxsize=4)
def _booster(path: str, identity: str):
    """The LightGBM booster in `path`; `identity` (the file's size and time) is only part of the key."""
    import lightgbm

    return lightgbm.Booster(model_file=path)


class LearnedRanker:
    """A saved learned-ranker folder, loaded once; scores and reorders a hybrid's fused items."""

    def __init__(self, model_path: str | os.PathLike):
        path = Path(model_path)
        if not (path / MODEL_FILE).is_file() or not (path / META_FILE).is_file():
            raise FileNotFoundError(f"{path} is not a learned-ranker folder (it needs {MODEL_FILE} and "
                                    f"{META_FILE}); train one with `recsys.training.ltr.train_ranker`")
        self.path = path.resolve()
        self.meta = json.loads((path / META_FILE).read_text(encoding="utf-8"))
        self.sources = list(self.meta["sources"])
        self.features = list(self.meta["features"])
        if self.features != feature_names(self.sources):
            raise ValueError(f"{path} was saved with features {self.features}, which this version does not "
                             f"compute ({feature_names(self.sources)}): train it again")
        model = self.path / MODEL_FILE
        stat = model.stat()
        self.booster = _booster(str(model), f"{stat.st_size}-{stat.st_mtime_ns}")

    def predict(self, matrices: Sequence[np.ndarray]) -> list[np.ndarray]:
        """The model's score of each row of each query's feature matrix."""
        sizes = [len(matrix) for matrix in matrices]
        if not sum(sizes):
            return [np.zeros(0) for _ in matrices]
        with stage("rerank"):
            flat = self.booster.predict(np.vstack([m for m in matrices if len(m)]), num_threads=1)
        return np.split(np.asarray(flat, dtype=np.float64), np.cumsum(sizes)[:-1])

    def scores_many(self, hybrid, queries: Sequence[str], tops: Sequence[Sequence[FusedItem]]) -> list[np.ndarray]:
        """The ranker's score of each query's `tops` items (queries as typed)."""
        depth = self.meta.get("fusion", {}).get("candidates")
        return self.predict(candidate_features(hybrid, queries, tops, self.sources, depth))

    def rerank_hybrid(self, hybrid, queries: Sequence[str], items: Sequence[Sequence[FusedItem]],
                      top_n: int) -> list[list[FusedItem]]:
        """Each query's fused `items` (queries as typed) with the first `top_n` reordered by the
        ranker's score (as `recsys.search.rerank.Reranker.rerank_hybrid`; its part is under
        `sources["rerank"]`)."""
        tops = [list(ranked[:max(top_n, 0)]) for ranked in items]
        return reordered(items, tops, self.scores_many(hybrid, queries, tops), LEARNED_RANKER)


def is_learned_ranker(model_path: str | os.PathLike) -> bool:
    return (Path(model_path) / META_FILE).is_file()


def trained_top_n(model_path: str | os.PathLike) -> int | None:
    """How many fused items the learned ranker in `model_path` was trained to order; None when
    the folder holds no readable learned ranker."""
    try:
        return int(json.loads((Path(model_path) / META_FILE).read_text(encoding="utf-8"))["config"]["top_n"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def load_reranker(model_path: str | os.PathLike) -> LearnedRanker | Reranker:
    """The reranker saved in `model_path`: a learned ranker or a cross-encoder, by what the folder holds."""
    return LearnedRanker(model_path) if is_learned_ranker(model_path) else Reranker(model_path)
