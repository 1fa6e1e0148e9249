"""Cleaning rules: each one is checked by how many rows it dropped, changed or
merged, and by the source rows (`_row`) it shows as examples.

The uploads are small CSV texts in which every row is there for one rule; the
comment at the end of each line says which, so the expected counts can be read
off the data.
"""

from __future__ import annotations

import pandas as pd
import pytest

from recsys.data.clean import CleaningConfig, clean_catalog, clean_judgments, clean_search_log
from recsys.data.ingest import IngestOptions, prepare
from recsys.data.readers import read_table
from recsys.data.report import IngestError
from recsys.data.validate import ROW
from tests.conftest import pseudonym


def _prepare(lines: list[str], kind: str, config: CleaningConfig | None = None, known=None):
    """Prepare CSV lines; text after '#' on a line is a comment for the reader."""
    text = "\n".join(line.split("#")[0].rstrip() for line in lines) + "\n"
    frame, fmt = read_table(text.encode(), f"{kind}.csv")
    options = IngestOptions(kind, cleaning=config or CleaningConfig())
    return prepare(frame, options, file=f"{kind}.csv", fmt=fmt, known_products=known)


def _rules(prepared) -> dict[str, tuple[str, int]]:
    return {r.rule: (r.action, r.rows) for r in prepared.report.cleaning}


def _example_rows(prepared, rule: str) -> list[int]:
    return [e[ROW] for r in prepared.report.cleaning if r.rule == rule for e in r.examples]


CATALOG = [
    "product_id,title,price",
    "85123a,  Heart   holder ,2.55",     # row 1: spaces collapsed; id upper-cased when asked
    "85123A,Heart holder,2.95",          # row 2
    "85123A,Heart holder red,2.65",      # row 3: a second title for 85123A
    ",Nameless,1.00",                    # row 4: no id
    "POST,POSTAGE,18.00",                # row 5: postage is not a product
    "gift_0001_20,Gift voucher,20",      # row 6: nor is a voucher
    "22111,Hot water bottle,0",          # row 7: zero price
    "22112,Teapot,-3",                   # row 8: negative price
    "22113,,5",                          # row 9: no title
    "22114,Golden sofa,250000",          # row 10: absurd price
    "22115,Mug,1.25",                    # row 11
    "22115,Mug,1.25",                    # row 12: duplicate of row 11
]


def test_catalog_rules_count_what_they_did_with_upper_case_ids():
    prepared = _prepare(CATALOG, "catalog", CleaningConfig(id_case="upper"))
    assert _rules(prepared) == {
        "whitespace_and_case": ("changed", 2),       # rows 1 and 6
        "missing_ids": ("dropped", 1),
        "non_product_codes": ("dropped", 2),
        "missing_titles": ("dropped", 1),
        "zero_or_negative_prices": ("dropped", 2),
        "absurd_values": ("dropped", 1),
        "several_titles": ("changed", 1),            # one product id, 85123A
        "duplicates": ("merged", 3),                 # rows 2, 3 into 1; row 12 into 11
    }
    assert [r.rule for r in prepared.report.cleaning][:6] == [
        "whitespace_and_case", "missing_ids", "non_product_codes", "missing_titles",
        "zero_or_negative_prices", "absurd_values"]
    assert (prepared.report.rows_in, prepared.report.rows_out) == (12, 2)
    products = prepared.frame.set_index("product_id")
    assert products.index.tolist() == ["85123A", "22115"]
    assert products.loc["85123A", "title"] == "Heart holder"  # 2 of 3 rows say so
    assert products.loc["85123A", "price"] == 2.65           # the median
    assert products.loc["22115", "price"] == 1.25


def test_catalog_rule_examples_are_the_source_rows_as_they_were():
    prepared = _prepare(CATALOG, "catalog", CleaningConfig(id_case="upper"))
    assert _example_rows(prepared, "whitespace_and_case") == [1, 6]
    assert _example_rows(prepared, "missing_ids") == [4]
    assert _example_rows(prepared, "non_product_codes") == [5, 6]
    assert _example_rows(prepared, "missing_titles") == [9]
    assert _example_rows(prepared, "zero_or_negative_prices") == [7, 8]
    assert _example_rows(prepared, "absurd_values") == [10]
    assert _example_rows(prepared, "duplicates") == [2, 3, 12]
    changed = next(r for r in prepared.report.cleaning if r.rule == "whitespace_and_case")
    assert changed.examples[0] == {ROW: 1, "product_id": "85123a", "title": "  Heart   holder ",
                                   "price": 2.55}
    several = next(r for r in prepared.report.cleaning if r.rule == "several_titles")
    assert several.examples == [{"product_id": "85123A", "chosen": "Heart holder",
                                 "others": "Heart holder red"}]


def test_without_upper_case_ids_85123a_stays_its_own_product():
    prepared = _prepare(CATALOG, "catalog")
    assert sorted(prepared.frame["product_id"]) == ["22115", "85123A", "85123a"]
    assert _rules(prepared)["duplicates"] == ("merged", 2)  # rows 3 and 12
    # The pattern for vouchers ignores case, so gift_0001_20 goes either way.
    assert _rules(prepared)["non_product_codes"] == ("dropped", 2)


