"""Files a hostile or careless user uploads: each refused quickly, with the limit and its setting named,
and nothing already stored touched (issue 17's reproductions)."""

from __future__ import annotations

import csv
import io
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from db.engine import session_scope
from recsys.data.ingest import IngestOptions, ingest_file
from recsys.data.readers import IngestLimits, read_table
from recsys.data.report import IngestError


def _refused(data: bytes, name: str, **options) -> tuple[str, float]:
    started = time.perf_counter()
    with pytest.raises(IngestError) as refused:
        read_table(data, name, **options)
    return refused.value.report.problems[0].message(), time.perf_counter() - started


def test_a_million_columns_are_refused_from_the_header_in_a_moment():
    header = ",".join(f"c{i}" for i in range(1_000_000))
    message, seconds = _refused((header + "\n" + "x," * 999_999 + "x\n").encode(), "wide.csv")
    assert "has 1,000,000 columns; at most 500 are read" in message
    assert "WORKBENCH_INGEST_MAX_COLUMNS" in message and seconds < 10


def test_thirty_thousand_distinct_columns_are_checked_in_linear_time():
    # Four times the columns must take about four times as long, not sixteen (the quadratic check
    # took 24.9 s for 30,000). A ratio in one run, not a time: a busy CI machine took 11.6 s for the
    # linear check, which runs in 5.2 s on a quiet one.
    limits = IngestLimits(columns=50_000)

    def seconds(columns: int) -> float:
        header = ",".join(f"c{i}" for i in range(columns))
        started = time.perf_counter()
        frame, _ = read_table((header + "\n" + ",".join("1" for _ in range(columns)) + "\n").encode(), "w.csv",
                              limits=limits)
        assert frame.shape == (1, columns)
        return time.perf_counter() - started

    small = min(seconds(7_500) for _ in range(2))
    assert seconds(30_000) < 8 * small


def test_a_header_field_over_128_kib_gets_a_message_not_a_traceback():
    message, _ = _refused(("product_id," + "t" * 200_000 + "\nP1,x\n").encode(), "long.csv")
    assert "has a column name of 200,000 characters; at most 256" in message
    assert "WORKBENCH_INGEST_MAX_NAME_CHARS" in message


def test_ten_million_rows_of_parquet_are_refused_from_its_metadata():
    column = pa.DictionaryArray.from_arrays(pa.array(np.zeros(10_000_000, dtype=np.int8)), pa.array(["same"]))
    buffer = io.BytesIO()
    pq.write_table(pa.table({"product_id": column, "title": column}), buffer, compression="zstd")
    assert len(buffer.getvalue()) < 1_000_000  # a small file
    message, seconds = _refused(buffer.getvalue(), "rows.parquet")
    assert "has 10,000,000 rows; at most 5,000,000 are read" in message
    assert "WORKBENCH_INGEST_MAX_ROWS" in message and seconds < 10


def test_limits_are_settings_read_from_the_environment(monkeypatch):
    monkeypatch.setenv("WORKBENCH_INGEST_MAX_ROWS", "2")
    message, _ = _refused(b"product_id,title\nP1,a\nP2,b\nP3,c\n", "three.csv")
    assert "has 3 rows; at most 2 are read (the setting WORKBENCH_INGEST_MAX_ROWS" in message
    monkeypatch.setenv("WORKBENCH_INGEST_MAX_VALUE_CHARS", "5")
    monkeypatch.setenv("WORKBENCH_INGEST_MAX_ROWS", "10")
    message, _ = _refused(b"product_id,title\nP1,short\nP2,much too long\n", "values.csv")
    assert "row 2 (line 3)" in message and "column 'title'" in message and "13 characters" in message
    monkeypatch.setenv("WORKBENCH_INGEST_MAX_COLUMNS", "many")
    with pytest.raises(ValueError, match="WORKBENCH_INGEST_MAX_COLUMNS must be a whole number"):
        read_table(b"a\n1\n", "a.csv")


@pytest.mark.parametrize("name, data", [
    ("case.csv", b"product_id,title,Title\nP1,a,b\n"),
    ("case.jsonl", b'{"product_id": "P1", "title": "a", "Title": "b"}\n'),
])
def test_names_differing_only_in_case_are_refused_with_both(name, data):
    message, _ = _refused(data, name)
    assert "differ only in case ('title' and 'Title')" in message


