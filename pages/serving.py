"""Serving: the REST service's status and its API keys (issued and revoked with "settings")."""

import streamlit as st

from db.engine import database_url
from ui.serving import DEFAULT_SERVICE_URL, issue_form, keys_table, revoke_form, service_status
from ui.session import require

who = require("view")
url = database_url()
st.title("Serving")
st.caption("The REST service answers /search, /recommend/{user_id} and /similar/{product_id} for "
           "clients holding an API key, from the active catalog, events and presets. Start it with "
           "`python -m recsys serve --host 127.0.0.1 --port 8000` (or `make serve`); it loads the "
           "data once, so restart it after activating a new version or preset.")

st.subheader("Status")
base_url = st.text_input("Service URL", DEFAULT_SERVICE_URL, key="service_url")
service_status(base_url)

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
