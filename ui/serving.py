"""The Serving page's panels: the REST service's status, a request console and the API keys.

The service's address is a setting of the server (``$WORKBENCH_SERVICE_URL``, by default the
one `make run` starts), not something a visitor types: the app only ever calls its own service.
The console calls it with a key of its own ("workbench console"), issued when the app first needs
it and kept in the app's memory only; an earlier console key is revoked then.
"""

from __future__ import annotations

import os
import time
import uuid

import httpx
import pandas as pd
import streamlit as st

from recsys.accounts import Identity
from recsys.serving.keys import issue_key, list_keys, revoke_key
from ui.text import md

DEFAULT_SERVICE_URL = "http://127.0.0.1:8000"
ISSUED_KEY = "serving_issued_key"
CONSOLE_KEY_NAME = "workbench console"
KEY_REFRESH_S = 1.0  # how soon the service knows a new key (KeyVerifier.MISS_REFRESH_S)


def service_url() -> str:
    return os.environ.get("WORKBENCH_SERVICE_URL", DEFAULT_SERVICE_URL).rstrip("/")


def health(base_url: str) -> dict | None:
    try:
        return httpx.get(f"{base_url}/health", timeout=1.0).json()
    except (httpx.HTTPError, ValueError):
        return None


def service_status(base_url: str) -> dict | None:
    """Whether the service answers /health at `base_url`, and what it serves; its health or None."""
    found = health(base_url)
    if found is None:
        st.warning(f"No service answers at {base_url}. `make run` starts it with the app; alone: "
                   "`python -m recsys serve --host 127.0.0.1 --port 8000`.")
        return None
    presets = ", ".join(f"{md(scope)} {md(preset.get('label'))}"
                        for scope, preset in found.get("presets", {}).items())
    st.success(f"The service at {base_url} is up: model {md(found.get('model_version'))}; presets {presets}.")
    if found.get("waiting_for"):
        st.info(f"A newer activation is served once {md(found['waiting_for'])} has ended.")
    st.caption(("It serves each new activation within seconds, without a restart. " if found.get("following")
                else "") + f"Interactive API documentation: [{base_url}/docs]({base_url}/docs); "
               f"Prometheus metrics: [{base_url}/metrics]({base_url}/metrics).")
    return found


@st.cache_resource(show_spinner=False)
def console_key(url: str) -> tuple[str, float]:
    """(the console's API key, when it was issued): one per app process; earlier ones revoked."""
    keys = list_keys(url)
    for row in keys[(keys["name"] == CONSOLE_KEY_NAME) & keys["revoked_at"].isna()].itertuples():
        revoke_key(int(row.id), actor="system", url=url)
    return issue_key(CONSOLE_KEY_NAME, actor="system", url=url).key, time.monotonic()


CONSOLE_ENDPOINTS = {"search": "Search", "recommend": "Recommend", "similar": "Similar items"}