def test_several_titles_go_to_the_most_frequent_and_ties_to_the_first_seen():
    # (Not "A" and "B": B, like M, D and S, is a default non-product code of Online Retail.)
    prepared = _prepare(["product_id,title",
                         "CUP,Blue cup", "CUP,Cup blue", "CUP,Cup blue",   # Cup blue: 2 of 3
                         "JUG,Red jug", "JUG,Jug red"],                    # a tie: first seen wins
                        "catalog")
    titles = dict(zip(prepared.frame["product_id"], prepared.frame["title"]))
    assert titles == {"CUP": "Cup blue", "JUG": "Red jug"}
    assert _rules(prepared)["several_titles"] == ("changed", 2)


def test_catalog_merges_description_category_price_and_stock():
    prepared = _prepare(["product_id,title,description,category,price,in_stock",
                         "A,Cup,Small,kitchen,1,yes",
                         "A,Cup,Small,garden,3,yes",
                         "A,Cup,,kitchen,8,no"], "catalog")
    product = prepared.frame.iloc[0]
    assert (product["description"], product["category"], product["price"]) == ("Small", "kitchen", 3.0)
    assert not product["in_stock"]  # the last row says what is true now
    assert len(prepared.frame) == 1


def test_non_product_codes_are_configurable():
    config = CleaningConfig(non_product_codes=("FEE",), non_product_pattern="")
    prepared = _prepare(["product_id,title", "POST,Postage", "fee,Fee", "A,Cup"], "catalog", config)
    assert prepared.frame["product_id"].tolist() == ["POST", "A"]
    assert _example_rows(prepared, "non_product_codes") == [2]


def test_a_catalog_with_nothing_left_is_refused():
    with pytest.raises(IngestError) as error:
        _prepare(["product_id,title", "POST,Postage", "DOT,Dotcom postage"], "catalog")
    report = error.value.report
    assert report.rows_out == 0
    assert "no rows are left after cleaning" in report.problems[0].reason
    assert report.cleaning[0].rule == "non_product_codes"


EVENTS = [
    "user_id,product_id,event_type,value,timestamp,session_id,price,is_cancellation,country",
    "u1,P1,purchase,2,2024-01-01 10:00,S1,3.5,false,UK",      # row 1: kept
    "u1,P1,purchase,2,2024-01-01 10:00,S1,3.5,false,UK",      # row 2: duplicate of row 1
    ",P1,view,1,2024-01-01 11:00,,,,UK",                      # row 3: anonymous
    "u2,,view,1,2024-01-01 11:00,,,,France",                  # row 4: no product
    "u2,P2,purchase,-1,2024-01-02,S2,3,false,France",         # row 5: a return
    "u2,P2,purchase,1,2024-01-02,C3,3,true,France",           # row 6: a cancellation
    "u2,POST,purchase,1,2024-01-02,S2,18,false,France",       # row 7: postage
    "u3,P3,purchase,1,2024-01-03,S4,0,false,Germany",         # row 8: zero price
    "u3,P3,purchase,10000000,2024-01-03,S4,2,false,Germany",  # row 9: absurd quantity
    "u3,P3,rating,99,2024-01-03,,,,Germany",                  # row 10: absurd rating
    "u3,P3,view,1,2999-01-01,,,,Germany",                     # row 11: in the future
    "u3,P9,view,1,2024-01-04,,,,Germany",                     # row 12: not in the catalog
    " u2 ,P2,view,1,2024-01-05,,,,France",                    # row 13: kept, trimmed
    "u3,P3,rating,4,2024-01-05,,,,Germany",                   # row 14: kept
    "u1,P2,view,,2024-01-06,,,,France",                       # row 15: kept, value 1
    "u1,P3,rating,,2024-01-06,,,,France",                     # row 16: a rating without value
    "u1,P1,view,1,,,,,UK",                                    # row 17: no time
    "u1,P1,view,1,1985-06-01,,,,UK",                          # row 18: before 1990
]


def _clean_events(config: CleaningConfig | None = None):
    return _prepare(EVENTS, "events", config, known={"P1", "P2", "P3"})


def test_event_rules_count_what_they_did():
    prepared = _clean_events()
    assert [(r.rule, r.action, r.rows) for r in prepared.report.cleaning] == [
        ("whitespace_and_case", "changed", 1),
        ("missing_ids", "dropped", 2),
        ("missing_values", "dropped", 1),            # no time
        ("missing_values", "dropped", 1),            # a rating without a value
        ("non_product_codes", "dropped", 1),
        ("cancellations_and_returns", "dropped", 2),
        ("zero_or_negative_prices", "dropped", 1),
        ("absurd_values", "dropped", 4),
        ("duplicates", "dropped", 1),
        ("unknown_products", "dropped", 1),
    ]
    assert (prepared.report.rows_in, prepared.report.rows_out) == (18, 4)


