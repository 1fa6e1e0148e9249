"""Validation: map an uploaded frame to a kind's canonical columns and types.

Each value that cannot be read as its column's type becomes a `Problem` naming
the file, row, line, column and value. By default any problem rejects the
upload; with ``skip_invalid_rows`` those rows are dropped instead and counted in
the cleaning report.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from recsys.data.readers import FIRST_DATA_LINE
from recsys.data.report import MAX_EXAMPLES, IngestReport, Problem, RuleResult
from recsys.data.schema import EVENT_TYPE_SYNONYMS, KINDS

ROW = "_row"  # 1-based data row of the source file, kept through cleaning
MAX_PROBLEMS_PER_COLUMN = 10
_TRUE = {"true", "1", "yes", "y", "t", "in stock", "instock", "available"}
_FALSE = {"false", "0", "no", "n", "f", "out of stock", "outofstock", "unavailable"}


def _line(row: int, fmt: str) -> int | None:
    first = FIRST_DATA_LINE.get(fmt)
    return None if first is None else row + first - 1


def _as_id(values: pd.Series) -> pd.Series:
    """Ids as strings; 17850.0 read from a float column becomes '17850'."""
    if pd.api.types.is_float_dtype(values):
        integral = values.notna() & np.isfinite(values) & (values == values.round())
        text = values.astype("string")
        text[integral] = values[integral].astype("int64").astype("string")
        return text
    return values.astype("string")


def _as_number(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    if pd.api.types.is_bool_dtype(values):
        values = values.astype("float64")
    if pd.api.types.is_numeric_dtype(values):
        return values.astype("float64"), pd.Series(False, index=values.index)
    text = values.astype("string").str.strip()
    numbers = pd.to_numeric(text.str.replace(",", "", regex=False), errors="coerce")
    return numbers.astype("float64"), text.notna() & numbers.isna()


def _as_datetime(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    if pd.api.types.is_datetime64_any_dtype(values):
        parsed = values
    elif pd.api.types.is_numeric_dtype(values):
        # Unix time: seconds, or milliseconds when the numbers are that large.
        unit = "ms" if values.abs().median() > 1e11 else "s"
        parsed = pd.to_datetime(values, unit=unit, errors="coerce")
        return parsed.astype("datetime64[us]"), values.notna() & parsed.isna()
    else:
        text = values.astype("string").str.strip()
        parsed = pd.to_datetime(text, errors="coerce", utc=True, format="ISO8601")
        if parsed.isna().sum() > text.isna().sum():
            numbers = pd.to_numeric(text, errors="coerce")
            if numbers.notna().sum() == text.notna().sum():
                # Unix time written as text: CSV and TSV columns are all read as text.
                return _as_datetime(numbers)
            # Not all ISO 8601: let pandas infer one format from the data.
            retry = pd.to_datetime(text, errors="coerce", utc=True)
            if retry.notna().sum() > parsed.notna().sum():
                parsed = retry
        invalid = text.notna() & parsed.isna()
        return parsed.dt.tz_convert(None).astype("datetime64[us]"), invalid
    if getattr(parsed.dt, "tz", None) is not None:
        parsed = parsed.dt.tz_convert(None)
    return parsed.astype("datetime64[us]"), pd.Series(False, index=values.index)


def _as_bool(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    if pd.api.types.is_bool_dtype(values):
        return values.astype("boolean"), pd.Series(False, index=values.index)
    text = values.astype("string").str.strip().str.lower()
    result = pd.Series(pd.NA, index=values.index, dtype="boolean")
    result[text.isin(_TRUE).fillna(False)] = True
    result[text.isin(_FALSE).fillna(False)] = False
    return result, text.notna() & result.isna()


def _as_event_type(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    text = values.astype("string").str.strip().str.lower()
    mapped = text.map(EVENT_TYPE_SYNONYMS.get, na_action="ignore").astype("string")
    return mapped, text.notna() & mapped.isna()


_EXPECTED = {
    "number": "is not a number",
    "datetime": "is not a date or time (use ISO 8601, e.g. 2011-12-09 12:50, or Unix seconds)",
    "bool": "is not true/false (use true, false, yes, no, 1 or 0)",
    "event_type": "is not an event type (use view, click, cart, purchase or rating)",
}


def validate(
    frame: pd.DataFrame,
    kind: str,
    mapping: dict[str, str],
    *,
    file: str,
    fmt: str,
    report: IngestReport,
    skip_invalid_rows: bool = False,
) -> pd.DataFrame:
    """Return the frame in canonical columns and types, with `_row` added.

    `mapping` is ``{source column: canonical column}``; source columns that are
    not mapped are left out. Problems are added to `report`.
    """
    spec = KINDS[kind]
    canonical = {c.name for c in spec.columns}
    for source, target in mapping.items():
        if source not in frame.columns:
            report.add_problem(Problem(
                file, f"the mapping names column '{source}', which the file does not have; "
                      f"its columns are {list(frame.columns)}", column=source))
        elif target not in canonical:
            report.add_problem(Problem(
                file, f"the mapping sends '{source}' to '{target}', which is not a column of "
                      f"{kind}; use one of {sorted(canonical)}", column=source))
    targets = list(mapping.values())
    for target in {t for t in targets if targets.count(t) > 1}:
        sources = [s for s, t in mapping.items() if t == target]
        report.add_problem(Problem(file, f"columns {sources} are all mapped to '{target}'; "
                                         "map only one", column=target))
    mapped = {t for s, t in mapping.items() if s in frame.columns}
    for name in spec.required:
        if name not in mapped:
            report.add_problem(Problem(
                file, f"required column '{name}' is missing; map one of the file's columns "
                      f"{list(frame.columns)} to it", column=name))
    if not report.ok:
        return pd.DataFrame()

    out = pd.DataFrame({ROW: np.arange(1, len(frame) + 1)}, index=frame.index)
    invalid_rows = pd.Series(False, index=frame.index)
    skipped_examples: list[dict] = []
    for source, target in mapping.items():
        column = spec.column(target)
        values = frame[source]
        if column.type == "id":
            out[target] = _as_id(values)
            continue
        if column.type == "text":
            out[target] = values.astype("string")
            continue
        converter = {"number": _as_number, "datetime": _as_datetime,
                     "bool": _as_bool, "event_type": _as_event_type}[column.type]
        converted, invalid = converter(values)
        out[target] = converted
        if invalid.any():
            bad = frame.index[invalid.to_numpy()]
            if skip_invalid_rows:
                invalid_rows |= invalid
                for index in bad[:MAX_EXAMPLES]:
                    skipped_examples.append({ROW: int(out.at[index, ROW]), "column": source,
                                             "value": str(values.at[index])})
                continue
            for index in bad[:MAX_PROBLEMS_PER_COLUMN]:
                row = int(out.at[index, ROW])
                report.problems.append(Problem(
                    file, _EXPECTED[column.type], column=source, row=row,
                    line=_line(row, fmt), value=str(values.at[index])))
            report.problem_count += int(invalid.sum())
            if len(bad) > MAX_PROBLEMS_PER_COLUMN:
                report.notes.append(f"column '{source}': {len(bad):,} values {_EXPECTED[column.type]}")
    if skip_invalid_rows and invalid_rows.any():
        report.cleaning.append(RuleResult(
            "invalid_values", "Rows with a value that is not of its column's type",
            "dropped", int(invalid_rows.sum()), skipped_examples[:MAX_EXAMPLES]))
        out = out[~invalid_rows.to_numpy()]
    return out


def line_of(row: int, fmt: str) -> int | None:
    return _line(row, fmt)