def console(url: str, base_url: str) -> None:
    """Send a request to the running service and show its answer: what a shop's front end gets."""
    endpoint = st.radio("Endpoint", list(CONSOLE_ENDPOINTS), horizontal=True, key="console_endpoint",
                        format_func=CONSOLE_ENDPOINTS.get)
    left, right = st.columns([3, 1])
    if endpoint == "search":
        text = left.text_input("Query", key="console_query", placeholder="e.g. red heart")
        path, params = "/search", {"q": text}
    elif endpoint == "recommend":
        text = left.text_input("Customer id", key="console_user", placeholder="e.g. 12347")
        history = st.text_input("Session: product ids, comma-separated (optional)", key="console_history")
        path = f"/recommend/{text.strip()}"
        params = {"history": [p.strip() for p in history.split(",") if p.strip()]}
    else:
        text = left.text_input("Product id", key="console_product", placeholder="e.g. 85123A")
        path, params = f"/similar/{text.strip()}", {}
    params["k"] = int(right.number_input("k", 1, 100, 10, key="console_k"))
    explain = st.checkbox("With explanations", key="console_explain")
    if explain and endpoint != "similar":
        params["explain"] = "true"
    if st.button("Send", key="console_send", type="primary", disabled=not text.strip()):
        st.session_state[CONSOLE_ANSWER] = _send(url, "GET", f"{base_url}{path}", params=params)
    answered = st.session_state.get(CONSOLE_ANSWER)
    if answered is None:
        return
    status, body, caption = answered["status"], answered["body"], answered["caption"]
    st.caption(caption)
    if status is None:
        st.error(md(body))
        return
    if status != 200:
        st.error(md(body.get("detail", str(body)[:500])))
        return
    st.caption(f"Model {md(body.get('model_version'))} · preset {md(body.get('preset_version'))}"
               + (f" · searched for {md(repr(body['searched_query']))}" if body.get("searched_query")
                  else "")
               + (" · fallback: the most popular products" if body.get("fallback") else ""))
    items = body.get("items", [])
    if not items:
        st.info("No items.")
        return
    st.dataframe(pd.DataFrame([{"#": rank, "product": item["product_id"], "title": item["title"],
                                "score": round(item["score"], 4),
                                "sponsored": f"ad, campaign {item['campaign_id']}" if item.get("sponsored") else ""}
                               for rank, item in enumerate(items, 1)]),
                 hide_index=True, key="console_items")
    if answered["explain"]:
        st.json(items[0].get("explanation"), expanded=False)
    _click(url, base_url, body, items)


CONSOLE_ANSWER = "console_answer"


def _send(url: str, method: str, address: str, **request) -> dict:
    """Call the service with the console's key: {"status" (None: no answer), "body", "caption"}."""
    key, issued = console_key(url)
    wait = KEY_REFRESH_S + 0.5 - (time.monotonic() - issued)
    if wait > 0:  # a key just issued is known to the service within its refresh
        time.sleep(wait)
    try:
        answer = httpx.request(method, address, headers={"X-API-Key": key}, timeout=30, **request)
    except httpx.HTTPError as error:
        return {"status": None, "body": f"The service at {address} did not answer: {error}", "caption": "",
                "explain": False}
    body = answer.json() if answer.headers.get("content-type", "").startswith("application/json") else {}
    caption = (f"{method} {md(answer.request.url)} → {answer.status_code} in "
               f"{answer.elapsed.total_seconds() * 1000:.0f} ms; request id "
               f"{md(answer.headers.get('x-request-id', '-'))}")
    return {"status": answer.status_code, "body": body if body or answer.status_code < 400 else
            {"detail": answer.text[:500]}, "caption": caption,
            "explain": request.get("params", {}).get("explain") == "true"}


def _click(url: str, base_url: str, body: dict, items: list[dict]) -> None:
    """Send a click on one of the answer's items, as a shop's front end does (`POST /events` naming the
    request id and position): a click on a sponsored product is charged to its campaign."""
    labels = {rank: f"#{rank} {item['product_id']}" + (" (ad)" if item.get("sponsored") else "")
              for rank, item in enumerate(items, 1)}
    left, right = st.columns([3, 1])
    rank = left.selectbox("Click an item, as a shopper would", list(labels), format_func=labels.get,
                          key="console_click_item")
    if not right.button("Send click", key="console_click"):
        return
    event = {"type": "click", "product_id": items[rank - 1]["product_id"], "session": "workbench-console",
             "request_id": body["request_id"], "position": rank, "event_id": f"console-{uuid.uuid4().hex}"}
    sent = _send(url, "POST", f"{base_url}/events", json=[event])
    st.caption(sent["caption"])
    if sent["status"] != 202:
        st.error(md(sent["body"] if sent["status"] is None else sent["body"].get("detail", sent["body"])))
        return
    charges = sent["body"].get("ad_clicks", [])
    if not charges:
        st.success("Click recorded (an organic result: nothing charged).")
    for charge in charges:
        st.success(f"Click on an ad of campaign {charge['campaign_id']}: {md(charge['outcome'])}, "
                   f"{charge['charged']:.2f} charged.")


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
        st.success(f"Issued key {issued['id']} ({md(issued['name'])}). Copy it now with the button at "
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
            st.warning(md(error))
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
            st.success(f"Revoked {md(labels[chosen])}; the service refuses it within 5 seconds.")
            st.rerun()
