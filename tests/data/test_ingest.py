"""Uploads stored as dataset versions: what goes in comes back out, a failed
upload changes nothing, and activation and roll-back move only the flag.

Uses the four-product catalog and five events of tests/conftest.py, so every
stored row is known in advance.
"""

from __future__ import annotations

import pandas as pd
import pytest

from db import queries
from db.engine import session_scope
from recsys.data.clean import CleaningConfig
from recsys.data.ingest import IngestOptions, ingest_file
from recsys.data.report import IngestError, IngestReport
from tests.conftest import pseudonym

PRODUCTS = pd.DataFrame({
    "product_id": ["P1", "P2", "P3", "P4"],
    "title": ["Red mug", "Blue mug", "Green teapot", "Garden chair"],
    "description": [None] * 4,
    "category": ["kitchen", "kitchen", "kitchen", "garden"],
    "price": [3.5, 3.0, 12.0, 45.0],
    "in_stock": [None] * 4,
})
EVENTS = pd.DataFrame({
    "user_id": [pseudonym(user) for user in ["u1", "u1", "u2", "u2", "u3"]],
    "product_id": ["P1", "P1", "P2", "P3", "P4"],
    "event_type": ["view", "purchase", "cart", "purchase", "rating"],
    "value": [1.0, 2.0, 1.0, 1.0, 4.0],
    "timestamp": pd.to_datetime(["2024-01-01 10:00", "2024-01-01 10:05", "2024-01-02 09:00",
                                 "2024-01-02 09:10", "2024-01-03 12:00"]),
    "session_id": [None] * 5,
})


