"""Validation: a value of the wrong type is reported with its file, row, line,
column and value; a bad mapping is reported before any value is looked at.

Each upload is a few lines of CSV read the way a user's file is read, so the
row and line numbers in the assertions can be checked by eye against the text.
"""

from __future__ import annotations

import pandas as pd
import pytest

from recsys.data.clean import CleaningConfig
from recsys.data.ingest import IngestOptions, ingest_file, prepare
from recsys.data.readers import read_table
from recsys.data.report import IngestError
from recsys.data.schema import guess_mapping
from tests.conftest import pseudonym

KNOWN = {"P1", "P2", "P3"}


def _prepare(text: str, kind: str = "catalog", filename: str = "upload.csv", **options):
    frame, fmt = read_table(text.encode(), filename)
    known = None if kind == "catalog" else KNOWN
    return prepare(frame, IngestOptions(kind, **options), file=filename, fmt=fmt, known_products=known)


def _refusal(text: str, kind: str = "catalog", filename: str = "upload.csv", **options):
    with pytest.raises(IngestError) as error:
        _prepare(text, kind, filename, **options)
    report = error.value.report
    assert not report.ok
    assert all(p.file == filename for p in report.problems)
    return report


def test_a_word_in_the_price_column_names_row_line_column_and_value():
    report = _refusal("product_id,title,price\nP1,Mug,3.50\nP2,Cup,abc\nP3,Pot,12\n")
    assert report.problem_count == 1
    problem = report.problems[0]
    assert (problem.row, problem.line, problem.column, problem.value) == (2, 3, "price", "abc")
    assert problem.reason == "is not a number"
    assert report.message().splitlines()[1] == (
        "  - upload.csv, row 2 (line 3), column 'price': is not a number (value 'abc')")


def test_json_lines_rows_are_their_lines():
    report = _refusal('{"product_id": "P1", "title": "Mug", "price": 1}\n'
                      '{"product_id": "P2", "title": "Cup", "price": "cheap"}\n',
                      filename="catalog.jsonl")
    problem = report.problems[0]
    assert (problem.row, problem.line, problem.column, problem.value) == (2, 2, "price", "cheap")


def test_parquet_rows_have_no_line(write):
    path = write("catalog.parquet", pd.DataFrame({"product_id": ["P1", "P2"], "title": ["Mug", "Cup"],
                                                   "in_stock": ["yes", "maybe"]}))
    frame, fmt = read_table(path)
    with pytest.raises(IngestError) as error:
        prepare(frame, IngestOptions("catalog"), file="catalog.parquet", fmt=fmt)
    problem = error.value.report.problems[0]
    assert (problem.row, problem.line, problem.column, problem.value) == (2, None, "in_stock", "maybe")
    assert "true/false" in problem.reason


def test_the_source_column_name_is_reported_not_the_canonical_one():
    report = _refusal("StockCode,Description,UnitPrice\n85123A,Mug,1.o\n")
    assert report.problems[0].column == "UnitPrice"


def test_every_bad_value_is_counted_but_only_ten_per_column_are_listed():
    rows = "".join(f"P{i},Item {i},x{i}\n" for i in range(1, 13))
    report = _refusal("product_id,title,price\n" + rows)
    assert report.problem_count == 12
    assert [p.row for p in report.problems] == list(range(1, 11))
    assert len(report.notes) == 1 and report.notes[0].startswith("column 'price': 12 values")
    assert "... and" not in report.message()


def test_bad_values_in_several_columns_are_all_reported():
    report = _refusal("user_id,product_id,event_type,value,timestamp\n"
                      "u1,P1,view,1,2024-01-01\n"
                      "u1,P2,teleport,1,2024-01-01\n"
                      "u2,P3,purchase,two,yesterday-ish\n", kind="events")
    found = {(p.column, p.row, p.line, p.value) for p in report.problems}
    assert found == {("event_type", 2, 3, "teleport"), ("value", 3, 4, "two"),
                     ("timestamp", 3, 4, "yesterday-ish")}


def test_a_missing_required_column_is_named():
    report = _refusal("product_id,price\nP1,3\n")
    assert report.problem_count == 1
    problem = report.problems[0]
    assert problem.column == "title"
    assert "required column 'title' is missing" in problem.reason
    assert "['product_id', 'price']" in problem.reason  # what the file does have


def test_events_name_each_missing_required_column():
    report = _refusal("user_id,event_type\nu1,view\n", kind="events")
    assert sorted(p.column for p in report.problems) == ["product_id", "timestamp"]


def test_a_mapping_naming_a_column_the_file_lacks():
    report = _refusal("sku,name\nP1,Mug\n", mapping={"sku": "product_id", "Name": "title"})
    messages = [p.reason for p in report.problems]
    assert any("names column 'Name', which the file does not have" in m for m in messages)
    assert any("required column 'title' is missing" in m for m in messages)
    assert report.problems[0].column == "Name"


