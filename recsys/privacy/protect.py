"""Pseudonymisation and masking applied to an upload, with what was done for its report.

Text is masked before cleaning (so that the cleaning report's examples are masked too); customer
ids are pseudonymised after it (so that trimming and upper-casing ids work as configured), and
the ids the cleaning report quotes are pseudonymised with them.

>>> import pandas as pd
>>> from recsys.privacy.pseudonyms import Pseudonymiser
>>> frame = pd.DataFrame({"query": ["drill", "mail me at jo@example.com"], "user_id": ["17850", None]})
>>> done = {}
>>> frame = mask_columns(frame, "search_log", done)
>>> frame = pseudonymise_columns(frame, "search_log", done, Pseudonymiser(b"k" * 32))
>>> frame["query"].tolist(), frame["user_id"].isna().tolist()
(['drill', 'mail me at [email]'], [False, True])
>>> done["pseudonymised"], done["masked"]
({'user_id': {'rows': 1, 'customers': 1}}, {'query': {'rows': 1, 'kinds': {'email': 1}}})
"""

from __future__ import annotations

import pandas as pd

from recsys.privacy.masking import MAX_EXAMPLES, mask_query, mask_series
from recsys.privacy.pseudonyms import Pseudonymiser, pseudonymiser

# Which columns of each kind of upload name a customer, and which hold text people typed.
ID_COLUMNS = {"events": ("user_id",), "search_log": ("user_id",)}
TEXT_COLUMNS = {"search_log": ("query",), "judgments": ("query",)}


def mask_columns(frame: pd.DataFrame, kind: str, done: dict) -> pd.DataFrame:
    """`frame` with the personal data in its free-text columns masked; adds to `done`
    {"masked": {column: {rows, kinds: {kind: n}}}, "examples": [masked text, ...]}."""
    texts = [c for c in TEXT_COLUMNS.get(kind, ()) if c in frame.columns]
    if not texts:
        return frame
    frame = frame.copy()
    examples = done.setdefault("examples", [])
    for column in texts:
        frame[column], counts, rows, found = mask_series(frame[column])
        done.setdefault("masked", {})[column] = {"rows": rows, "kinds": dict(counts)}
        examples += found[:max(0, MAX_EXAMPLES - len(examples))]
    return frame


def pseudonymise_columns(frame: pd.DataFrame, kind: str, done: dict,
                         pseudonymise: Pseudonymiser | None = None) -> pd.DataFrame:
    """`frame` with its customer ids pseudonymised; adds to `done`
    {"key": fingerprint, "pseudonymised": {column: {rows, customers}}}."""
    ids = [c for c in ID_COLUMNS.get(kind, ()) if c in frame.columns]
    if not ids:
        return frame
    pseudonymise = pseudonymise or pseudonymiser()
    frame = frame.copy()
    done["key"] = pseudonymise.fingerprint
    for column in ids:
        present = frame[column].notna()
        frame[column] = pseudonymise.series(frame[column])
        done.setdefault("pseudonymised", {})[column] = {
            "rows": int(present.sum()), "customers": int(frame.loc[present, column].nunique())}
    return frame


def protect_value(column: str | None, value: str | None, kind: str,
                  pseudonymise: Pseudonymiser | None = None) -> str | None:
    """One value as it is stored (for the values a report quotes)."""
    if value is None or column is None:
        return value
    if column in ID_COLUMNS.get(kind, ()):
        return (pseudonymise or pseudonymiser())(value)
    if column in TEXT_COLUMNS.get(kind, ()):
        return mask_query(value)
    return value


def protect_record(record: dict, kind: str, pseudonymise: Pseudonymiser | None = None) -> dict:
    """A quoted row (a cleaning example) as it is stored."""
    return {column: protect_value(column, value, kind, pseudonymise) if isinstance(value, str) else value
            for column, value in record.items()}
