"""Reading uploads: every format gives the same canonical frame, and every bad
file is refused with a report that names the file and, where it can, the line.

The data is a three-product catalog and three events written by hand in each
format, so a difference between formats shows up as a failed equality.
"""

from __future__ import annotations

import random

import pandas as pd
import pytest

from recsys.data.ingest import IngestOptions, ingest_file, prepare
from recsys.data.readers import detect_format, read_table
from recsys.data.report import IngestError
from tests.conftest import pseudonym

CATALOG = {
    "csv": 'product_id,title,price,in_stock\nP1,"Mug, red",3.50,true\nP2,Blue mug,3,no\nP3,Teapot,12.00,1\n',
    "tsv": "product_id\ttitle\tprice\tin_stock\nP1\tMug, red\t3.50\ttrue\nP2\tBlue mug\t3\tno\n"
           "P3\tTeapot\t12.00\t1\n",
    "jsonl": '{"product_id": "P1", "title": "Mug, red", "price": 3.5, "in_stock": true}\n'
             '{"product_id": "P2", "title": "Blue mug", "price": 3, "in_stock": false}\n'
             '\n'  # a blank line is allowed between records
             '{"product_id": "P3", "title": "Teapot", "price": 12.0, "in_stock": true}\n',
}
CATALOG_FRAME = pd.DataFrame({
    "product_id": ["P1", "P2", "P3"], "title": ["Mug, red", "Blue mug", "Teapot"],
    "price": [3.5, 3.0, 12.0], "in_stock": [True, False, True],
})

EVENTS = {
    "csv": "user_id,product_id,event_type,value,timestamp\n"
           "u1,P1,view,1,2024-01-01 10:00\nu1,P2,purchase,2,2024-01-01T10:05:00\n"
           "u2,P3,rating,4,2024-01-02 09:00:00\n",
    "tsv": "user_id\tproduct_id\tevent_type\tvalue\ttimestamp\n"
           "u1\tP1\tview\t1\t2024-01-01 10:00\nu1\tP2\tpurchase\t2\t2024-01-01 10:05\n"
           "u2\tP3\trating\t4\t2024-01-02 09:00\n",
    # Unix seconds, as JSON numbers: 2024-01-01 10:00, 10:05 and 2024-01-02 09:00.
    "jsonl": '{"user_id": "u1", "product_id": "P1", "event_type": "view", "value": 1, '
             '"timestamp": 1704103200}\n'
             '{"user_id": "u1", "product_id": "P2", "event_type": "purchase", "value": 2, '
             '"timestamp": 1704103500}\n'
             '{"user_id": "u2", "product_id": "P3", "event_type": "rating", "value": 4, '
             '"timestamp": 1704186000}\n',
}
EVENTS_FRAME = pd.DataFrame({
    "user_id": ["u1", "u1", "u2"], "product_id": ["P1", "P2", "P3"],
    "event_type": ["view", "purchase", "rating"], "value": [1.0, 2.0, 4.0],
    "timestamp": pd.to_datetime(["2024-01-01 10:00", "2024-01-01 10:05", "2024-01-02 09:00"]),
})


def _prepared(path, kind, **options):
    frame, fmt = read_table(path, **options)
    known = None if kind == "catalog" else {"P1", "P2", "P3"}
    return prepare(frame, IngestOptions(kind), file=path.name, fmt=fmt, known_products=known).frame


def _plain(frame: pd.DataFrame) -> pd.DataFrame:
    """Values only: the canonical frame uses pandas' nullable dtypes."""
    return frame.astype(object).reset_index(drop=True)


@pytest.mark.parametrize("fmt", ["csv", "tsv", "jsonl", "parquet"])
def test_every_format_gives_the_same_canonical_catalog(write, fmt):
    content = CATALOG_FRAME if fmt == "parquet" else CATALOG[fmt]
    prepared = _prepared(write(f"catalog.{fmt}", content), "catalog")
    assert list(prepared.columns) == ["product_id", "title", "price", "in_stock"]
    pd.testing.assert_frame_equal(_plain(prepared), _plain(CATALOG_FRAME))


def _stored(events: pd.DataFrame) -> pd.DataFrame:
    """`events` as they are stored: customer ids pseudonymised."""
    return events.assign(user_id=events["user_id"].map(pseudonym))


