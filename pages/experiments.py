"""Experiments: interleaving and A/B tests of two search presets on the shop's live traffic."""

import streamlit as st

from recsys.services import database_url
from ui import experiments
from ui.session import require

who = require("evaluate")
url = database_url()
st.title("Experiments")
st.caption("A shop takes part through the REST service: it sends each search with the shopper's session, "
           "`GET /search?q=...&session=S`, and the clicks and purchases that follow with the answer's "
           "`request_id` and the item's position, `POST /events`; its /docs page describes both. The running "
           "experiment decides which results each session gets.")
experiments.flash()
table = experiments.experiments_table(url)
if table.empty:
    st.info("No experiment yet. Start one below: pick the active search preset as the control and a preset "
            "saved on the Fusion & rules page as the treatment, then let the shop's traffic decide.")
else:
    st.subheader("Report")
    experiments.report(url, who, experiments.choose(table))
st.subheader("New experiment")
experiments.create_form(url, who)
st.subheader("Live events")
experiments.feed_search_log(url, who)
