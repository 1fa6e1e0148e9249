"""Cached reads of the active shop data for the pages."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from recsys.services import datasets


def active_versions(url: str) -> dict[str, dict]:
    """{kind: {"id", "source", "rows", "created_at"}} of the active versions (not cached)."""
    return datasets.active_versions(url)


@st.cache_data(show_spinner=False, max_entries=16)
def overview(url: str, events_version: int, catalog_version: int | None) -> dict[str, pd.DataFrame]:
    return datasets.overview(url, events_version, catalog_version)


@st.cache_data(show_spinner=False, max_entries=16)
def products(url: str, catalog_version: int) -> pd.DataFrame:
    return datasets.products(url, catalog_version)


def versions(url: str) -> pd.DataFrame:
    return datasets.list_versions(url)