@pytest.mark.parametrize("fmt", ["csv", "tsv", "jsonl", "parquet"])
def test_every_format_gives_the_same_canonical_events(write, fmt):
    content = EVENTS_FRAME if fmt == "parquet" else EVENTS[fmt]
    prepared = _prepared(write(f"events.{fmt}", content), "events")
    assert prepared["timestamp"].dtype == "datetime64[us]"
    pd.testing.assert_frame_equal(_plain(prepared), _plain(_stored(EVENTS_FRAME)))


@pytest.mark.parametrize("stamps", [("1704103200", "1704103500", "1704186000"),
                                    ("1704103200000", "1704103500000", "1704186000000")])
def test_unix_time_in_a_csv_is_read_as_seconds_or_milliseconds(write, stamps):
    # CSV columns arrive as text; Unix time must not be mistaken for a bad date.
    rows = [f"{u},{p},{t},{v},{s}" for (u, p, t, v), s in zip(
        [("u1", "P1", "view", 1), ("u1", "P2", "purchase", 2), ("u2", "P3", "rating", 4)], stamps)]
    path = write("events.csv", "user_id,product_id,event_type,value,timestamp\n" + "\n".join(rows))
    pd.testing.assert_frame_equal(_plain(_prepared(path, "events")), _plain(_stored(EVENTS_FRAME)))


def test_text_formats_keep_every_value_as_text(write):
    # Validation, not the reader, decides types: that is how it can name the bad cell.
    frame, fmt = read_table(write("catalog.csv", CATALOG["csv"]))
    assert fmt == "csv"
    assert frame["price"].tolist() == ["3.50", "3", "12.00"]
    assert frame["product_id"].tolist() == ["P1", "P2", "P3"]


def test_the_delimiter_is_sniffed_and_quoted_fields_survive(write):
    frame, _ = read_table(write("catalog.csv", 'product_id;title;price\nP1;"Cup; blue";2\n'))
    assert list(frame.columns) == ["product_id", "title", "price"]
    assert frame.loc[0, "title"] == "Cup; blue"


def test_bytes_with_a_filename_read_like_a_file():
    frame, fmt = read_table(CATALOG["tsv"].encode(), "upload.tsv")
    assert fmt == "tsv" and frame.shape == (3, 4)


def test_a_utf8_byte_order_mark_is_not_part_of_the_first_column_name(write):
    frame, _ = read_table(write("catalog.csv", b"\xef\xbb\xbf" + CATALOG["csv"].encode()))
    assert frame.columns[0] == "product_id"


@pytest.mark.parametrize("name, fmt", [("a.CSV", "csv"), ("a.tab", "tsv"), ("a.pq", "parquet"),
                                       ("a.ndjson", "jsonl"), ("a.json", "jsonl"), ("a.xlsx", None)])
def test_format_is_detected_from_the_extension(name, fmt):
    assert detect_format(name) == fmt


# --- bad files -------------------------------------------------------------

def _problem(error: pytest.ExceptionInfo) -> object:
    report = error.value.report
    assert not report.ok
    return report.problems[0]


def test_latin1_bytes_are_refused_with_their_line_and_read_with_the_right_encoding(write):
    path = write("catalog.csv", "product_id,title\nP1,Mug\nP2,Caf\xe9 cup\n".encode("latin-1"))
    with pytest.raises(IngestError) as error:
        read_table(path)
    problem = _problem(error)
    assert problem.file == "catalog.csv"
    assert problem.line == 3
    assert "is not UTF-8" in problem.reason and "line 3" in problem.reason
    assert "\"Encoding of a text file\" on the Data page, --encoding on the command line" in problem.reason
    assert "catalog.csv" in str(error.value)

    frame, _ = read_table(path, encoding="latin-1")
    assert frame["title"].tolist() == ["Mug", "Café cup"]


def test_an_unknown_encoding_name_is_a_report_not_a_traceback(write):
    with pytest.raises(IngestError, match="cannot be read as no-such-codec"):
        read_table(write("catalog.csv", CATALOG["csv"]), encoding="no-such-codec")


def test_utf16_with_a_byte_order_mark_is_read(write):
    frame, _ = read_table(write("catalog.csv", CATALOG["csv"].encode("utf-16")))
    assert frame["title"].tolist() == ["Mug, red", "Blue mug", "Teapot"]