def test_a_mapping_to_a_column_that_is_not_canonical():
    report = _refusal("sku,name\nP1,Mug\n", mapping={"sku": "product_id", "name": "label"})
    assert "'name' to 'label', which is not a column of catalog" in report.problems[0].reason


def test_two_columns_mapped_to_one_target():
    report = _refusal("sku,name,description\nP1,Mug,A mug\n",
                      mapping={"sku": "product_id", "name": "title", "description": "title"})
    assert report.problem_count == 1
    problem = report.problems[0]
    assert problem.column == "title"
    assert "['name', 'description'] are all mapped to 'title'" in problem.reason


def test_events_without_event_type_need_a_default():
    text = "user_id,product_id,timestamp\nu1,P1,2024-01-01\nu2,P2,2024-01-02\n"
    report = _refusal(text, kind="events")
    assert [p.column for p in report.problems] == ["event_type"]
    assert "no column is mapped to 'event_type'" in report.problems[0].reason

    prepared = _prepare(text, kind="events", cleaning=CleaningConfig(default_event_type="view"))
    assert prepared.frame["event_type"].tolist() == ["view", "view"]
    assert prepared.frame["value"].tolist() == [1.0, 1.0]


def test_event_type_synonyms_are_canonicalised():
    prepared = _prepare("user_id,product_id,action,timestamp\n"
                        "u1,P1,AddToCart,2024-01-01\nu1,P2, Detail ,2024-01-02\nu2,P3,buy,2024-01-03\n",
                        kind="events")
    assert prepared.frame["event_type"].tolist() == ["cart", "view", "purchase"]


def test_events_without_an_active_catalog_are_refused(db_url, write):
    path = write("events.csv", "user_id,product_id,event_type,timestamp\nu1,P1,view,2024-01-01\n")
    with pytest.raises(IngestError) as error:
        ingest_file(path, IngestOptions("events"), actor="test", url=db_url)
    problems = error.value.report.problems
    assert len(problems) == 1
    assert problems[0].file == "events.csv"
    assert "there is no active catalog to check events against; upload a catalog first" \
        in problems[0].reason


def test_an_unknown_kind_is_refused():
    with pytest.raises(IngestError, match="unknown kind 'reviews'"):
        _prepare("a\n1\n", kind="reviews")


def test_skip_invalid_rows_drops_them_and_says_so():
    prepared = _prepare("product_id,title,price,in_stock\n"
                        "P1,Mug,3.50,yes\nP2,Cup,abc,no\nP3,Pot,12,perhaps\nP4,Jug,4,1\n",
                        skip_invalid_rows=True)
    assert prepared.report.ok
    assert prepared.frame["product_id"].tolist() == ["P1", "P4"]
    assert (prepared.report.rows_in, prepared.report.rows_out) == (4, 2)
    rule = next(r for r in prepared.report.cleaning if r.rule == "invalid_values")
    assert (rule.action, rule.rows) == ("dropped", 2)
    assert rule.examples == [{"_row": 2, "column": "price", "value": "abc"},
                             {"_row": 3, "column": "in_stock", "value": "perhaps"}]


def test_skip_invalid_rows_counts_a_row_once_when_two_values_are_bad():
    prepared = _prepare("product_id,title,price,in_stock\nP1,Mug,abc,perhaps\nP2,Cup,2,no\n",
                        skip_invalid_rows=True)
    rule = next(r for r in prepared.report.cleaning if r.rule == "invalid_values")
    assert rule.rows == 1
    assert prepared.frame["product_id"].tolist() == ["P2"]


def test_skip_invalid_rows_does_not_forgive_a_bad_mapping():
    report = _refusal("product_id,price\nP1,abc\n", skip_invalid_rows=True)
    assert [p.column for p in report.problems] == ["title"]


def test_ids_read_from_a_float_column_lose_their_decimal_point(write):
    path = write("events.parquet", pd.DataFrame({
        "CustomerID": [17850.0, None, 12583.0], "StockCode": ["P1", "P2", "P3"],
        "InvoiceDate": pd.to_datetime(["2024-01-01"] * 3)}))
    frame, fmt = read_table(path)
    prepared = prepare(frame, IngestOptions("events", cleaning=CleaningConfig(default_event_type="purchase")),
                       file="events.parquet", fmt=fmt, known_products=KNOWN)
    assert prepared.frame["user_id"].tolist() == [pseudonym("17850"), pseudonym("12583")]


def test_numbers_accept_thousands_separators():
    prepared = _prepare('product_id,title,price\nP1,Sofa,"1,250.00"\n')
    assert prepared.frame["price"].tolist() == [1250.0]


def test_online_retail_column_names_are_guessed():
    columns = ["InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "UnitPrice",
               "CustomerID", "Country"]
    assert guess_mapping(columns, "catalog") == {
        "StockCode": "product_id", "Description": "title", "UnitPrice": "price"}
    assert guess_mapping(columns, "events") == {
        "CustomerID": "user_id", "StockCode": "product_id", "Quantity": "value",
        "InvoiceDate": "timestamp", "InvoiceNo": "session_id", "UnitPrice": "price",
        "Country": "country"}
