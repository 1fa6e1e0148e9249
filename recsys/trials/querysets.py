"""Query sets: the queries a trial runs, typed, read from a file or sampled.

Sampled from the search log: its most frequent queries, a seeded random draw of its distinct
queries (each once, whatever its frequency), or the queries the active search finds nothing for
(`recsys.trials.service`, which has the engine). A shop without a search log (the shipped demo)
samples its catalog's vocabulary instead: the words and two-word phrases its product titles use
most, which is what customers type. Queries are compared as `normalise` writes them (case and
spaces), so "Red  Mug" and "red mug" are one query.

>>> typed_queries("red mug\\n  Red Mug \\n\\nteapot")
['red mug', 'teapot']
>>> traffic_share(["red mug"], pd.DataFrame({"query": ["red mug", "RED MUG", "lamp", "teapot"]}))
0.5
"""

from __future__ import annotations

import re
from collections import Counter

import numpy as np
import pandas as pd

MAX_QUERIES = 5_000
SAMPLES = ("frequent", "random")
_WORD = re.compile(r"[a-z][a-z'-]+")
# Words that make no query on their own (titles are full of them).
_STOP = frozenset("a an and the of for in on with to by set box pack size small large x".split())


def normalise(query: str) -> str:
    return " ".join(str(query).lower().split())


def _unique(queries) -> list[str]:
    seen, kept = set(), []
    for query in queries:
        text = " ".join(str(query).split())
        key = normalise(text)
        if key and key not in seen:
            seen.add(key)
            kept.append(text)
    return kept


def checked(queries: list[str]) -> list[str]:
    """`queries` without blanks and repeats; ValueError when none is left or there are too many."""
    kept = _unique(queries)
    if not kept:
        raise ValueError("a query set needs at least one query; every line given was blank")
    if len(kept) > MAX_QUERIES:
        raise ValueError(f"a query set holds at most {MAX_QUERIES:,} queries, not {len(kept):,}: judging "
                         "that many is months of work; sample fewer")
    return kept


def typed_queries(text: str) -> list[str]:
    """One query per line."""
    return checked(text.splitlines())


def file_queries(frame: pd.DataFrame, column: str | None = None, file: str = "the file") -> list[str]:
    """The queries of a table's `column` (default: "query", or the only column)."""
    if column is None:
        column = "query" if "query" in frame.columns else (frame.columns[0] if len(frame.columns) == 1 else None)
    if column is None or column not in frame.columns:
        raise ValueError(f"{file} has no column {column or 'query'!r}; its columns are "
                         f"{', '.join(map(str, frame.columns))}: name the one that holds the queries")
    return checked(frame[column].dropna().astype(str).tolist())


def sample_search_log(log: pd.DataFrame, how: str, n: int, seed: int = 0) -> list[str]:
    """`n` queries of the search log: its most frequent ("frequent") or a random draw of its
    distinct queries ("random")."""
    if how not in SAMPLES:
        raise ValueError(f"unknown sample {how!r}; choose one of {', '.join(SAMPLES)}")
    if log.empty:
        raise ValueError("the search log is empty: upload one on the Data page, or type the queries")
    counts = log["query"].astype(str).map(normalise).value_counts(sort=False)
    counts = counts[counts.index != ""]
    if how == "frequent":
        chosen = counts.sort_values(ascending=False, kind="stable").index[:n]
    else:
        rng = np.random.default_rng(seed)
        chosen = counts.index[np.sort(rng.choice(len(counts), size=min(n, len(counts)), replace=False))]
    return checked(list(chosen))


def vocabulary_queries(titles: pd.Series, n: int) -> list[str]:
    """The `n` words and two-word phrases product titles use most (phrases first when as common),
    for shops without a search log."""
    counts: Counter[str] = Counter()
    for title in titles.dropna().astype(str):
        words = [word for word in _WORD.findall(title.lower()) if word not in _STOP and len(word) > 2]
        counts.update(set(words))
        counts.update({f"{first} {second}" for first, second in zip(words, words[1:])})
    ranked = sorted(counts.items(), key=lambda item: (-item[1], -item[0].count(" "), item[0]))
    return checked([query for query, _ in ranked[:n]])


def traffic_share(queries: list[str], log: pd.DataFrame) -> float | None:
    """The share of the search log's searches whose query is one of `queries` (None: no log)."""
    if log is None or log.empty:
        return None
    wanted = {normalise(query) for query in queries}
    return round(float(log["query"].astype(str).map(normalise).isin(wanted).mean()), 4)
