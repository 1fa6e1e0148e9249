"""The Online Retail adapter: invoice lines in, a catalog and purchase events out.

Two sources of truth: a ten-line invoice file written by hand, where every
line is there for one rule, and the first 5,000 lines of the shipped file,
whose expected counts were computed independently with plain pandas
(1,581 distinct upper-cased stock codes with a title and a positive price;
3,718 customer purchase lines of catalog products, 3,639 once exact repeats
are removed; 178 customers).
"""

from __future__ import annotations

import pandas as pd
import pytest

from db import queries
from db.engine import session_scope, upgrade
from recsys.data.clean import DEFAULT_NON_PRODUCT_CODES
from recsys.data.online_retail import (CATEGORY_WORDS, COLUMNS, DEMO_FILE, ingest_online_retail,
                                      prepare_online_retail)
from recsys.data.readers import read_table
from recsys.data.report import IngestError
from tests.conftest import pseudonym

INVOICES = """InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country
536365,85123A,WHITE HEART,6,12/1/2010 8:26,2.55,17850,United Kingdom
536366,85123a,WHITE HEART,2,12/1/2010 9:00,2.55,13047,United Kingdom
C536367,85123A,WHITE HEART,-1,12/1/2010 10:00,2.55,17850,United Kingdom
536368,POST,POSTAGE,1,12/1/2010 10:00,18.00,12583,France
536369,22139,RETROSPOT TEA SET,1,12/2/2010 11:00,4.95,12583,France
536370,22139,amazon,-20,12/2/2010 11:30,0,,United Kingdom
536371,22139,amazon,-3,12/2/2010 11:40,0,,United Kingdom
536372,22752,SET 7 BABUSHKA,3,12/3/2010 12:00,7.65,,United Kingdom
536373,22752,SET 7 BABUSHKA NESTING BOXES,1,12/3/2010 13:00,8.50,12583,France
536374,gift_0001_20,Dotcomgift voucher,1,12/3/2010 14:00,17.02,,United Kingdom
"""


def _prepared(text: str = INVOICES):
    frame, fmt = read_table(text.encode(), "retail.csv")
    return prepare_online_retail(frame, file="retail.csv", fmt=fmt)


def test_invoice_lines_become_one_product_per_stock_code():
    catalog, _ = _prepared()
    products = catalog.frame.set_index("product_id")
    assert products.index.tolist() == ["85123A", "22139", "22752"]
    # 'amazon' is the most frequent description of 22139, but only on price-0 adjustments.
    assert products["title"].to_dict() == {
        "85123A": "WHITE HEART", "22139": "RETROSPOT TEA SET", "22752": "SET 7 BABUSHKA"}
    assert products["price"].to_dict() == {"85123A": 2.55, "22139": 4.95, "22752": 8.075}
    rules = {r.rule: r.rows for r in catalog.report.cleaning}
    assert rules["non_product_codes"] == 2        # POST and the voucher
    assert rules["zero_or_negative_prices"] == 2  # the two 'amazon' adjustments


def test_invoice_lines_become_purchases_of_known_customers():
    _, events = _prepared()
    assert events.frame[["user_id", "product_id", "event_type", "value", "session_id"]].values.tolist() == [
        [pseudonym("17850"), "85123A", "purchase", 6.0, "536365"],
        [pseudonym("13047"), "85123A", "purchase", 2.0, "536366"],
        [pseudonym("12583"), "22139", "purchase", 1.0, "536369"],
        [pseudonym("12583"), "22752", "purchase", 1.0, "536373"],
    ]
    assert events.frame["timestamp"].tolist()[0] == pd.Timestamp("2010-12-01 08:26")
    rules = {r.rule: [e["_row"] for e in r.examples] for r in events.report.cleaning}
    assert rules["missing_ids"] == [6, 7, 8, 10]
    assert rules["non_product_codes"] == [4]
    assert rules["cancellations_and_returns"] == [3]
    assert dict(zip(events.users["user_id"], events.users["country"])) == {
        pseudonym("17850"): "United Kingdom", pseudonym("13047"): "United Kingdom",
        pseudonym("12583"): "France"}


def test_missing_online_retail_columns_are_named():
    text = INVOICES.replace(",CustomerID,Country", ",Customer,Land")
    with pytest.raises(IngestError) as error:
        _prepared(text)
    problems = error.value.report.problems
    assert [p.column for p in problems] == ["CustomerID", "Country"]
    assert all(p.file == "retail.csv" for p in problems)
    assert "column 'CustomerID' of the Online Retail format is missing" in problems[0].reason


