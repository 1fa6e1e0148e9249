"""Serving: the REST service's status and its API keys (issued and revoked with "settings")."""

import streamlit as st

from recsys.services import database_url
from ui.serving import console, issue_form, keys_table, revoke_form, service_status, service_url
from ui.session import require

who = require("view")
url = database_url()
st.title("Serving")
st.caption("The REST service answers /search, /recommend/{user_id} and /similar/{product_id} for "
           "clients holding an API key, from the active catalog, events and presets; `make run` starts "
           "it beside the app, and it serves what is activated here without a restart.")

st.subheader("Status")
base_url = service_url()
up = service_status(base_url)

st.subheader("Request console")
st.caption("A request to the running service, as a shop's front end sends it; it is recorded like any "
           "other, so Monitoring shows it.")
if up is None:
    st.caption("The console needs the service.")
elif who.can("merchandise") or who.can("settings"):
    console(url, base_url)
else:
    st.caption("Merchandisers, operators and admins send requests here.")

st.subheader("API keys")
keys_table(url)
if who.can("settings"):
    left, right = st.columns(2)
    with left:
        issue_form(who, url)
    with right:
        revoke_form(who, url)
else:
    st.caption("Your role can see the keys; operators and admins issue and revoke them.")
