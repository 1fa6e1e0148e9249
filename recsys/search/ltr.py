"""A learned ranker (LambdaMART): a second stage that reorders the hybrid's fused candidates
by the signals search already has, weighed by a model trained on the shop's judgments.

What it computes: fusion adds the sources' normalised scores with one weight
per source, the same for every query. A learned ranker instead reads, for each
of the fused list's first `top_n` products, the `features` below and scores it
with gradient-boosted trees trained with the LambdaMART objective, which
optimises nDCG directly (Burges, "From RankNet to LambdaRank to LambdaMART: An
Overview", 2010; LightGBM's ``lambdarank``). So it can trust semantic more for
a long descriptive query and BM25 more where every query word is in the title.
It reads no text with a transformer: on the 2-core machine it adds about 1.5 ms
to a search over the top 100 (reading the scores the hybrid found its candidates
with; its trees compiled to machine code, `recsys.search.compiled_trees`), where a
cross-encoder on the top 20 adds 139 ms (docs/benchmarks.md).

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

The sources' signals come in each `recsys.search.rerank.RerankRequest`, computed by the hybrid
(`HybridRetriever.rerank_requests`); `features_of` turns them into the matrices the model reads.

A ranker is a folder: ``ranker.txt`` (the LightGBM booster) and ``ranker.json``
(the feature names, the sources it was trained with, its training metrics).
`recsys.training.ltr` trains one; `recsys.search.rerank.load_reranker` opens
it (as any kind of reranker), and a fusion preset's `reranker` names it.

>>> ranker = load_reranker("var/models/reranker/job7")                      # doctest: +SKIP
>>> ranker.scores(hybrid.rerank_requests(["toilet seat"], [fused[:100]], ranker.sources))  # doctest: +SKIP
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

from recsys.search.bm25 import Tokenizer
from recsys.search.compiled_trees import compiled_trees
from recsys.search.rerank import Reranker, RerankRequest, SourceSignals, register
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


def _source_columns(signals: SourceSignals) -> list[np.ndarray]:
    """One source's feature columns for a request's items (see the module docstring)."""
    scores = signals.scores
    top = np.array([score for _, score in signals.top], dtype=np.float64)
    # Min-max over the source's own top `depth`, as the weighted fusion normalises (beyond 0..1 for
    # products the source ranks lower), and the place in that top (depth + 1: not in it).
    low, high = (top.min(), top.max()) if len(top) else (0.0, 0.0)
    normalised = np.where(signals.matched, (scores - low) / (high - low) if high > low else 1.0, 0.0)
    size = len(scores)
    best = scores.max() if size else 0.0
    return [scores, normalised, signals.ranks, best - scores, np.full(size, best),
            np.full(size, np.log1p(signals.matches))]


@lru_cache(maxsize=1)
def _tokenizer() -> Tokenizer:
    return Tokenizer()


@dataclass(frozen=True)
class _Analysed:
    """A text as BM25 indexes it (its terms in order, as a set, its adjacent pairs, its numbers),
    and the letter trigrams of its lower-cased words joined by single spaces (`_trigram_codes`)."""

    terms: tuple[str, ...]
    words: frozenset[str]
    pairs: frozenset[tuple[str, str]]
    numbers: frozenset[str]
    trigrams: np.ndarray


_CODE_POINTS = np.uint64(0x110000)  # one more than the largest Unicode code point


def _trigram_codes(letters: str) -> np.ndarray:
    """The distinct trigrams of `letters` (every 3 characters in a row), sorted, each as one
    integer: its three code points as digits in base 0x110000 (below 2**61, so no two trigrams
    share one). A text contains a query's trigram when its joined words do; comparing these
    arrays for the 100 candidates of a search takes a few numpy calls instead of a substring
    search per trigram and text (0.35 ms a search in Python)."""
    if len(letters) < 3:
        return np.zeros(0, dtype=np.uint64)
    points = np.frombuffer(letters.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    return np.unique((points[:-2] * _CODE_POINTS + points[1:-1]) * _CODE_POINTS + points[2:])


# Product texts of recent candidates; about 1 KB each for a title, more with a description.
@lru_cache(maxsize=50_000)
def _analysed(text: str) -> _Analysed:
    terms = tuple(_tokenizer().tokens(text))
    return _Analysed(terms, frozenset(terms), frozenset(zip(terms, terms[1:])),
                     frozenset(term for term in terms if term[:1].isdigit()),
                     _trigram_codes(" ".join(_WORD.findall(text.lower()))))


def _shared_trigrams(asked: np.ndarray, found: list[_Analysed]) -> np.ndarray:
    """The share of the trigrams `asked` (sorted codes) each of `found` contains."""
    if not len(asked) or not found:
        return np.zeros(len(found))
    sizes = np.array([len(text.trigrams) for text in found])
    ends = np.cumsum(sizes)
    codes = np.concatenate([text.trigrams for text in found])
    places = np.minimum(np.searchsorted(asked, codes), len(asked) - 1)
    shared = np.concatenate(([0], np.cumsum(asked[places] == codes)))  # codes of `asked` so far
    return (shared[ends] - shared[ends - sizes]) / len(asked)


def _text_columns(query: str, texts: list[str]) -> list[np.ndarray]:
    """The text features of `query` against each of `texts` (see the module docstring)."""
    asked = _analysed(query)
    found = [_analysed(text) for text in texts]
    size = max(len(asked.words), 1)

    def column(values) -> np.ndarray:
        return np.fromiter(values, dtype=np.float64, count=len(found))

    matched = column(len(asked.words & text.words) for text in found)
    first, last = (asked.terms[0], asked.terms[-1]) if asked.terms else ("", "")
    return [np.full(len(found), float(len(asked.words))), matched, matched / size,
            column(len(text.terms) for text in found),
            column(first in text.words for text in found), column(last in text.words for text in found),
            column(len(asked.pairs & text.pairs) for text in found),
            np.full(len(found), float(len(asked.numbers))),
            column(len(asked.numbers & text.numbers) for text in found),
            _shared_trigrams(asked.trigrams, found)]


def features_of(requests: Sequence[RerankRequest], sources: Sequence[str]) -> list[np.ndarray]:
    """Each request's feature matrix, one row per item (see the module docstring); its
    `sources` must hold the signals of each of `sources` (`HybridRetriever.rerank_requests`)."""
    results = []
    with stage("rerank"):
        for request in requests:
            missing = [name for name in sources if name not in request.sources]
            if missing:
                raise ValueError(f"this ranker reads the sources {list(sources)}, but the hybrid has no {missing}: "
                                 "train a ranker for this engine's sources")
            columns = [column for name in sources for column in _source_columns(request.sources[name])]
            columns += _text_columns(request.query, request.texts)
            results.append(np.column_stack(columns) if request.items else np.zeros((0, len(columns))))
    return results


@lru_cache(maxsize=4)
def _booster(path: str, identity: str):
    """The LightGBM booster in `path`; `identity` (the file's size and time) is only part of the key."""
    import lightgbm

    return lightgbm.Booster(model_file=path)


@register
class LearnedRanker(Reranker):
    """A saved learned-ranker folder, loaded once; scores a hybrid's fused items by their features."""

    kind = LEARNED_RANKER
    uses_sources = True

    def __init__(self, model_path: str | os.PathLike):
        path = Path(model_path)
        if not self.holds(path) or not (path / MODEL_FILE).is_file():
            raise FileNotFoundError(f"{path} is not a learned-ranker folder (it needs {MODEL_FILE} and "
                                    f"{META_FILE}); train one with `recsys.training.ltr.train_ranker`")
        self.path = path.resolve()
        self.meta = json.loads((path / META_FILE).read_text(encoding="utf-8"))
        self.features = list(self.meta["features"])
        if self.features != feature_names(self.sources):
            raise ValueError(f"{path} was saved with features {self.features}, which this version does not "
                             f"compute ({feature_names(self.sources)}): train it again")
        model = self.path / MODEL_FILE
        stat = model.stat()
        self.booster = _booster(str(model), f"{stat.st_size}-{stat.st_mtime_ns}")
        # The same trees as machine code (None without a C compiler): the same scores, 2-3 times faster.
        self.compiled = compiled_trees(model)

    @staticmethod
    def holds(folder: Path) -> bool:
        return (folder / META_FILE).is_file()

    @property
    def sources(self) -> list[str]:
        return list(self.meta["sources"])

    @property
    def depth(self) -> int | None:
        """Its training's fusion `candidates`: the size of each source's own top that places an item."""
        return self.meta.get("fusion", {}).get("candidates")

    def check_fits(self, hybrid) -> None:
        """ValueError when `hybrid` searches with another embedding model than this ranker was trained
        over (the semantic scores it learned to read have moved), or another catalog (fewer than half
        of the products it saw, of a sample it kept, are in `hybrid`'s). Rankers saved before these
        were recorded are not checked."""
        trained_over = self.meta.get("embedding_model")
        if trained_over is not None and trained_over != hybrid.embedding_identity():
            raise ValueError(f"the learned ranker {self.path} was trained over another embedding model "
                             f"({self.meta.get('embedding_model_path') or 'the shipped one'}) than this "
                             "search uses: train it again over this model, or search with the model it "
                             "was trained over")
        sample = self.meta.get("catalog", {}).get("sample") or []
        known = sum(product_id in hybrid._index for product_id in sample)
        if sample and known * 2 < len(sample):
            raise ValueError(f"the learned ranker {self.path} was trained over another catalog: only "
                             f"{known} of {len(sample)} products it recorded are in this one; train it "
                             "again on this catalog")

    @classmethod
    def saved_top_n(cls, folder: Path) -> int | None:
        try:
            return int(json.loads((folder / META_FILE).read_text(encoding="utf-8"))["config"]["top_n"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def predict(self, matrices: Sequence[np.ndarray]) -> list[np.ndarray]:
        """The model's score of each row of each query's feature matrix."""
        sizes = [len(matrix) for matrix in matrices]
        if not sum(sizes):
            return [np.zeros(0) for _ in matrices]
        with stage("rerank"):
            rows = np.vstack([m for m in matrices if len(m)])
            flat = (self.compiled.predict(rows) if self.compiled is not None
                    else self.booster.predict(rows, num_threads=1))
        return np.split(np.asarray(flat, dtype=np.float64), np.cumsum(sizes)[:-1])

    def scores(self, requests: Sequence[RerankRequest]) -> list[np.ndarray]:
        return self.predict(features_of(requests, self.sources))