@pytest.mark.parametrize("content", [b"", b"  \n\n"])
def test_an_empty_file_is_refused(write, content):
    with pytest.raises(IngestError) as error:
        read_table(write("catalog.csv", content))
    problem = _problem(error)
    assert problem.file == "catalog.csv"
    assert "is empty" in problem.reason


@pytest.mark.parametrize("name, content", [("catalog.csv", "product_id,title,price\n"),
                                           ("catalog.tsv", "product_id\ttitle\n")])
def test_a_header_without_rows_is_refused(write, name, content):
    with pytest.raises(IngestError) as error:
        read_table(write(name, content))
    problem = _problem(error)
    assert problem.file == name
    assert problem.reason == "has a header but no data rows."


def _png() -> bytes:
    rng = random.Random(7)
    return b"\x89PNG\r\n\x1a\n" + bytes(rng.randrange(256) for _ in range(512))


@pytest.mark.parametrize("name", ["photo.csv", "photo.jsonl", "photo.tsv", "photo"])
def test_an_image_is_not_a_table(write, name):
    with pytest.raises(IngestError) as error:
        read_table(write(name, _png()))
    problem = _problem(error)
    assert problem.file == name
    assert "not a table" in problem.reason and "PNG" in problem.reason


def test_random_binary_bytes_are_not_a_table(write):
    rng = random.Random(3)
    with pytest.raises(IngestError, match="not a table: it holds binary data"):
        read_table(write("data.csv", bytes(rng.randrange(256) for _ in range(512))))


def test_a_parquet_extension_on_garbage_is_refused(write):
    with pytest.raises(IngestError) as error:
        read_table(write("catalog.parquet", b"this is not parquet at all\n" * 3))
    problem = _problem(error)
    assert problem.file == "catalog.parquet"
    assert "not a readable Parquet file" in problem.reason


def test_an_excel_workbook_is_named_as_such(write):
    with pytest.raises(IngestError, match="Excel"):
        read_table(write("catalog.csv", b"PK\x03\x04" + b"\x14\x00" * 40))


def test_malformed_json_lines_name_the_line(write):
    text = '{"product_id": "P1", "title": "Mug"}\n\n{"product_id": "P2", "title": "Cup"\n'
    with pytest.raises(IngestError) as error:
        read_table(write("catalog.jsonl", text))
    problem = _problem(error)
    assert problem.file == "catalog.jsonl"
    assert problem.line == 3  # the blank line 2 still counts
    assert "not valid JSON Lines" in problem.reason
    assert "line 3" in str(error.value)


def test_json_lines_must_hold_objects(write):
    with pytest.raises(IngestError) as error:
        read_table(write("catalog.jsonl", '{"product_id": "P1"}\n["P2", "Cup"]\n'))
    assert _problem(error).line == 2
    assert "objects" in _problem(error).reason


def test_json_lines_split_only_at_newlines(write):
    # JSON allows U+2028 unescaped inside a string; it is not a record separator.
    text = '{"product_id": "P1", "title": "Mug\u2028red"}\n{"product_id": "P2", "title": "Cup"}\n'
    frame, _ = read_table(write("catalog.jsonl", text))
    assert frame["title"].tolist() == ["Mug\u2028red", "Cup"]


def test_nested_json_values_become_visible_text(write):
    frame, _ = read_table(write("catalog.jsonl", '{"product_id": "P1", "tags": ["a", "b"]}\n'))
    assert frame.loc[0, "tags"] == '["a", "b"]'


def test_repeated_column_names_are_refused(write):
    with pytest.raises(IngestError, match=r"has the column name\(s\) \['title'\] more than once"):
        read_table(write("catalog.tsv", "product_id\ttitle\ttitle\nP1\tMug\tCup\n"))


def test_a_missing_file_is_a_report(tmp_path):
    with pytest.raises(IngestError, match="nope.csv: cannot be opened"):
        read_table(tmp_path / "nope.csv")


def test_ingest_file_reports_a_bad_file_without_touching_the_database(write, db_url):
    with pytest.raises(IngestError) as error:
        ingest_file(write("catalog.csv", b""), IngestOptions("catalog"), actor="test", url=db_url)
    assert error.value.report.problems[0].file == "catalog.csv"
