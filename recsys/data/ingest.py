"""Uploads in, dataset versions out.

`prepare` is pure: it maps, validates and cleans a frame of one kind and says
what it did. `ingest_file` reads the file, prepares it, and stores the result
as a new dataset version in one transaction: an upload that fails stores
nothing and leaves the active version as it was.

>>> options = IngestOptions(kind="catalog", mapping={"StockCode": "product_id", "Description": "title"})
>>> result = ingest_file("catalog.csv", options, actor="alice")  # doctest: +SKIP
>>> result.reports[0].rows_out  # doctest: +SKIP
3
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pandas as pd

from db import queries
from db.engine import database_url, session_scope
from db.models import utc_now
from recsys.data.clean import (
    CleaningConfig,
    clean_catalog,
    clean_events,
    clean_judgments,
    clean_search_log,
)
from recsys.data.readers import read_table
from recsys.data.report import IngestError, IngestReport, Problem
from recsys.data.schema import KINDS, guess_mapping
from recsys.data.validate import ROW, validate
from recsys.privacy.protect import mask_columns, protect_record, protect_value, pseudonymise_columns
from recsys.privacy.pseudonyms import pseudonymiser

logger = logging.getLogger(__name__)


@dataclass
class IngestOptions:
    """What to ingest and how; the mapping is ``{source column: canonical column}``.

    An empty mapping is guessed from the column names.
    """

    kind: str
    mapping: dict[str, str] = field(default_factory=dict)
    fmt: str | None = None
    encoding: str | None = None
    sep: str | None = None
    skip_invalid_rows: bool = False
    activate: bool = True
    cleaning: CleaningConfig = field(default_factory=CleaningConfig)
    # Catalogs: add the file's products to the active catalog and update the ones it has,
    # instead of replacing it (the new version holds both).
    merge: bool = False


@dataclass
class CatalogChange:
    """What a new catalog version does to the active one, said before it is stored."""

    products_now: int  # in the active catalog (0: there is none)
    products_after: int
    added: int
    updated: int
    removed: int
    missing_for_events: int  # products the active events refer to that the new version lacks
    missing_examples: list[str] = field(default_factory=list)
    merge: bool = False

    def describe(self) -> str:
        """E.g. "The active catalog has 3,812 products; replaced, it will have 5 (5 new, 3,812 gone)..."."""
        if not self.products_now:
            return f"There is no active catalog yet; this one will have {self.products_after:,} products."
        how = "merged into it" if self.merge else "replaced by this file"
        text = (f"The active catalog has {self.products_now:,} products; {how}, it will have "
                f"{self.products_after:,} ({self.added:,} new, {self.updated:,} updated, {self.removed:,} gone).")
        if self.missing_for_events:
            examples = ", ".join(self.missing_examples)
            text += (f" {self.missing_for_events:,} products that the active behaviour data refers to would "
                     f"have no title, category or price (e.g. {examples}); recommendations would show their "
                     "bare ids.")
        return text


def catalog_change(product_ids: set[str], merge: bool, url: str | None = None) -> CatalogChange:
    """What storing a catalog of `product_ids` (replacing or merging) would change."""
    with session_scope(url) as session:
        catalog = queries.active_version(session, "catalog")
        events = queries.active_version(session, "events")
        now = queries.product_ids(session, catalog.id) if catalog else set()
        referenced = queries.event_product_ids(session, events.id) if events else set()
    after = now | product_ids if merge else set(product_ids)
    missing = sorted(referenced - after)
    return CatalogChange(len(now), len(after), len(product_ids - now), len(product_ids & now),
                         len(now - after), len(missing), missing[:5], merge)


def merged_catalog(frame: pd.DataFrame, url: str | None = None) -> pd.DataFrame:
    """`frame` (a cleaned catalog) with the active catalog's products that it does not have."""
    with session_scope(url) as session:
        catalog = queries.active_version(session, "catalog")
        active = queries.products_frame(session, catalog.id) if catalog else frame.iloc[0:0]
    kept = active[~active["product_id"].astype(str).isin(set(frame["product_id"].astype(str)))]
    return pd.concat([frame, kept[[c for c in frame.columns if c in kept.columns]]], ignore_index=True)


