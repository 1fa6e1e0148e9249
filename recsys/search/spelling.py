"""Query spelling correction against the catalog's own words ("toliet" -> "toilet").

What it does: a query word of 4 or more letters that no product text contains
(neither as written nor by its Snowball stem, so "hinges" is left alone when
the catalog says "hinge") is replaced by the catalog word closest to it:

1. a catalog word one edit away (Damerau-Levenshtein: insert, delete, replace
   or swap two neighbours), the most frequent in the catalog if several are;
2. else the word split in two catalog words ("snowblower" -> "snow blower",
   "rustoleum" -> "rust oleum" where the catalog writes "Rust-Oleum"), the
   split whose rarer half is the most frequent;
3. else a catalog word two edits away (words of 6 letters or more only: a short
   word two edits away is usually another word, not a typo).

Words with digits (model numbers, sizes), English stop words and words the
catalog knows are never changed, so a correction only replaces words that could not match anything as
typed. The dictionary lookup is SymSpell's symmetric-delete search (Garbe,
2012; the `symspellpy` package); the dictionary is every word of the product
texts with its count.

About a sixth of Home Depot's real queries have such a word ("porcelin",
"cieling", "rainbird"); correcting them raised BM25's nDCG@10 over the 8,241
dev queries from 0.380 to 0.396 (docs/benchmarks.md, "Spelling correction").

>>> speller = SpellingCorrector().fit(["Toilet Seat, White", "Snow Blower 24 in.", "Ceiling Fan"])
>>> correction = speller.correct("white toliet for the cieling snowblower")
>>> correction.query
'white toilet for the ceiling snow blower'
>>> [(change.written, change.read_as) for change in correction.changes]
[('toliet', 'toilet'), ('cieling', 'ceiling'), ('snowblower', 'snow blower')]
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache

from recsys.search.bm25 import STOPWORDS_EN, Tokenizer

# Runs of letters: the words a correction may replace (numbers and codes are left alone).
_WORD = re.compile(r"[^\W\d_]+")
MIN_LENGTH = 4  # shorter words are too often abbreviations ("cw", "blk", "sku")
LONG_WORD = 6  # from this length two edits are allowed
MIN_PART = 2  # the shortest half of a split word


@dataclass
class SpellingChange:
    """One query word replaced: as the shopper wrote it, and what was searched for instead."""

    written: str
    read_as: str


@dataclass
class Correction:
    """A query as typed, as searched (`query`), and the words that changed (none: the same)."""

    original: str
    query: str
    changes: list[SpellingChange] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.changes)

    def describe(self) -> str:
        """'toliet' read as 'toilet', 'cieling' read as 'ceiling'."""
        return ", ".join(f"'{change.written}' read as '{change.read_as}'" for change in self.changes)


class SpellingCorrector:
    """Corrects query words against the word counts of a catalog's product texts.

    `fit(texts)` counts the words; `correct(query)` returns a `Correction`.
    `to_dict` / `from_dict` store the counts as JSON (the lookup index is rebuilt).
    """

    def __init__(self, stemmer: str | None = "english"):
        self.stemmer = stemmer
        self.counts: dict[str, int] = {}
        self._symspell = None
        self._stems: frozenset[str] = frozenset()
        self._tokenizer = Tokenizer(stemmer, stopwords=False)

    def fit(self, texts: Iterable[str]) -> SpellingCorrector:
        counts: Counter[str] = Counter()
        for text in texts:
            counts.update(_WORD.findall(str(text).lower()))
        return self._build(dict(counts))

    def _build(self, counts: dict[str, int]) -> SpellingCorrector:
        from symspellpy import SymSpell

        self.counts = counts
        self._symspell = SymSpell(max_dictionary_edit_distance=2, prefix_length=7)
        for word, count in counts.items():
            self._symspell.create_dictionary_entry(word, count)
        self._stems = frozenset(self._tokenizer.tokens(" ".join(counts)))
        self._word = lru_cache(maxsize=65536)(self._correct_word)
        return self

    @property
    def fitted(self) -> bool:
        return self._symspell is not None

    def correct(self, query: str) -> Correction:
        """`query` with each unknown word replaced by its closest catalog word(s), if any."""
        if not self.fitted:
            raise RuntimeError("the spelling corrector is not fitted: call fit(texts) first")
        changes: list[SpellingChange] = []

        def replace(match: re.Match) -> str:
            written = match.group(0)
            read_as = self._word(written.lower())
            if read_as is None:
                return written
            changes.append(SpellingChange(written, read_as))
            return read_as

        corrected = _WORD.sub(replace, query)
        return Correction(query, corrected, changes)

    def _known(self, word: str) -> bool:
        if word in self.counts:
            return True
        stems = self._tokenizer.tokens(word)
        return bool(stems) and all(stem in self._stems for stem in stems)

    def _correct_word(self, word: str) -> str | None:
        """The replacement of a lower-case `word`, or None to keep it."""
        # A stop word ("with", "that") is never a typo, whatever the catalog says.
        if len(word) < MIN_LENGTH or word in STOPWORDS_EN or self._known(word):
            return None
        from symspellpy import Verbosity

        distance = 2 if len(word) >= LONG_WORD else 1
        found = self._symspell.lookup(word, Verbosity.TOP, max_edit_distance=distance,
                                      include_unknown=False, transfer_casing=False)
        if found and found[0].distance == 1:
            return found[0].term
        split = self._split(word)
        if split is not None:
            return split
        return found[0].term if found else None

    def _split(self, word: str) -> str | None:
        best: tuple[int, str] | None = None
        for cut in range(MIN_PART, len(word) - MIN_PART + 1):
            left, right = word[:cut], word[cut:]
            rarer = min(self.counts.get(left, 0), self.counts.get(right, 0))
            if rarer and (best is None or rarer > best[0]):
                best = (rarer, f"{left} {right}")
        return best[1] if best else None

    # --- persistence: the word counts as JSON -------------------------------------

    def to_dict(self) -> dict:
        return {"stemmer": self.stemmer, "counts": self.counts}

    @classmethod
    def from_dict(cls, data: dict) -> SpellingCorrector:
        return cls(data.get("stemmer", "english"))._build(dict(data["counts"]))
