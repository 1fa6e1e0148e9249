"""Reading uploads: CSV, TSV, Parquet and JSON Lines, from a path or from bytes.

Text formats are read with every column as a string, so that validation can say
which row and column holds a value of the wrong type. A file that is empty, not
a table, or not in the expected encoding raises `IngestError` with a report
that says so and what to do.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pandas as pd

from recsys.data.report import IngestError, IngestReport, Problem

FORMATS = ("csv", "tsv", "parquet", "jsonl")
_EXTENSIONS = {
    ".csv": "csv", ".txt": "csv", ".tsv": "tsv", ".tab": "tsv",
    ".parquet": "parquet", ".pq": "parquet",
    ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl",
}
# For text formats, the file's line of data row 1 (the header is line 1).
FIRST_DATA_LINE = {"csv": 2, "tsv": 2, "jsonl": 1, "parquet": None}


def detect_format(filename: str) -> str | None:
    return _EXTENSIONS.get(Path(filename).suffix.lower())


def _fail(filename: str, reason: str, **where) -> IngestError:
    report = IngestReport(file=filename, kind="?")
    report.add_problem(Problem(file=filename, reason=reason, **where))
    return IngestError(report)


_MAGIC = {
    b"PK\x03\x04": "a ZIP archive or an Excel workbook (.xlsx); save it as CSV",
    b"\xd0\xcf\x11\xe0": "an old Excel workbook (.xls); save it as CSV",
    b"%PDF": "a PDF document",
    b"\x89PNG": "a PNG image",
    b"\xff\xd8\xff": "a JPEG image",
    b"\x1f\x8b": "a gzip archive; unpack it first",
    b"PAR1": "a Parquet file; give it the .parquet extension",
}
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


def _refuse_binary(data: bytes, filename: str, encoding: str | None) -> None:
    for magic, what in _MAGIC.items():
        if data.startswith(magic):
            raise _fail(filename, f"is not a table of text: it is {what}. "
                                  "Upload CSV, TSV, Parquet or JSON Lines.")
    utf16 = data.startswith(_UTF16_BOMS) or (encoding or "").lower().startswith("utf-16")
    if not utf16 and b"\x00" in data[:100_000]:
        raise _fail(filename, "is not a table: it holds binary data (NUL bytes). "
                              "Upload CSV, TSV, Parquet or JSON Lines.")


def _decode(data: bytes, filename: str, encoding: str | None) -> str:
    if not encoding and data.startswith(_UTF16_BOMS):
        encoding = "utf-16"
    if encoding:
        try:
            return data.decode(encoding)
        except (UnicodeDecodeError, LookupError) as error:
            raise _fail(filename, f"cannot be read as {encoding}: {error}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        from charset_normalizer import from_bytes

        best = from_bytes(data[:200_000]).best()
        guess = f" It looks like {best.encoding}; choose that encoding" if best else " Choose its encoding"
        raise _fail(
            filename,
            f"is not UTF-8: byte 0x{data[error.start]:02x} at line {line} cannot be decoded."
            f"{guess} (\"Encoding of a text file\" on the Data page, --encoding on the command line) "
            "or re-save the file as UTF-8.",
            line=line,
        ) from None


def read_table(
    source: str | Path | bytes,
    filename: str | None = None,
    *,
    fmt: str | None = None,
    encoding: str | None = None,
    sep: str | None = None,
) -> tuple[pd.DataFrame, str]:
    """Read one uploaded table; returns the frame and the format it was read as.

    `source` is a path or the file's bytes (then `filename` names it in messages).
    `fmt` is one of FORMATS, guessed from the file name when not given.
    """
    if isinstance(source, (str, Path)):
        path = Path(source)
        filename = filename or path.name
        try:
            data = path.read_bytes()
        except OSError as error:
            raise _fail(filename, f"cannot be opened: {error.strerror or error}") from None
    else:
        data = bytes(source)
        filename = filename or "upload"
    fmt = fmt or detect_format(filename)
    if fmt is None:
        fmt = "parquet" if data[:4] == b"PAR1" else "csv"
    if fmt not in FORMATS:
        raise _fail(filename, f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    if not data.strip():
        raise _fail(filename, "is empty: it has no header and no rows.")

    if fmt == "parquet":
        try:
            frame = pd.read_parquet(io.BytesIO(data))
        except Exception as error:  # pyarrow raises several types for a bad file
            raise _fail(filename, f"is not a readable Parquet file ({error}).") from None
    else:
        _refuse_binary(data, filename, encoding)
        text = _decode(data, filename, encoding)
        frame = _read_jsonl(text, filename) if fmt == "jsonl" else _read_delimited(
            text, filename, "\t" if fmt == "tsv" and sep is None else sep)

    if frame.columns.size == 0:
        raise _fail(filename, "is not a table: no columns were found.")
    if len(frame) == 0:
        raise _fail(filename, "has a header but no data rows.")
    frame.columns = [str(c).strip() for c in frame.columns]
    duplicated = frame.columns[frame.columns.duplicated()].tolist()
    if duplicated:
        raise _fail(filename, f"has the column name(s) {duplicated} more than once.")
    return frame, fmt


def _read_delimited(text: str, filename: str, sep: str | None) -> pd.DataFrame:
    if sep is None:
        try:
            sep = csv.Sniffer().sniff(text[:20_000], delimiters=",;\t|").delimiter
        except csv.Error:
            sep = ","
    try:
        frame = pd.read_csv(io.StringIO(text), sep=sep, dtype=str, keep_default_na=False,
                            na_values=[""], skipinitialspace=False)
    except pd.errors.ParserError as error:
        raise _fail(filename, f"is not a well-formed delimited table: {error}") from None
    except pd.errors.EmptyDataError:
        raise _fail(filename, "is empty: it has no header and no rows.") from None
    # pandas renames a repeated name to 'name.1'; look at the header as written.
    header = ([name.strip() for name in next(csv.reader(io.StringIO(text), delimiter=sep), [])]
              if len(sep) == 1 else [])
    repeated = sorted({name for name in header if name and header.count(name) > 1})
    if repeated:
        raise _fail(filename, f"has the column name(s) {repeated} more than once.")
    if frame.columns.size == 1 and len(frame) > 0 and sep != "\t":
        # One column usually means the wrong delimiter or not a table at all.
        only = frame.columns[0]
        if len(only) > 200 or not only.isprintable():
            raise _fail(filename, "is not a table: no header row with column names was found.")
    unnamed = [c for c in frame.columns if str(c).startswith("Unnamed: ")]
    if unnamed and len(unnamed) == frame.columns.size:
        raise _fail(filename, "is not a table: the header row has no column names.")
    return frame


def _read_jsonl(text: str, filename: str) -> pd.DataFrame:
    records = []
    # Split at newlines only: str.splitlines() also splits at U+2028 and other
    # separators that JSON allows unescaped inside strings.
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise _fail(filename, f"is not valid JSON Lines: {error.msg} at column {error.colno}.",
                        line=number) from None
        if not isinstance(record, dict):
            raise _fail(filename, "is not JSON Lines of objects: each line must be one "
                                  "{...} object.", line=number)
        records.append(record)
    frame = pd.DataFrame.from_records(records)
    # Nested values cannot be mapped to a column; make them visible as text.
    for column in frame.columns:
        if frame[column].map(lambda v: isinstance(v, (dict, list))).any():
            frame[column] = frame[column].map(
                lambda v: json.dumps(v) if isinstance(v, (dict, list)) else v)
    return frame