@dataclass
class Prepared:
    """A cleaned frame ready to store, with its report."""

    kind: str
    frame: pd.DataFrame
    report: IngestReport
    mapping: dict[str, str]
    users: pd.DataFrame | None = None


@dataclass
class IngestResult:
    reports: list[IngestReport]
    version_ids: list[int]
    catalog_change: CatalogChange | None = None

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.reports)


def prepare(
    frame: pd.DataFrame,
    options: IngestOptions,
    *,
    file: str,
    fmt: str = "csv",
    known_products: set[str] | None = None,
) -> Prepared:
    """Map, validate and clean `frame`; raises IngestError when it cannot be stored."""
    if options.kind not in KINDS:
        report = IngestReport(file=file, kind=options.kind)
        report.add_problem(Problem(file, f"unknown kind {options.kind!r}; use one of {sorted(KINDS)}"))
        raise IngestError(report)
    mapping = options.mapping or guess_mapping(list(frame.columns), options.kind)
    report = IngestReport(file=file, kind=options.kind, rows_in=len(frame))
    config = options.cleaning
    if options.kind == "events" and "event_type" not in mapping.values() and not config.default_event_type:
        report.add_problem(Problem(
            file, "no column is mapped to 'event_type'; map one, or choose a default event "
                  "type (view, click, cart, purchase or rating) for the whole file",
            column="event_type"))
    if options.kind in ("events", "search_log", "judgments") and known_products is None:
        report.add_problem(Problem(
            file, f"there is no active catalog to check {options.kind} against; "
                  "upload a catalog first"))
    typed = validate(frame, options.kind, mapping, file=file, fmt=fmt, report=report,
                     skip_invalid_rows=options.skip_invalid_rows)
    if not report.ok:
        raise IngestError(report)
    # Typed text is masked before cleaning and customer ids pseudonymised after it, so that
    # nothing stored (rows, cleaning examples, quoted values of skipped rows) holds them as they came.
    typed = mask_columns(typed, options.kind, report.privacy)

    users = None
    if options.kind == "catalog":
        cleaned, rules = clean_catalog(typed, config)
    elif options.kind == "events":
        cleaned, users, rules = clean_events(typed, config, known_products)
    elif options.kind == "judgments":
        cleaned, rules = clean_judgments(typed, config, known_products)
    else:
        cleaned, rules = clean_search_log(typed, config, known_products)
    pseudonymise = pseudonymiser() if options.kind in ("events", "search_log") else None
    cleaned = pseudonymise_columns(cleaned, options.kind, report.privacy, pseudonymise)
    if users is not None:
        users = users.assign(user_id=pseudonymise.series(users["user_id"]))
    for rule in rules:
        rule.examples = [protect_record(example, options.kind, pseudonymise) for example in rule.examples]
    for problem in report.problems:
        problem.value = protect_value(problem.column, problem.value, options.kind, pseudonymise)
    report.cleaning.extend(rules)
    report.rows_out = len(cleaned)
    if cleaned.empty:
        report.add_problem(Problem(file, "no rows are left after cleaning; see the cleaning "
                                         "report for what removed them"))
        raise IngestError(report)
    return Prepared(options.kind, cleaned.drop(columns=[ROW]), report, mapping, users)


TRANSACTION_ENV = "WORKBENCH_INGEST_TRANSACTION_S"
CHUNK_ROWS = 10_000  # rows per INSERT of a staged store
YIELD_S = 0.15  # the pause after each bounded transaction: longer than SQLite's longest busy wait


def transaction_bound(url: str | None = None) -> float | None:
    """Seconds a staged store writes before it commits and lets other writers in; None for one
    transaction. `$WORKBENCH_INGEST_TRANSACTION_S` (0: one transaction); by default 1 s on SQLite,
    whose writers wait for one another (up to a 30 s busy timeout), and one transaction on
    PostgreSQL, whose writers do not."""
    raw = os.environ.get(TRANSACTION_ENV, "").strip()
    if raw:
        try:
            seconds = float(raw)
        except ValueError:
            raise ValueError(f"{TRANSACTION_ENV} is a number of seconds (0 for one transaction), "
                             f"not {raw!r}") from None
        return seconds if seconds > 0 else None
    return 1.0 if (url or database_url()).startswith("sqlite") else None


