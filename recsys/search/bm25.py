"""BM25: lexical retrieval over product texts, scored by the `bm25s` package.

What it computes: for a query with terms t and a product text d,
``score(d) = sum_t idf(t) * tf(t, d) * (k1 + 1) / (tf(t, d) + k1 * (1 - b + b * |d| / avgdl))``
with Lucene's idf ``log(1 + (N - df + 0.5) / (df + 0.5))`` (Robertson and Zaragoza,
"The Probabilistic Relevance Framework: BM25 and Beyond", 2009; bm25s: Lù, 2024,
arXiv:2407.03618). A repeated query term counts once per occurrence.

Tokenisation is made for shop catalogs such as Home Depot's:

- lower-cased; words are runs of letters, numbers keep their decimal point or
  fraction bar ("1/2", "2.5", "16/3"), digits and letters are split ("9x12" ->
  9 x 12, "30in" -> 30 in), thousands separators dropped ("1,000" -> 1000);
- units are written one way: "in." / "inch" / "inches" / ``"`` after a number
  -> "inch" (so "in" is not dropped as a stop word), "ft" / "feet" / "foot" ->
  "ft", "gallon" -> "gal", "pounds" / "lbs" -> "lb", and a few more;
- Lucene's 33 English stop words are dropped, words are Snowball-stemmed
  (PyStemmer) so "hinges" finds "hinge".

Reasons name each matched query word with its contribution to the score.

>>> import pandas as pd
>>> catalog = pd.DataFrame({"product_id": ["a", "b"],
...                         "title": ["Everbilt 1/2 in. Galvanized Hinge", "Oak Door"]})
>>> hit = BM25Retriever().fit(catalog).search("1/2 inch hinges", k=1)[0]
>>> hit.product_id, [reason.term for reason in hit.reasons]
('a', ['1/2', 'inch', 'hing'])
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from recsys.search.base import Retriever, RetrieverConfig, SearchReason, register

# A number with its decimal point, thousands separator or fraction bar, or a run of letters.
_TOKEN = re.compile(r"\d+(?:[.,/]\d+)*|[^\W\d_]+")
# 12" -> 12 inch, 8' -> 8 ft (quotes after a number are units, elsewhere punctuation).
_INCH_MARK = re.compile(r"(\d)\s*(?:\"|''|”|″)")
_FOOT_MARK = re.compile(r"(\d)\s*(?:'|’|′)(?!\w)")

# Unit spellings written one way. Those in _AFTER_NUMBER are only units right
# after a number ("in" is a stop word elsewhere; "v" or "w" may be initials).
_UNITS = {
    "inch": "inch", "inches": "inch", "feet": "ft", "foot": "ft",
    "gallon": "gal", "gallons": "gal", "lbs": "lb", "pound": "lb", "pounds": "lb",
    "ounce": "oz", "ounces": "oz", "volts": "volt", "watts": "watt",
    "amps": "amp", "ampere": "amp", "amperes": "amp",
}
_AFTER_NUMBER = {"in": "inch", "ft": "ft", "gal": "gal", "lb": "lb", "oz": "oz",
                 "v": "volt", "w": "watt", "a": "amp"}
_NUMBER = re.compile(r"\d")
STOPWORDS_EN = frozenset((
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into", "is", "it",
    "no", "not", "of", "on", "or", "such", "that", "the", "their", "then", "there", "these", "they",
    "this", "to", "was", "will", "with"))


class Tokenizer:
    """Text -> index terms, as described in the module docstring.

    >>> Tokenizer().tokens('Pipe 1-1/4 in. x 10 ft. 3/4" Valves, 1,000-Pack')
    ['pipe', '1', '1/4', 'inch', 'x', '10', 'ft', '3/4', 'inch', 'valv', '1000', 'pack']
    """

    def __init__(self, stemmer: str | None = "english", stopwords: bool = True):
        self.stopwords = STOPWORDS_EN if stopwords else frozenset()
        self._stem = _stemmer(stemmer) if stemmer else None

    def terms(self, text: str) -> list[tuple[str, str]]:
        """(word as written, index term) pairs of `text`, stop words left out."""
        text = _FOOT_MARK.sub(r"\1 ft ", _INCH_MARK.sub(r"\1 inch ", text.lower()))
        words = _TOKEN.findall(text)
        pairs = []
        previous_is_number = False
        for word in words:
            is_number = bool(_NUMBER.match(word))
            term = word.replace(",", "") if is_number else word
            if not is_number:
                term = _UNITS.get(term, term)
                if previous_is_number:
                    term = _AFTER_NUMBER.get(term, term)
            previous_is_number = is_number
            if term in self.stopwords:
                continue
            pairs.append((word, term))
        if self._stem and pairs:
            stems = self._stem(tuple(term for _, term in pairs))
            pairs = [(word, stem) for (word, _), stem in zip(pairs, stems)]
        return pairs

    def tokens(self, text: str) -> list[str]:
        return [term for _, term in self.terms(text)]


@lru_cache(maxsize=4)
def _stemmer(language: str):
    import Stemmer

    stemmer = Stemmer.Stemmer(language)
    return stemmer.stemWords


@dataclass
class BM25Config(RetrieverConfig):
    # Term-frequency saturation and length normalisation. Product titles are short and
    # seldom repeat a word, so a term's weight should saturate sooner than with Lucene's
    # k1 1.2: on Home Depot's train + validation queries (spelling corrected) k1 0.5 with
    # b 0.75 gave nDCG@10 0.408 against 0.397 for 1.2 / 0.75, the best of k1 0.5 / 0.9 /
    # 1.2 x b 0.35 / 0.5 / 0.75 (docs/benchmarks.md, "BM25's parameters").
    k1: float = 0.5
    b: float = 0.75
    method: str = "lucene"  # bm25s variant: lucene or atire (see METHODS)
    stemmer: str | None = "english"  # a PyStemmer language, or None for no stemming
    stopwords: bool = True  # drop Lucene's English stop words


# Variants whose score is 0 exactly for a text without any query term and positive with
# one (robertson's idf turns negative for common terms; bm25l and bm25+ score every text).
METHODS = ("lucene", "atire")


@register
class BM25Retriever(Retriever):
    name = "bm25"
    Config = BM25Config

    def __init__(self, config=None, **params):
        super().__init__(config, **params)
        if self.config.method not in METHODS:
            raise ValueError(f"BM25 method {self.config.method!r} is not supported; "
                             f"choose one of {', '.join(METHODS)}")
        self.tokenizer = Tokenizer(self.config.stemmer, self.config.stopwords)
        self.index = None
        self._terms: dict[int, str] | None = None  # vocabulary id -> term, built when first needed

    def _fit(self, catalog: pd.DataFrame) -> None:
        import bm25s

        corpus = [self.tokenizer.tokens(text) or [""] for text in self.texts(catalog)]
        self.index = bm25s.BM25(k1=self.config.k1, b=self.config.b, method=self.config.method)
        self.index.index(corpus, show_progress=False)
        self._terms = None

    def _query_terms(self, query: str) -> tuple[list[str], list[int]]:
        """The query's words as written and their vocabulary ids, unknown words left out."""
        vocabulary = self.index.vocab_dict
        known = [(word, vocabulary[term]) for word, term in self.tokenizer.terms(query)
                 if term in vocabulary]
        return [word for word, _ in known], [term_id for _, term_id in known]

    def _scores(self, queries: list[str]) -> np.ndarray:
        scores = np.zeros((len(queries), len(self.product_ids)), dtype=np.float32)
        for row, query in enumerate(queries):
            _, term_ids = self._query_terms(query)
            if term_ids:
                scores[row] = self.index.get_scores_from_ids(term_ids)
        return scores

    def _matches(self, scores: np.ndarray) -> np.ndarray:
        # BM25 scores are positive exactly when a query term occurs in the text.
        return scores > 0

    def _reasons(self, query: str, indices: np.ndarray, scores: np.ndarray) -> list[list[SearchReason]]:
        words, term_ids = self._query_terms(query)
        reasons: list[list[SearchReason]] = [[] for _ in indices]
        matrix = self.index.scores  # CSC: per term, the sorted documents containing it and their scores
        counts: dict[int, int] = {}
        written: dict[int, str] = {}
        for word, term_id in zip(words, term_ids):
            counts[term_id] = counts.get(term_id, 0) + 1
            written.setdefault(term_id, word)
        for term_id, count in counts.items():
            start, end = matrix["indptr"][term_id], matrix["indptr"][term_id + 1]
            documents = matrix["indices"][start:end]
            if not len(documents):
                continue
            position = np.minimum(np.searchsorted(documents, indices), len(documents) - 1)
            for row in np.flatnonzero(documents[position] == indices):
                # A query word written twice counts twice, as in the score.
                weight = float(matrix["data"][start + position[row]]) * count
                reasons[row].append(SearchReason(
                    "term", f"'{written[term_id]}' in the text (+{weight:.2f})", weight,
                    self._term(term_id)))
        return reasons

    def _term(self, term_id: int) -> str:
        if self._terms is None:
            self._terms = {term_id: term for term, term_id in self.index.vocab_dict.items()}
        return self._terms[term_id]

    # --- persistence: bm25s's own format (npy arrays + JSON vocabulary), no pickles ---

    def _save_files(self, folder: Path) -> None:
        self.index.save(str(folder / "bm25s"), allow_pickle=False)

    def _restore(self, arrays: dict[str, np.ndarray], folder: Path) -> None:
        import bm25s

        self.index = bm25s.BM25.load(str(folder / "bm25s"), allow_pickle=False)
        self._terms = None