def _plain(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.astype(object).where(frame.notna(), None).reset_index(drop=True)


def _versions(url: str) -> pd.DataFrame:
    with session_scope(url) as session:
        return queries.list_versions(session).drop(columns=["created_at", "activated_at"])


def _active_id(url: str, kind: str) -> int | None:
    with session_scope(url) as session:
        version = queries.active_version(session, kind)
        return version.id if version else None


def _snapshot(url: str) -> dict[str, pd.DataFrame]:
    """Everything an upload could touch, read back from the database."""
    with session_scope(url) as session:
        versions = queries.list_versions(session)
        frames = {"versions": versions}
        for version in versions["version"]:
            frames[f"products {version}"] = queries.products_frame(session, int(version))
            frames[f"events {version}"] = queries.events_frame(session, int(version))
            frames[f"users {version}"] = queries.users_frame(session, int(version))
        return frames


def _assert_unchanged(before: dict, after: dict) -> None:
    assert before.keys() == after.keys()
    for name in before:
        pd.testing.assert_frame_equal(before[name], after[name], obj=name)


def _round_trip(url: str, catalog_file, events_file) -> None:
    catalog = ingest_file(catalog_file, IngestOptions("catalog"), actor="alice", url=url)
    events = ingest_file(events_file, IngestOptions("events"), actor="alice", url=url)
    assert catalog.ok and events.ok
    assert catalog.version_ids == [1] and events.version_ids == [2]

    with session_scope(url) as session:
        pd.testing.assert_frame_equal(_plain(queries.products_frame(session, 1)), _plain(PRODUCTS))
        pd.testing.assert_frame_equal(_plain(queries.events_frame(session, 2)), _plain(EVENTS))
        users = queries.users_frame(session, 2)
        assert sorted(users["user_id"]) == sorted(map(pseudonym, ["u1", "u2", "u3"]))
        assert users["country"].isna().all()
        assert queries.product_ids(session, 1) == {"P1", "P2", "P3", "P4"}

        stored = queries.active_version(session, "events")
        assert (stored.id, stored.row_count, stored.source, stored.created_by) == (
            2, 5, "events.csv", "alice")
        assert stored.catalog_version_id == 1
        report = IngestReport.from_dict(stored.report)
        assert (report.file, report.kind, report.rows_in, report.rows_out) == ("events.csv", "events", 5, 5)
        assert stored.mapping == {"user_id": "user_id", "product_id": "product_id",
                                  "event_type": "event_type", "value": "value",
                                  "timestamp": "timestamp"}
        assert queries.active_version(session, "catalog").id == 1


def test_catalog_and_events_round_trip_through_sqlite(db_url, catalog_file, events_file):
    _round_trip(db_url, catalog_file, events_file)
    versions = _versions(db_url)
    assert versions[["version", "kind", "rows", "active"]].values.tolist() == [
        [2, "events", 5, True], [1, "catalog", 4, True]]


def test_catalog_and_events_round_trip_through_postgresql(pg_url, catalog_file, events_file):
    _round_trip(pg_url, catalog_file, events_file)


def test_the_same_catalog_in_parquet_stores_the_same_rows(db_url, catalog_file, write):
    parquet = write("catalog.parquet", pd.read_csv(catalog_file))
    ingest_file(catalog_file, IngestOptions("catalog"), actor="alice", url=db_url)
    ingest_file(parquet, IngestOptions("catalog"), actor="alice", url=db_url)
    with session_scope(db_url) as session:
        pd.testing.assert_frame_equal(queries.products_frame(session, 1), queries.products_frame(session, 2))


def test_a_new_catalog_is_activated_and_the_old_one_kept(db_url, catalog_file, write):
    ingest_file(catalog_file, IngestOptions("catalog"), actor="alice", url=db_url)
    second = write("catalog2.csv", "product_id,title\nP1,Red mug\nP5,Lamp\n")
    result = ingest_file(second, IngestOptions("catalog"), actor="bob", url=db_url)
    assert result.version_ids == [2]
    assert _versions(db_url)[["version", "rows", "active"]].values.tolist() == [[2, 2, True], [1, 4, False]]
    with session_scope(db_url) as session:
        assert queries.products_frame(session, 1)["product_id"].tolist() == ["P1", "P2", "P3", "P4"]
        assert queries.products_frame(session, 2)["product_id"].tolist() == ["P1", "P5"]


def test_events_are_checked_against_the_active_catalog(db_url, catalog_file, events_file, write):
    ingest_file(catalog_file, IngestOptions("catalog"), actor="alice", url=db_url)
    ingest_file(write("small.csv", "product_id,title\nP1,Red mug\nP2,Blue mug\n"),
                IngestOptions("catalog"), actor="alice", url=db_url)
    result = ingest_file(events_file, IngestOptions("events"), actor="alice", url=db_url)
    unknown = next(r for r in result.reports[0].cleaning if r.rule == "unknown_products")
    assert unknown.rows == 2
    assert [e["_row"] for e in unknown.examples] == [4, 5]  # P3 and P4
    with session_scope(db_url) as session:
        events = queries.events_frame(session, result.version_ids[0])
        assert events["product_id"].tolist() == ["P1", "P1", "P2"]
        assert queries.active_version(session, "events").catalog_version_id == 2


BAD_UPLOADS = {
    "wrong type": ("catalog.csv", "product_id,title,price\nP1,Mug,3\nP2,Cup,abc\n"),
    "missing column": ("catalog.csv", "product_id,price\nP1,3\n"),
    "empty": ("catalog.csv", b""),
    "header only": ("catalog.csv", "product_id,title\n"),
    "not a table": ("catalog.csv", b"\x89PNG\r\n\x1a\n" + bytes(range(256))),
    "bad parquet": ("catalog.parquet", b"garbage" * 10),
    "bad json lines": ("catalog.jsonl", '{"product_id": "P9", "title": "Lamp"\n'),
    "latin-1": ("catalog.csv", "product_id,title\nP9,Caf\xe9\n".encode("latin-1")),
    "nothing left": ("catalog.csv", "product_id,title\nPOST,Postage\n"),
}


@pytest.mark.parametrize("case", BAD_UPLOADS, ids=list(BAD_UPLOADS))
def test_a_failed_upload_leaves_every_stored_row_as_it_was(db_url, catalog_file, events_file, write, case):
    ingest_file(catalog_file, IngestOptions("catalog"), actor="alice", url=db_url)
    ingest_file(events_file, IngestOptions("events"), actor="alice", url=db_url)
    before = _snapshot(db_url)

    name, content = BAD_UPLOADS[case]
    with pytest.raises(IngestError) as error:
        ingest_file(write(name, content), IngestOptions("catalog"), actor="mallory", url=db_url)
    assert error.value.report.problems[0].file == name

    _assert_unchanged(before, _snapshot(db_url))
    assert _active_id(db_url, "catalog") == 1
    with session_scope(db_url) as session:
        assert "mallory" not in set(queries.audit_log(session)["actor"])


def test_a_failure_while_storing_rolls_back_the_whole_upload(db_url, catalog_file, write, monkeypatch):
    # The version row and its products are written before activation; an error
    # there must take them all back.
    ingest_file(catalog_file, IngestOptions("catalog"), actor="alice", url=db_url)
    before = _snapshot(db_url)

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(queries, "activate_version", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        ingest_file(write("catalog2.csv", "product_id,title\nP9,Lamp\n"), IngestOptions("catalog"),
                    actor="alice", url=db_url)
    monkeypatch.undo()
    _assert_unchanged(before, _snapshot(db_url))


def test_a_dry_run_reports_and_stores_nothing(db_url, catalog_file):
    result = ingest_file(catalog_file, IngestOptions("catalog"), actor="alice", dry_run=True, url=db_url)
    assert result.version_ids == [] and result.reports[0].rows_out == 4
    assert _versions(db_url).empty


def test_an_upload_can_be_stored_without_activating_it(db_url, catalog_file, write):
    ingest_file(catalog_file, IngestOptions("catalog"), actor="alice", url=db_url)
    result = ingest_file(write("catalog2.csv", "product_id,title\nP9,Lamp\n"),
                         IngestOptions("catalog", activate=False), actor="alice", url=db_url)
    assert result.version_ids == [2]
    assert _active_id(db_url, "catalog") == 1


def test_activate_and_rollback_move_only_the_active_flag(db_url, catalog_file, write):
    for name, text in [("v1.csv", "product_id,title\nP1,Mug\n"), ("v2.csv", "product_id,title\nP2,Cup\n"),
                       ("v3.csv", "product_id,title\nP3,Pot\n")]:
        ingest_file(write(name, text), IngestOptions("catalog"), actor="alice", url=db_url)
    before = {k: v for k, v in _snapshot(db_url).items() if k != "versions"}

    with session_scope(db_url) as session:
        assert queries.rollback(session, "catalog", "bob").id == 2
    assert _active_id(db_url, "catalog") == 2
    with session_scope(db_url) as session:
        assert queries.rollback(session, "catalog", "bob").id == 1
    with session_scope(db_url) as session:
        with pytest.raises(LookupError, match="catalog v1 is the oldest version"):
            queries.rollback(session, "catalog", "bob")
    assert _active_id(db_url, "catalog") == 1

    with session_scope(db_url) as session:
        queries.activate_version(session, 3, "bob")
    assert _versions(db_url)["active"].tolist() == [True, False, False]
    with session_scope(db_url) as session:
        with pytest.raises(LookupError, match="no dataset version 99"):
            queries.activate_version(session, 99, "bob")
        with pytest.raises(LookupError, match="no events version is active"):
            queries.rollback(session, "events", "bob")
        audit = queries.audit_log(session)[["action", "target"]].head(4).values.tolist()
    assert audit == [["activate", "catalog v3"], ["rollback", "catalog v1"],
                     ["rollback", "catalog v2"], ["activate", "catalog v3"]]  # newest first
    _assert_unchanged(before, {k: v for k, v in _snapshot(db_url).items() if k != "versions"})


def test_rollback_of_one_kind_leaves_the_others_active(db_url, catalog_file, events_file, write):
    ingest_file(catalog_file, IngestOptions("catalog"), actor="alice", url=db_url)
    ingest_file(events_file, IngestOptions("events"), actor="alice", url=db_url)
    ingest_file(write("catalog2.csv", catalog_file.read_text()), IngestOptions("catalog"),
                actor="alice", url=db_url)
    with session_scope(db_url) as session:
        queries.rollback(session, "catalog", "bob")
    assert (_active_id(db_url, "catalog"), _active_id(db_url, "events")) == (1, 2)


def test_events_with_a_default_type_are_stored(db_url, catalog_file, write):
    ingest_file(catalog_file, IngestOptions("catalog"), actor="alice", url=db_url)
    path = write("orders.csv", "customer,sku,qty,order_date,order_id\nc1,P1,3,2024-02-01,O1\n")
    options = IngestOptions("events", cleaning=CleaningConfig(default_event_type="purchase"))
    result = ingest_file(path, options, actor="alice", url=db_url)
    with session_scope(db_url) as session:
        events = queries.events_frame(session, result.version_ids[0])
    assert events[["user_id", "product_id", "event_type", "value", "session_id"]].values.tolist() == [
        [pseudonym("c1"), "P1", "purchase", 3.0, "O1"]]


def test_a_catalog_says_what_it_replaces_and_a_merge_keeps_the_active_products(db_url, catalog_file,
                                                                               events_file, write):
    from recsys.data.ingest import catalog_change

    ingest_file(catalog_file, IngestOptions("catalog"), actor="test")
    ingest_file(events_file, IngestOptions("events", cleaning=CleaningConfig()), actor="test")
    small = write("small.csv", "product_id,title,price\nP1,Red mug XL,4.00\nQ9,Lamp,9.00\n")
    replaced = ingest_file(small, IngestOptions("catalog"), actor="test", dry_run=True)
    change = replaced.catalog_change
    assert (change.products_now, change.products_after, change.added, change.updated, change.removed) == (
        4, 2, 1, 1, 3)
    assert change.missing_for_events == 3 and change.missing_examples == ["P2", "P3", "P4"]
    assert "3 products that the active behaviour data refers to would have no title" in replaced.reports[0].notes[0]

    merged = ingest_file(small, IngestOptions("catalog", merge=True), actor="test")
    assert merged.catalog_change.products_after == 5 and merged.catalog_change.missing_for_events == 0
    with session_scope() as session:
        version = queries.active_version(session, "catalog")
        frame = queries.products_frame(session, version.id)
    assert version.row_count == 5
    assert frame.set_index("product_id").loc[["P1", "Q9", "P4"], "title"].tolist() == [
        "Red mug XL", "Lamp", "Garden chair"]
    assert catalog_change({"Q1"}, merge=False).missing_for_events == 4
