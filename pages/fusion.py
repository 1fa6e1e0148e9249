"""Fusion & rules: tune fusion weights and business rules live against the active preset; keep presets."""

import streamlit as st

from recsys.services import database_url
from ui import engines, fusion
from ui.results import catalog_index
from ui.session import require

who = require("view")
url = database_url()
st.title("Fusion & rules")
st.caption("Move the weights and rules: the lists and the offline metrics on held-out data follow, "
           "compared with the preset being served. Save the result as a named preset and activate it.")
fusion.flash()
scope = fusion.scope_switch()
versions = engines.versions(url)
engine_key, engine = fusion.preview_engine(url, scope, versions)
catalog = engines.catalog(url)
active, active_config = engines.active_fusion(url, scope)
allowed = who.can("merchandise")
if not allowed:
    st.info(f"Your role ({who.role}) sees this page read-only: changing weights, rules and presets "
            "needs the merchandiser or admin role.")
found = fusion.sample_for(url, scope, versions)

controls, results = st.columns([1, 2], gap="large")
with controls:
    reranker = fusion.available_reranker(url) if scope == "search" else None
    working = fusion.editor(scope, fusion.sources_of(engine), active_config, catalog, disabled=not allowed,
                            reranker=reranker)
with results:
    # Fused as served: a preset reranking with the active reranker reads that reranker's folder.
    served_working = engines.as_served(url, working)
    fusion.metrics_panel(url, scope, versions, found, active.config, served_working)
    first_query = found[0].keys[0] if scope == "search" and isinstance(found, tuple) else None
    fusion.preview(url, scope, versions, engine_key, engine, engines.preset_label(active), active.config,
                   served_working, catalog, catalog_index(catalog), default_query=first_query)
fusion.presets_panel(url, scope, who.username, allowed, working, active)