def test_a_missing_column_in_a_file_is_refused_before_anything_is_stored(db_url, write):
    frame = pd.read_parquet(DEMO_FILE).head(50).drop(columns=["Quantity"])
    with pytest.raises(IngestError, match="column 'Quantity' of the Online Retail format is missing"):
        ingest_online_retail(write("retail.parquet", frame), actor="test", url=db_url)
    with session_scope(db_url) as session:
        assert not queries.has_data(session)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The first 5,000 lines of the shipped file, ingested once for this module."""
    folder = tmp_path_factory.mktemp("retail")
    sample = pd.read_parquet(DEMO_FILE).head(5000)
    sample.to_parquet(folder / "retail_sample.parquet", index=False)
    url = f"sqlite:///{folder / 'demo.db'}"
    upgrade(url)
    result = ingest_online_retail(folder / "retail_sample.parquet", actor="test", url=url)
    with session_scope(url) as session:
        catalog_id, events_id = result.version_ids
        return {
            "sample": sample, "result": result,
            "products": queries.products_frame(session, catalog_id),
            "events": queries.events_frame(session, events_id),
            "users": queries.users_frame(session, events_id),
            "versions": queries.list_versions(session),
        }


def test_demo_sample_is_stored_as_an_active_catalog_and_events(demo):
    assert demo["result"].version_ids == [1, 2]
    assert demo["versions"][["kind", "rows", "active"]].values.tolist() == [
        ["events", 3639, True], ["catalog", 1581, True]]
    catalog, events = demo["result"].reports
    assert (catalog.rows_in, catalog.rows_out) == (5000, 1581)
    assert (events.rows_in, events.rows_out) == (5000, 3639)


def test_demo_catalog_has_upper_case_ids_no_fees_and_one_title_each(demo):
    products = demo["products"]
    assert len(products) == 1581
    assert products["product_id"].is_unique
    assert (products["product_id"] == products["product_id"].str.upper()).all()
    assert not products["product_id"].isin(DEFAULT_NON_PRODUCT_CODES).any()
    assert products["title"].notna().all() and (products["price"] > 0).all()
    titles = dict(zip(products["product_id"], products["title"]))
    # 22 lines say RETROSPOT, 17 say POLKA DOT.
    assert titles["22632"] == "HAND WARMER RED RETROSPOT"
    several = next(r for r in demo["result"].reports[0].cleaning if r.rule == "several_titles")
    assert several.rows == 6


def test_demo_products_get_a_category_from_their_titles(demo):
    products = demo["products"].set_index("product_id")
    assert products["category"].notna().all()
    assert products.loc["85123A", "category"] == "Candles & lights"  # WHITE HANGING HEART T-LIGHT HOLDER
    assert products.loc["22632", "category"] == "Other"  # HAND WARMER RED RETROSPOT
    assert set(products["category"]) <= {name for name, _ in CATEGORY_WORDS} | {"Other"}


def test_demo_catalog_report_names_the_postage_line(demo):
    rule = next(r for r in demo["result"].reports[0].cleaning if r.rule == "non_product_codes")
    assert rule.rows == 10  # POST 3, DOT 2, M 2, D 1, C2 1, BANK CHARGES 1
    first = rule.examples[0]
    assert (first["_row"], first["product_id"], first["title"]) == (46, "POST", "POSTAGE")
    assert demo["sample"].iloc[first["_row"] - 1]["StockCode"] == "POST"


def test_demo_events_are_purchases_of_known_customers_without_cancellations(demo):
    events, sample = demo["events"], demo["sample"]
    assert len(events) == 3639
    assert set(events["event_type"]) == {"purchase"}
    assert events["user_id"].notna().all()
    assert not events["session_id"].str.startswith("C").any()
    assert (events["value"] > 0).all()
    assert set(events["product_id"]) <= set(demo["products"]["product_id"])
    customers = sample["CustomerID"].dropna().astype("int64").astype(str)
    assert set(events["user_id"]) <= set(map(pseudonym, customers))  # stored pseudonymised
    rules = {r.rule: r.rows for r in demo["result"].reports[1].cleaning}
    assert rules["missing_ids"] == 1205  # the anonymous lines
    assert rules["duplicates"] == 3718 - 3639


def test_demo_users_have_a_country(demo):
    users = demo["users"]
    assert len(users) == 178 and users["user_id"].is_unique
    assert users["country"].notna().all()
    countries = dict(zip(users["user_id"], users["country"]))
    assert countries[pseudonym("12583")] == "France" and countries[pseudonym("17850")] == "United Kingdom"


def test_the_shipped_file_has_the_online_retail_columns():
    assert tuple(pd.read_parquet(DEMO_FILE).head(1).columns) == COLUMNS


def test_a_dry_run_of_the_demo_sample_reports_the_same_and_stores_nothing(demo_sample, db_url):
    result = ingest_online_retail(demo_sample, actor="test", dry_run=True, url=db_url)
    assert result.version_ids == []
    assert [r.rows_out for r in result.reports] == [1581, 3639]
    assert [r.file for r in result.reports] == ["retail_sample.parquet"] * 2
    with session_scope(db_url) as session:
        assert not queries.has_data(session)
