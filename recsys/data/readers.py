"""Reading uploads: CSV, TSV, Parquet and JSON Lines, from a path or from bytes.

Text formats are read with every column as a string, so that validation can say
which row and column holds a value of the wrong type. A file that is empty, not
a table, or not in the expected encoding raises `IngestError` with a report
that says so and what to do.

`IngestLimits` bounds what one file may hold (bytes, decompressed bytes, columns, rows, the
length of a column name and of a value), each a setting with a default and an environment
variable (`WORKBENCH_INGEST_MAX_*`). A file over a limit is refused before it is parsed where
its size can be known first (a text file's size and header, a Parquet file's metadata), and the
refusal names the limit and its setting. Column names repeated, or differing only in case
(`title` and `Title`), are refused with both names.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from collections import Counter
from dataclasses import dataclass, fields
from pathlib import Path

import pandas as pd

from recsys.data.report import IngestError, IngestReport, Problem

FORMATS = ("csv", "tsv", "parquet", "jsonl")
# The header is parsed by Python's csv module before pandas reads the file: its own field limit
# (128 KiB) must not be the one that refuses a long column name (IngestLimits.max_name_chars is).
csv.field_size_limit(2**31 - 1)


@dataclass(frozen=True)
class IngestLimits:
    """What one uploaded file may hold; `from_env()` reads WORKBENCH_INGEST_MAX_<NAME> overrides."""

    bytes: int = 1_000_000_000  # the file as uploaded
    decompressed_bytes: int = 4_000_000_000  # a Parquet file's data once decompressed
    columns: int = 500
    rows: int = 5_000_000
    name_chars: int = 256  # one column name
    value_chars: int = 100_000  # one value

    @staticmethod
    def setting(name: str) -> str:
        return f"WORKBENCH_INGEST_MAX_{name.upper()}"

    @classmethod
    def from_env(cls) -> IngestLimits:
        values = {}
        for field in fields(cls):
            raw = os.environ.get(cls.setting(field.name))
            if raw:
                try:
                    values[field.name] = int(raw.replace("_", ""))
                except ValueError:
                    raise ValueError(f"{cls.setting(field.name)} must be a whole number, "
                                     f"not {raw!r}") from None
        return cls(**values)

    def refuse(self, filename: str, name: str, found: int, what: str) -> IngestError:
        limit = getattr(self, name)
        return _fail(filename, f"has {found:,} {what}; at most {limit:,} are read (the setting "
                               f"{self.setting(name)}: raise it, or split the file).")
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
    limits: IngestLimits | None = None,
) -> tuple[pd.DataFrame, str]:
    """Read one uploaded table; returns the frame and the format it was read as.

    `source` is a path or the file's bytes (then `filename` names it in messages).
    `fmt` is one of FORMATS, guessed from the file name when not given. `limits`
    default to `IngestLimits.from_env()`.
    """
    limits = limits or IngestLimits.from_env()
    if isinstance(source, (str, Path)):
        path = Path(source)
        filename = filename or path.name
        try:
            size = path.stat().st_size
            if size > limits.bytes:
                raise limits.refuse(filename, "bytes", size, "bytes")
            data = path.read_bytes()
        except OSError as error:
            raise _fail(filename, f"cannot be opened: {error.strerror or error}") from None
    else:
        data = bytes(source)
        filename = filename or "upload"
        if len(data) > limits.bytes:
            raise limits.refuse(filename, "bytes", len(data), "bytes")
    fmt = fmt or detect_format(filename)
    if fmt is None:
        fmt = "parquet" if data[:4] == b"PAR1" else "csv"
    if fmt not in FORMATS:
        raise _fail(filename, f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    if not data.strip():
        raise _fail(filename, "is empty: it has no header and no rows.")

    if fmt == "parquet":
        frame = _read_parquet(data, filename, limits)
    else:
        _refuse_binary(data, filename, encoding)
        text = _decode(data, filename, encoding)
        frame = _read_jsonl(text, filename, limits) if fmt == "jsonl" else _read_delimited(
            text, filename, "\t" if fmt == "tsv" and sep is None else sep, limits)

    if frame.columns.size == 0:
        raise _fail(filename, "is not a table: no columns were found.")
    if len(frame) == 0:
        raise _fail(filename, "has a header but no data rows.")
    frame.columns = [str(c).strip() for c in frame.columns]
    _check_names(list(frame.columns), filename, limits)
    if len(frame) > limits.rows:
        raise limits.refuse(filename, "rows", len(frame), "rows")
    _check_values(frame, filename, limits, FIRST_DATA_LINE.get(fmt))
    return frame, fmt


def _check_names(names: list[str], filename: str, limits: IngestLimits) -> None:
    """Refuse too many columns, too long a name, a name repeated or two differing only in case
    (linear in the number of columns)."""
    if len(names) > limits.columns:
        raise limits.refuse(filename, "columns", len(names), "columns")
    longest = max((len(name) for name in names), default=0)
    if longest > limits.name_chars:
        raise _fail(filename, f"has a column name of {longest:,} characters; at most {limits.name_chars:,} "
                              f"are read (the setting {limits.setting('name_chars')}).")
    repeated = sorted(name for name, count in Counter(names).items() if name and count > 1)
    if repeated:
        raise _fail(filename, f"has the column name(s) {repeated} more than once.")
    by_case: dict[str, list[str]] = {}
    for name in names:
        if name:  # blank names (a spreadsheet's trailing empty columns) are dropped later
            by_case.setdefault(name.casefold(), []).append(name)
    clashes = [spelled for spelled in by_case.values() if len(spelled) > 1]
    if clashes:
        pairs = "; ".join(" and ".join(repr(name) for name in spelled) for spelled in clashes)
        raise _fail(filename, f"has columns whose names differ only in case ({pairs}): one of each would "
                              "silently win, so rename or drop the others.")


def _check_values(frame: pd.DataFrame, filename: str, limits: IngestLimits, first_line: int | None) -> None:
    for column in frame.columns:
        values = frame[column]
        if values.dtype != object and not pd.api.types.is_string_dtype(values):
            continue
        try:
            lengths = values.str.len().fillna(0)
        except AttributeError:  # an object column without text (numbers, booleans)
            continue
        if len(lengths) and lengths.max() > limits.value_chars:
            row = int(lengths.to_numpy().argmax())
            where = {"column": column, "row": row + 1}
            if first_line is not None:
                where["line"] = first_line + row
            raise _fail(filename, f"has a value of {int(lengths.max()):,} characters in column {column!r}; "
                                  f"at most {limits.value_chars:,} are read (the setting "
                                  f"{limits.setting('value_chars')}).", **where)


def _read_parquet(data: bytes, filename: str, limits: IngestLimits) -> pd.DataFrame:
    """A Parquet file, its size checked from its metadata before its data is decompressed."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(io.BytesIO(data))
        metadata = parquet.metadata
    except Exception as error:  # pyarrow raises several types for a bad file
        raise _fail(filename, f"is not a readable Parquet file ({error}).") from None
    if metadata.num_columns > limits.columns:
        raise limits.refuse(filename, "columns", metadata.num_columns, "columns")
    if metadata.num_rows > limits.rows:
        raise limits.refuse(filename, "rows", metadata.num_rows, "rows")
    unpacked = sum(metadata.row_group(i).total_byte_size for i in range(metadata.num_row_groups))
    if unpacked > limits.decompressed_bytes:
        raise limits.refuse(filename, "decompressed_bytes", unpacked, "bytes of data once decompressed")
    # The metadata's sizes are the encoded ones (and a file may lie): the data is counted as it is
    # decoded, batch by batch, and refused as soon as it passes the limit.
    batches, decoded = [], 0
    try:
        for batch in parquet.iter_batches(batch_size=65_536):
            decoded += sum(_decoded_bytes(column) for column in batch.columns)
            if decoded > limits.decompressed_bytes:
                raise limits.refuse(filename, "decompressed_bytes", decoded,
                                    "bytes of data once decompressed (or more)")
            batches.append(batch)
        return pa.Table.from_batches(batches, schema=parquet.schema_arrow).to_pandas()
    except IngestError:
        raise
    except Exception as error:  # pyarrow raises several types for a bad file
        raise _fail(filename, f"is not a readable Parquet file ({error}).") from None