def store(prepared: list[Prepared], *, source: str, actor: str, activate: bool = True,
          url: str | None = None) -> list[int]:
    """Store prepared frames as new versions; all or nothing.

    Events, search logs and judgments are linked to the catalog stored with them,
    or else to the catalog that is active. On SQLite the rows go in bounded transactions
    (`transaction_bound`) while the versions are "storing", invisible to every query; one short
    transaction then makes them ready (and active). A store that fails removes what it wrote.
    """
    bound = transaction_bound(url)
    ids = []
    with session_scope(url) as session:
        if bound is not None:  # versions an earlier store left behind when it was killed
            queries.remove_unfinished_versions(session, utc_now() - timedelta(hours=1))
        catalog = queries.active_version(session, "catalog")
        catalog_id = catalog.id if catalog else None
        for item in prepared:
            link = None if item.kind == "catalog" else catalog_id
            if bound is None:
                version = queries.store_version(
                    session, kind=item.kind, frame=item.frame, source=source, actor=actor,
                    report=item.report.to_dict(), mapping=item.mapping, users=item.users,
                    catalog_version_id=link, activate=activate)
            else:
                version = queries.begin_version(
                    session, kind=item.kind, rows=len(item.frame), source=source, actor=actor,
                    report=item.report.to_dict(), mapping=item.mapping, catalog_version_id=link)
            if item.kind == "catalog":
                catalog_id = version.id
            ids.append(version.id)
    if bound is None:
        return ids
    try:
        chunks = (chunk for item, version_id in zip(prepared, ids)
                  for chunk in queries.version_chunks(item.kind, item.frame, item.users, version_id,
                                                      CHUNK_ROWS))
        _write_bounded(chunks, bound, url)
        with session_scope(url) as session:
            for version_id in ids:
                queries.finish_version(session, version_id, actor, activate)
    except BaseException:
        try:
            with session_scope(url) as session:
                for version_id in ids:
                    queries.delete_version(session, version_id)
        except Exception:  # the database is gone: the next store removes them (`remove_unfinished`)
            logger.exception("could not remove the versions of a failed store %s", ids)
        raise
    return ids


def _write_bounded(chunks, bound: float, url: str | None) -> None:
    """Insert the chunks, committing once `bound` seconds have been spent writing and then pausing
    (`YIELD_S`), so that another writer waits about `bound` seconds at most."""
    chunk = next(chunks, None)
    while chunk is not None:
        started = time.monotonic()
        with session_scope(url) as session:
            while chunk is not None and time.monotonic() - started < bound:
                queries.insert_rows(session, *chunk)
                chunk = next(chunks, None)
        if chunk is not None:
            time.sleep(YIELD_S)


def active_product_ids(url: str | None = None) -> set[str] | None:
    with session_scope(url) as session:
        catalog = queries.active_version(session, "catalog")
        return queries.product_ids(session, catalog.id) if catalog else None


def ingest_file(
    source: str | Path | bytes,
    options: IngestOptions,
    *,
    actor: str,
    filename: str | None = None,
    dry_run: bool = False,
    url: str | None = None,
) -> IngestResult:
    """Read, validate, clean and store one uploaded file as a new dataset version.

    Raises IngestError, with the report, when the file cannot be stored; then
    nothing in the database has changed. With `dry_run` nothing is stored and
    the result carries the report only.
    """
    filename = filename or (Path(source).name if isinstance(source, (str, Path)) else "upload")
    frame, fmt = read_table(source, filename, fmt=options.fmt, encoding=options.encoding,
                            sep=options.sep)
    known = None if options.kind == "catalog" else active_product_ids(url)
    prepared = prepare(frame, options, file=filename, fmt=fmt, known_products=known)
    change = None
    if options.kind == "catalog":
        change = catalog_change(set(prepared.frame["product_id"].astype(str)), options.merge, url)
        prepared.report.notes.append(change.describe())
        if options.merge:
            prepared.frame = merged_catalog(prepared.frame, url)
    if dry_run:
        return IngestResult([prepared.report], [], change)
    ids = store([prepared], source=filename, actor=actor, activate=options.activate, url=url)
    return IngestResult([prepared.report], ids, change)
