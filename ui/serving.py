"""The Serving page's panels: the REST service's status and its API keys."""

from __future__ import annotations

import httpx
import streamlit as st

from recsys.accounts import Identity
from recsys.serving.keys import issue_key, list_keys, revoke_key

DEFAULT_SERVICE_URL = "http://127.0.0.1:8000"
ISSUED_KEY = "serving_issued_key"


def service_status(base_url: str) -> None:
    """Whether the service answers /health at `base_url`, and what it serves."""
    base_url = base_url.rstrip("/")
    try:
        health = httpx.get(f"{base_url}/health", timeout=1.0).json()
    except (httpx.HTTPError, ValueError):
        st.warning(f"No service answers at {base_url}. Start it with "
                   "`python -m recsys serve --host 127.0.0.1 --port 8000` (or `make serve`).")
        return
    st.success(f"The service at {base_url} is up: model {health.get('model_version')}, presets "
               + ", ".join(f"{scope} {preset.get('label')}" for scope, preset in health.get("presets", {}).items()))
    st.markdown(f"Interactive API documentation: [{base_url}/docs]({base_url}/docs); "
                f"Prometheus metrics: [{base_url}/metrics]({base_url}/metrics).")


def keys_table(url: str) -> None:
    keys = list_keys(url)
    if keys.empty:
        st.info("No API key yet.")
        return
    shown = keys.assign(status=keys["revoked_at"].map(lambda at: "active" if at is None else "revoked"))
    st.dataframe(shown[["id", "name", "prefix", "status", "created_by", "created_at", "revoked_at"]],
                 hide_index=True, width="stretch", key="api_keys_table")


def issue_form(who: Identity, url: str) -> None:
    issued = st.session_state.pop(ISSUED_KEY, None)  # popped: shown on one run only
    if issued:
        st.success(f"Issued key {issued['id']} ({issued['name']}). Copy it now with the button at "
                   "the right of the box: it is shown only this once and only its hash is kept.")
        st.code(issued["key"], language=None)
    with st.form("issue_key_form", clear_on_submit=True):
        name = st.text_input("Name", key="issue_key_name",
                             placeholder="who or what will use the key, e.g. shop-frontend")
        submitted = st.form_submit_button("Issue a key")
    if submitted:
        try:
            key = issue_key(name, actor=who.username, url=url)
        except ValueError as error:
            st.warning(str(error))
            return
        st.session_state[ISSUED_KEY] = {"id": key.id, "name": key.name, "key": key.key}
        st.rerun()


def revoke_form(who: Identity, url: str) -> None:
    keys = list_keys(url)
    active = keys[keys["revoked_at"].isna()]
    if active.empty:
        return
    labels = {int(row.id): f"{row.id}: {row.name} ({row.prefix}...)" for row in active.itertuples()}
    with st.form("revoke_key_form"):
        chosen = st.selectbox("Key", list(labels), format_func=labels.get, key="revoke_key_id")
        if st.form_submit_button("Revoke"):
            revoke_key(int(chosen), actor=who.username, url=url)
            st.success(f"Revoked {labels[chosen]}; the service refuses it within 5 seconds.")
            st.rerun()