def _decoded_bytes(column) -> int:
    """A column's size once decoded: a dictionary-encoded column counts each value in full."""
    import pyarrow as pa

    if pa.types.is_dictionary(column.type):
        return column.dictionary_decode().nbytes
    return column.nbytes


def _read_delimited(text: str, filename: str, sep: str | None, limits: IngestLimits) -> pd.DataFrame:
    if sep is None:
        try:
            sep = csv.Sniffer().sniff(text[:20_000], delimiters=",;\t|").delimiter
        except csv.Error:
            sep = ","
    # The header as written, checked before the rows are parsed: a file of a million columns is
    # refused here in a moment (pandas renames a repeated name to 'name.1', so the names are
    # taken from the header itself).
    first = re.split(r"\r\n|\r|\n", text, maxsplit=1)[0]
    if len(sep) == 1:
        if first.count(sep) + 1 > limits.columns:
            raise limits.refuse(filename, "columns", first.count(sep) + 1, "columns")
        try:
            header = [name.strip() for name in next(csv.reader(io.StringIO(first), delimiter=sep), [])]
        except csv.Error as error:
            raise _fail(filename, f"is not a well-formed delimited table: {error}", line=1) from None
        _check_names(header, filename, limits)
    try:
        frame = pd.read_csv(io.StringIO(text), sep=sep, dtype=str, keep_default_na=False,
                            na_values=[""], skipinitialspace=False, nrows=limits.rows + 1)
    except pd.errors.ParserError as error:
        raise _fail(filename, f"is not a well-formed delimited table: {error}") from None
    except pd.errors.EmptyDataError:
        raise _fail(filename, "is empty: it has no header and no rows.") from None
    if frame.columns.size == 1 and len(frame) > 0 and sep != "\t":
        # One column usually means the wrong delimiter or not a table at all.
        only = frame.columns[0]
        if len(only) > 200 or not only.isprintable():
            raise _fail(filename, "is not a table: no header row with column names was found.")
    unnamed = [c for c in frame.columns if str(c).startswith("Unnamed: ")]
    if unnamed and len(unnamed) == frame.columns.size:
        raise _fail(filename, "is not a table: the header row has no column names.")
    return frame


def _read_jsonl(text: str, filename: str, limits: IngestLimits) -> pd.DataFrame:
    records = []
    keys: set[str] = set()
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
        except (RecursionError, ValueError) as error:  # nesting too deep, a number too long
            raise _fail(filename, f"is not JSON Lines this reader takes: {str(error)[:200]}",
                        line=number) from None
        if not isinstance(record, dict):
            raise _fail(filename, "is not JSON Lines of objects: each line must be one "
                                  "{...} object.", line=number)
        keys.update(record)
        if len(keys) > limits.columns:
            raise limits.refuse(filename, "columns", len(keys), "fields")
        records.append(record)
        if len(records) > limits.rows:
            raise limits.refuse(filename, "rows", len(records), "rows (or more)")
    frame = pd.DataFrame.from_records(records)
    # Nested values cannot be mapped to a column; make them visible as text.
    for column in frame.columns:
        if frame[column].map(lambda v: isinstance(v, (dict, list))).any():
            frame[column] = frame[column].map(
                lambda v: json.dumps(v) if isinstance(v, (dict, list)) else v)
    return frame
