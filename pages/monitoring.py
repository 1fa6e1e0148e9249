"""Monitoring: latency, stages, QPS, error and empty rates of the REST service, and its alerts."""

import streamlit as st

from recsys.services import database_url
from ui.monitoring import alert_list, charts, load_filtered, range_picker, resolve_range, rule_editor
from ui.session import require

who = require("view")
url = database_url()
st.title("Monitoring")
st.caption("Every request to the REST and gRPC services is recorded with its latency per stage and the "
           "replica that answered it; alert rules are evaluated on a schedule by the service. Times are UTC.")

left, middle, right = st.columns([2, 1, 1], vertical_alignment="bottom")
with left:
    choice, custom = range_picker()
auto = middle.toggle("Auto-refresh", value=True, key="mon_auto")
every_s = right.selectbox("Every", [2, 5, 10, 30, 60], index=1, key="mon_every",
                          format_func=lambda s: f"{s} s", disabled=not auto)


@st.fragment(run_every=every_s if auto else None)
def live() -> None:
    start, end = resolve_range(choice, custom)
    if start >= end:
        st.warning("The range ends before it starts: choose a later end.")
        return
    charts(load_filtered(url, start, end), start, end)
    st.subheader("Alerts")
    alert_list(url)


live()
st.subheader("Alert rules")
rule_editor(who, url)