def test_event_rule_examples_are_the_source_rows():
    prepared = _clean_events()
    assert _example_rows(prepared, "whitespace_and_case") == [13]
    assert _example_rows(prepared, "missing_ids") == [3, 4]
    assert _example_rows(prepared, "missing_values") == [17, 16]
    assert _example_rows(prepared, "non_product_codes") == [7]
    assert _example_rows(prepared, "cancellations_and_returns") == [5, 6]
    assert _example_rows(prepared, "zero_or_negative_prices") == [8]
    assert _example_rows(prepared, "absurd_values") == [9, 10, 11, 18]
    assert _example_rows(prepared, "duplicates") == [2]
    assert _example_rows(prepared, "unknown_products") == [12]
    absurd = next(r for r in prepared.report.cleaning if r.rule == "absurd_values")
    assert absurd.examples[0]["value"] == 10_000_000.0
    assert absurd.examples[2]["timestamp"] == "2999-01-01 00:00:00"


def test_events_keep_the_good_rows_with_canonical_values():
    events = _clean_events().frame
    assert events[["user_id", "product_id", "event_type", "value"]].values.tolist() == [
        [pseudonym("u1"), "P1", "purchase", 2.0],
        [pseudonym("u2"), "P2", "view", 1.0],   # " u2 " trimmed
        [pseudonym("u3"), "P3", "rating", 4.0],
        [pseudonym("u1"), "P2", "view", 1.0],   # a missing value counts as 1
    ]
    assert events["session_id"].tolist()[0] == "S1"
    assert "price" not in events and "is_cancellation" not in events and "country" not in events


def test_users_get_their_most_frequent_country_with_ties_to_the_first_seen():
    users = _clean_events().users
    # u1 has one UK line (row 1) and one France line (row 15): the first seen wins.
    assert dict(zip(users["user_id"], users["country"])) == {
        pseudonym("u1"): "UK", pseudonym("u2"): "France", pseudonym("u3"): "Germany"}


def test_unknown_products_can_be_kept():
    prepared = _clean_events(CleaningConfig(drop_unknown_products=False))
    assert "unknown_products" not in _rules(prepared)
    assert "P9" in set(prepared.frame["product_id"])


def test_absurd_limits_are_configurable():
    prepared = _clean_events(CleaningConfig(max_value=1e8, rating_max=100, earliest="1980-01-01"))
    assert _example_rows(prepared, "absurd_values") == [11]


def test_a_negative_view_is_not_a_return():
    prepared = _prepare(["user_id,product_id,event_type,value,timestamp", "u1,P1,view,-1,2024-01-01"],
                        "events", known={"P1"})
    assert "cancellations_and_returns" not in _rules(prepared)
    assert prepared.frame["value"].tolist() == [-1.0]


def test_events_with_upper_case_ids_match_the_catalog():
    prepared = _prepare(["user_id,product_id,event_type,timestamp", "u1,85123a,view,2024-01-01"],
                        "events", CleaningConfig(id_case="upper"), known={"85123A"})
    assert prepared.frame["product_id"].tolist() == ["85123A"]
    assert prepared.frame["user_id"].tolist() == [pseudonym("U1")]  # every id column is upper-cased


def test_judgments_repeated_are_merged_to_the_mean_grade():
    frame = pd.DataFrame({ROW: [1, 2, 3, 4], "query": ["mug", "mug ", "mug", None],
                          "product_id": ["P1", "P1", "P9", "P1"], "grade": [1.0, 3.0, 2.0, 1.0]})
    judged, rules = clean_judgments(frame, CleaningConfig(), known_products={"P1"})
    assert judged[["query", "product_id", "grade", ROW]].values.tolist() == [["mug", "P1", 2.0, 1]]
    assert [(r.rule, r.rows) for r in rules] == [
        ("whitespace_and_case", 1), ("missing_ids", 1), ("unknown_products", 1), ("duplicates", 1)]


def test_search_log_clicks_on_unknown_products_are_cleared_not_dropped():
    frame = pd.DataFrame({ROW: [1, 2, 3], "query": ["mug", "teapot", "mug"],
                          "product_id": ["P1", "P9", "P1"]})
    logged, rules = clean_search_log(frame, CleaningConfig(), known_products={"P1"})
    assert logged["query"].tolist() == ["mug", "teapot"]
    assert logged["product_id"].isna().tolist() == [False, True]
    assert [(r.rule, r.action, r.rows) for r in rules] == [
        ("duplicates", "dropped", 1), ("unknown_products", "changed", 1)]


def test_clean_catalog_does_not_change_its_input():
    frame = pd.DataFrame({ROW: [1, 2], "product_id": [" a", "a"], "title": ["Cup", "Cup"]})
    before = frame.copy()
    clean_catalog(frame, CleaningConfig())
    pd.testing.assert_frame_equal(frame, before)


def test_cleaning_config_round_trips_through_json():
    import json

    config = CleaningConfig(id_case="upper", non_product_codes=("POST",), default_event_type="view")
    assert CleaningConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
