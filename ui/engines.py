"""The fitted engines behind the trial pages, loaded from disk, and the active presets.

Engines are fitted in the background when data, weights, a model or a preset is activated
(`recsys.engines`); a page only loads the fitted folder of the active state (about a second,
cached per folder), so uploading or activating something is seen at the next view. Should a
page come first, it starts the fit job itself, shows its progress and fills in when it ends.
The fusion config (a preset, or the sliders of the Fusion & rules page) is applied per
request with `with_fusion` or `fuse_candidates`, which refits nothing.
"""

from __future__ import annotations

import gc

import pandas as pd
import streamlit as st

from recsys import active as active_state
from recsys import engines as store
from recsys.active import ServedPreset
from recsys.ads.serving import AdServer
from recsys.fusion import FusionConfig
from recsys.services import datasets
from ui.data import active_versions, products
from ui.session import identity
from ui.text import md


def versions(url: str) -> dict[str, int]:
    """{kind: id} of the active data versions."""
    return {kind: info["id"] for kind, info in active_versions(url).items()}


def catalog(url: str) -> pd.DataFrame | None:
    """The active catalog (product_id, title, description, category, price, in_stock), or None."""
    catalog_version = versions(url).get("catalog")
    return None if catalog_version is None else products(url, catalog_version)


@st.cache_resource(show_spinner="Loading the fitted engines...", max_entries=6)
def _load(key: str, _spec: store.EngineSpec):
    engine = store.load(_spec)
    # The engines' millions of objects live as long as the server: kept out of Python's full
    # garbage collections, which otherwise walked them every few clicks (0.5 s a time).
    gc.freeze()
    return engine


def spec(url: str, kind: str) -> store.EngineSpec | None:
    """The active spec of engine `kind` ("search", "recommendations", "recommendations_heldout")."""
    return store.active_specs(url).get(kind)


def fitted(url: str, kind: str):
    """The fitted engine `kind` of the active state, or stop the page while it is being fitted.

    None when the data it needs is not active. A missing engine starts the fit job (unless
    the last one failed: then its error is shown with a button to try again).
    """
    found = keyed(url, kind)
    return None if found is None else found[1]


def keyed(url: str, kind: str):
    """(the engine's folder name, `fitted`'s engine): the name keys caches of what is computed from it."""
    state = active_state.read(url)
    wanted = store.specs_of(state).get(kind)
    if wanted is None:
        return None
    if state.embedding.problem:
        st.warning(f"{md(state.embedding.problem.capitalize())}. Activate another model on the Fine-tune "
                   "page.")
    if store.is_fitted(wanted):
        return wanted.key, _load(wanted.key, wanted)
    who = identity()
    actor = who.username if who else "system"
    last = next(iter(store.list_jobs(store.JOB_KIND, url=url, limit=1)), None)
    if last is not None and last.status == "failed":
        st.error(f"Fitting the engines failed (job {last.id}): {md(last.message)}")
        if st.button("Fit the engines again", key=f"refit_{kind}"):
            store.request_fit(url, actor)
            st.rerun()
        st.stop()
    job_id = store.request_fit(url, actor)
    if job_id is None:  # fitted meanwhile
        st.rerun()
    st.info(f"The {wanted.describe()} engine is being fitted in the background (job {job_id}); "
            "this page fills in when it is done, or come back later.", icon=":material/hourglass_top:")
    fit_progress(url)
    st.stop()


@st.fragment(run_every=2)
def fit_progress(url: str) -> None:
    """The fit job's progress bar; reruns the whole page once no fit job is running."""
    job = store.running_fit(url)
    if job is None:
        st.rerun(scope="app")
    st.progress(job.progress, text=md(job.message) if job.message else "waiting for the worker to start")


def refit(url: str, actor: str) -> str:
    """After an activation: start fitting the engines of the new active state in the background.

    Returns a sentence saying so for the page's message ("" when nothing needs fitting).
    """
    if not store.fit_on_activate():
        return ""
    job_id = store.request_fit(url, actor)
    return "" if job_id is None else (f" The search and recommendation engines are being fitted for it in "
                                      f"the background (job {job_id}).")


def search_engine(url: str):
    """The hybrid retriever of the active catalog and embedding model (None without a catalog)."""
    return fitted(url, "search")


def recommendation_engine(url: str):
    """The hybrid recommender fitted on all active events (None without events and a catalog)."""
    return fitted(url, "recommendations")


def recommendation_evaluation_engine(url: str) -> store.HeldOut | None:
    """The hybrid recommender fitted on the train part of the held-out split, with the test part."""
    return fitted(url, "recommendations_heldout")


@st.cache_data(show_spinner=False, max_entries=4)
def judgments(url: str, judgments_version: int) -> pd.DataFrame:
    return datasets.judgments(url, judgments_version)


def active_fusion(url: str, scope: str) -> tuple[ServedPreset, FusionConfig]:
    """The preset `scope` is served with (the shipped default when none is stored) and its config
    as stored (a preset may rerank with whichever reranker is active: `ACTIVE_RERANKER`)."""
    served = active_state.read(url).presets[scope]
    return served, served.saved


def as_served(url: str, config: FusionConfig) -> FusionConfig:
    """An edited `config` as the active state would serve it (`recsys.active.Active.resolve`)."""
    return active_state.read(url).resolve(config)


def preset_label(preset: ServedPreset) -> str:
    """The served preset in words, as Markdown (its name is the merchandiser's: escaped)."""
    return "the shipped default (no preset stored)" if preset.version is None else md(preset.label)


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
    engine = recommendation_engine(url)
    preset, fusion = active_fusion(url, "recommendations")
    return catalog_index(catalog(url)), engine, preset, fusion


@st.cache_resource(show_spinner=False)
def ad_server(url: str) -> AdServer:
    """The pages' ad server, for previews of the sponsored slots (campaigns read again every few
    seconds, so a campaign created or paused shows at the next search)."""
    return AdServer(url)
