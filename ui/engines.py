"""The fitted engines behind the trial pages, cached per active data version and embedding
model, and the active presets.

Fitting is keyed by the active catalog and events versions and the active
embedding model of the registry (`recsys.training.registry`), whose folder the
semantic sources encode with, so uploading or activating data or a model refits
on the next page view; the fusion config (a preset, or the sliders of the
Fusion & rules page) is applied per request with `with_fusion`, which refits
nothing.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from db import queries
from db.engine import session_scope
from recsys.data.interactions import load_active
from recsys.evaluation.splits import SplitConfig, split_interactions
from recsys.fusion import FusionConfig
from recsys.fusion import presets as preset_store
from ui.data import active_versions, products

# The live offline metrics of recommendations hold out each user's latest product.
LIVE_SPLIT = SplitConfig(kind="temporal", n_last=1, seed=42)


def versions(url: str) -> dict[str, int]:
    """{kind: id} of the active data versions."""
    return {kind: info["id"] for kind, info in active_versions(url).items()}


def catalog(url: str) -> pd.DataFrame | None:
    """The active catalog (product_id, title, description, category, price, in_stock), or None."""
    catalog_version = versions(url).get("catalog")
    return None if catalog_version is None else products(url, catalog_version)


def embedding_model(url: str) -> tuple[int | None, str | None]:
    """(id, folder) of the active embedding model; (None, None): the shipped all-MiniLM-L6-v2.

    Not cached: it is part of the engines' cache keys, so an activation is seen at the next view.
    """
    from recsys.training import registry

    model = registry.active_model("embedding", url)
    if model is None:
        return None, None
    folder = registry.artifact_folder(model["artifact_path"])
    if not folder.is_dir():
        st.warning(f"The active embedding model v{model['version']} is missing its folder {folder}; "
                   "the shipped all-MiniLM-L6-v2 is used. Activate another model on the Fine-tune page.")
        return None, None
    return model["id"], str(folder)


def _semantic_model(model_path: str | None) -> dict:
    """The hybrid's params that make its semantic source encode with `model_path`."""
    return {} if model_path is None else {"source_configs": {"semantic": {"model_path": model_path}}}


def search_engine(url: str, catalog_version: int):
    """The hybrid retriever fitted on catalog version `catalog_version` with the active embedding model."""
    return _search_engine(url, catalog_version, *embedding_model(url))


def recommendation_engine(url: str, events_version: int, catalog_version: int):
    """The hybrid recommender fitted on all active events, with the active embedding model."""
    return _recommendation_engine(url, events_version, catalog_version, *embedding_model(url))


def recommendation_evaluation_engine(url: str, events_version: int, catalog_version: int):
    """(hybrid recommender fitted on the train part of `LIVE_SPLIT`, the held-out test part)."""
    return _recommendation_evaluation_engine(url, events_version, catalog_version, *embedding_model(url))


# `model_id` is in the cached functions' arguments only to key the cache; `model_path` follows it.

@st.cache_resource(show_spinner="Indexing the catalog (BM25 and embeddings)...", max_entries=2)
def _search_engine(url: str, catalog_version: int, model_id: int | None, model_path: str | None):
    from recsys.search import get

    return get("hybrid")(**_semantic_model(model_path)).fit(products(url, catalog_version))


@st.cache_resource(show_spinner="Fitting the recommenders (EASE and semantic)...", max_entries=2)
def _recommendation_engine(url: str, events_version: int, catalog_version: int, model_id: int | None,
                           model_path: str | None):
    from recsys.recommenders import get

    interactions, frame, _ = load_active(url)
    return get("hybrid")(**_semantic_model(model_path)).fit(interactions, frame)


@st.cache_resource(show_spinner="Fitting on the training split for the offline metrics...", max_entries=2)
def _recommendation_evaluation_engine(url: str, events_version: int, catalog_version: int,
                                      model_id: int | None, model_path: str | None):
    from recsys.recommenders import get

    interactions, frame, _ = load_active(url)
    train, test = split_interactions(interactions, LIVE_SPLIT)
    return get("hybrid")(**_semantic_model(model_path)).fit(train, frame), test


@st.cache_data(show_spinner=False, max_entries=4)
def judgments(url: str, judgments_version: int) -> pd.DataFrame:
    with session_scope(url) as session:
        return queries.judgments_frame(session, judgments_version)


def active_fusion(url: str, scope: str) -> tuple[preset_store.Preset | None, FusionConfig]:
    """The active preset of `scope` and its config (the shipped default when none is active)."""
    with session_scope(url) as session:
        preset = preset_store.active_preset(session, scope)
    return preset, preset.config if preset else preset_store.default_config(scope)


def preset_label(preset: preset_store.Preset | None) -> str:
    return preset.label if preset else "the shipped default (no preset stored)"


def recommendation_context(url: str, what: str):
    """(catalog index, fitted recommender, active preset, its config) for a page, or stop the page.

    Without active events and a catalog the page says what to upload (`what` names the page).
    """
    from ui.results import catalog_index

    active = versions(url)
    if "events" not in active or "catalog" not in active:
        st.info(f"{what} need behaviour data and a catalog: upload both on the Data page, "
                "then come back.")
        st.stop()
    engine = recommendation_engine(url, active["events"], active["catalog"])
    preset, fusion = active_fusion(url, "recommendations")
    return catalog_index(catalog(url)), engine, preset, fusion
