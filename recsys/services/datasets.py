"""Dataset versions and what is read of them: the active ones, every version, activation and
roll-back, the catalog, judgments and the behaviour overview, the implicit-feedback weights."""

from __future__ import annotations

import pandas as pd

from db import queries
from db.engine import session_scope
from db.models import DatasetVersion
from recsys.data.interactions import SETTING_KEY, ImplicitWeights
from recsys.data.report import IngestReport


def active_versions(url: str) -> dict[str, dict]:
    """{kind: {"id", "source", "rows", "created_at"}} of the active versions."""
    versions = list_versions(url)
    active = versions[versions["active"]]
    return {row.kind: {"id": int(row.version), "source": row.source, "rows": int(row.rows),
                       "created_at": row.created_at} for row in active.itertuples()}


def list_versions(url: str) -> pd.DataFrame:
    """Every version, newest first: version, kind, source, rows, active, created_by, created_at, activated_at."""
    with session_scope(url) as session:
        return queries.list_versions(session)


def activate(url: str, version_id: int, actor: str) -> tuple[str, int]:
    """Activate dataset version `version_id`; (its kind, its id). LookupError when there is none."""
    with session_scope(url) as session:
        version = queries.activate_version(session, version_id, actor)
        return version.kind, version.id


def roll_back(url: str, kind: str, actor: str) -> tuple[str, int]:
    """Activate the version of `kind` before the active one; (kind, id). LookupError when there is none."""
    with session_scope(url) as session:
        version = queries.rollback(session, kind, actor)
        return version.kind, version.id


def report(url: str, version_id: int) -> IngestReport:
    """The ingest report stored with version `version_id`."""
    with session_scope(url) as session:
        stored = session.get(DatasetVersion, version_id)
        if stored is None:
            raise LookupError(f"there is no dataset version {version_id}")
        return IngestReport.from_dict(stored.report)


def products(url: str, catalog_version: int) -> pd.DataFrame:
    with session_scope(url) as session:
        return queries.products_frame(session, catalog_version)


def judgments(url: str, judgments_version: int) -> pd.DataFrame:
    with session_scope(url) as session:
        return queries.judgments_frame(session, judgments_version)


def overview(url: str, events_version: int, catalog_version: int | None) -> dict[str, pd.DataFrame]:
    """The Data page's charts: events per day and type, popularity per product, customers per country."""
    with session_scope(url) as session:
        return {"per_day": queries.events_per_day(session, events_version),
                "popularity": queries.product_popularity(session, events_version, catalog_version),
                "countries": queries.users_by_country(session, events_version)}


def implicit_weights(url: str) -> ImplicitWeights:
    with session_scope(url) as session:
        return ImplicitWeights.from_dict(queries.get_setting(session, SETTING_KEY))


def set_implicit_weights(url: str, weights: ImplicitWeights, actor: str) -> None:
    with session_scope(url) as session:
        queries.set_setting(session, SETTING_KEY, weights.to_dict(), actor)
