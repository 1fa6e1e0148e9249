"""Cached reads of the active shop data for the pages."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from db import queries
from db.engine import session_scope


def active_versions(url: str) -> dict[str, dict]:
    """{kind: {"id", "source", "rows", "created_at"}} of the active versions (not cached)."""
    with session_scope(url) as session:
        versions = queries.list_versions(session)
    active = versions[versions["active"]]
    return {row.kind: {"id": int(row.version), "source": row.source, "rows": int(row.rows),
                       "created_at": row.created_at} for row in active.itertuples()}


@st.cache_data(show_spinner=False, max_entries=16)
def overview(url: str, events_version: int, catalog_version: int | None) -> dict[str, pd.DataFrame]:
    with session_scope(url) as session:
        return {
            "per_day": queries.events_per_day(session, events_version),
            "popularity": queries.product_popularity(session, events_version, catalog_version),
            "countries": queries.users_by_country(session, events_version),
        }


@st.cache_data(show_spinner=False, max_entries=16)
def products(url: str, catalog_version: int) -> pd.DataFrame:
    with session_scope(url) as session:
        return queries.products_frame(session, catalog_version)


def versions(url: str) -> pd.DataFrame:
    with session_scope(url) as session:
        return queries.list_versions(session)
