"""Dataset versions with activate and roll back, and the implicit-feedback weights."""

from __future__ import annotations

import streamlit as st

from recsys.accounts import Identity
from recsys.data.interactions import ImplicitWeights
from recsys.services import datasets
from ui import data
from ui.engines import refit
from ui.text import md
from ui.upload import render_report


FLASH = "versions_flash"


def versions_panel(who: Identity, url: str) -> None:
    message = st.session_state.pop(FLASH, None)
    if message:  # of the activation or roll-back that caused this rerun
        st.success(message)
    versions = data.versions(url)
    if versions.empty:
        st.info("No data yet: upload a catalog first.")
        return
    st.dataframe(versions, hide_index=True, width="stretch", key="versions_table")
    if not who.can("activate"):
        st.caption("Your role can look at versions; operators and admins activate them.")
        return
    left, right = st.columns(2)
    with left.form("activate_form"):
        chosen = st.selectbox("Version", versions["version"].tolist(), key="activate_version",
                              format_func=lambda v: _label(versions, v))
        if st.form_submit_button("Activate"):
            kind, version_id = datasets.activate(url, int(chosen), who.username)
            st.session_state[FLASH] = f"{kind} v{version_id} is active." + refit(url, who.username)
            st.rerun()
    with right.form("rollback_form"):
        kind = st.selectbox("Kind", sorted(versions["kind"].unique()), key="rollback_kind")
        if st.form_submit_button("Roll back to the previous version"):
            try:
                kind, version_id = datasets.roll_back(url, kind, who.username)
                st.session_state[FLASH] = f"Rolled back: {kind} v{version_id} is active." + refit(url, who.username)
                st.rerun()
            except LookupError as error:
                st.warning(md(error))
    shown = st.selectbox("Show the ingest report of version", versions["version"].tolist(),
                         key="report_version", format_func=lambda v: _label(versions, v))
    render_report(datasets.report(url, int(shown)))


def _label(versions, version_id) -> str:
    row = versions[versions["version"] == version_id].iloc[0]
    return f"v{version_id} {row.kind} from {row.source} ({row.rows:,} rows){' - active' if row.active else ''}"


def weights_panel(who: Identity, url: str) -> None:
    weights = datasets.implicit_weights(url)
    st.caption("How much each kind of event counts when behaviour becomes implicit feedback; "
               "a rating counts its value times the rating weight.")
    with st.form("weights_form"):
        columns = st.columns(5)
        values = {name: columns[i].number_input(name, min_value=0.0, value=float(value), step=0.5,
                                                key=f"weight_{name}",
                                                disabled=not who.can("settings"))
                  for i, (name, value) in enumerate(weights.to_dict().items())}
        if st.form_submit_button("Save weights", disabled=not who.can("settings")):
            new = ImplicitWeights.from_dict(values)
            datasets.set_implicit_weights(url, new, who.username)
            st.success("Saved." + refit(url, who.username))