def test_a_refused_file_leaves_the_active_catalog_as_it_was(db_url, write):
    from db import queries

    ingest_file(write("catalog.csv", "product_id,title\nP1,Mug\n"), IngestOptions("catalog"), actor="test")
    with pytest.raises(IngestError):
        ingest_file(write("bad.csv", "product_id,title,TITLE\nP2,a,b\n"), IngestOptions("catalog"), actor="test")
    with session_scope(db_url) as session:
        version = queries.active_version(session, "catalog")
        assert queries.products_frame(session, version.id)["product_id"].tolist() == ["P1"]


def test_online_retail_no_activate_is_honoured(db_url, tmp_path):
    import pandas as pd

    from db import queries
    from recsys.cli import main
    from recsys.data.online_retail import COLUMNS

    rows = [["536365", "85123A", "WHITE HANGING HEART T-LIGHT HOLDER", 6, "2010-12-01 08:26:00", 2.55, 17850,
             "United Kingdom"], ["536366", "22633", "HAND WARMER UNION JACK", 6, "2010-12-01 08:28:00", 1.85,
                                 17850, "United Kingdom"]]
    path = tmp_path / "retail.csv"
    pd.DataFrame(rows, columns=list(COLUMNS)[:8]).to_csv(path, index=False)
    assert main(["ingest", "--kind", "online_retail", "--file", str(path), "--no-activate"]) == 0
    with session_scope(db_url) as session:
        assert queries.active_version(session, "catalog") is None
        assert queries.active_version(session, "events") is None


def test_formula_cells_are_stored_as_given_and_downloaded_as_text(db_url, write):
    from db import queries
    from recsys.data.export import csv_text

    evil = ["=cmd|' /C calc'!A0", '=HYPERLINK("http://evil.example","x")', "@SUM(1)", "+1+1", "-2+3",
            "'=already", "mug;=HYPERLINK(1)"]
    catalog = "product_id,title\n" + "".join(f'P{i},"{title.replace(chr(34), chr(34) * 2)}"\n'
                                             for i, title in enumerate(evil))
    ingest_file(write("evil.csv", catalog), IngestOptions("catalog"), actor="test")
    with session_scope(db_url) as session:
        stored = queries.products_frame(session, queries.active_version(session, "catalog").id)
    assert sorted(stored["title"]) == sorted(evil)  # stored as given
    text = csv_text(stored[["product_id", "title"]].assign(price=[-1.5] * len(stored)))
    for line in text.splitlines()[1:]:
        cell = line.split(",", 1)[1].lstrip('"')
        assert cell.startswith("'") or cell.startswith("mug;'="), line  # a spreadsheet shows it as text
    assert ",-1.5" in text  # numbers stay numbers
    # Split on semicolons (a European spreadsheet's default), no cell starts a formula either.
    for row in csv.reader(io.StringIO(text), delimiter=";"):
        assert not any(cell.startswith(("=", "+", "@")) for cell in row), row


def test_parquet_is_measured_as_it_is_decoded_not_by_what_its_metadata_says():
    value = "x" * 100_000
    column = pa.DictionaryArray.from_arrays(pa.array(np.zeros(2_000, dtype=np.int8)), pa.array([value]))
    buffer = io.BytesIO()
    pq.write_table(pa.table({"product_id": column}), buffer, compression="zstd")
    assert len(buffer.getvalue()) < 50_000  # 200 MB of text once decoded
    message, _ = _refused(buffer.getvalue(), "inflating.parquet",
                          limits=IngestLimits(decompressed_bytes=10_000_000, value_chars=1_000_000))
    assert "bytes of data once decompressed (or more)" in message
    assert "WORKBENCH_INGEST_MAX_DECOMPRESSED_BYTES" in message


def test_awkward_but_honest_files_still_read():
    frame, _ = read_table(b"product_id,title,,\nP1,Mug,,\n", "trailing.csv")  # a spreadsheet's empty columns
    assert frame["product_id"].tolist() == ["P1"]
    frame, _ = read_table(b"product_id,title\rP1,Mug\rP2,Cup\r", "old-mac.csv")  # \r line endings
    assert frame["title"].tolist() == ["Mug", "Cup"]


def test_json_lines_too_deep_or_too_long_get_a_message():
    message, _ = _refused(("[" * 100_000 + "]" * 100_000 + "\n").encode(), "deep.jsonl")
    assert "deep.jsonl" in message and "line 1" in message
    message, _ = _refused(b'{"product_id": ' + b"9" * 5_000 + b"}\n", "long-number.jsonl")
    assert "long-number.jsonl" in message
