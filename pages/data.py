"""Data: overview charts, upload with mapping and report, versions, implicit weights."""

import streamlit as st

from recsys.services import database_url
from ui import charts, data
from ui.session import require
from ui.upload import upload_form
from ui.versions import versions_panel, weights_panel

who = require("view")
url = database_url()
st.title("Data")
overview_tab, upload_tab, versions_tab, weights_tab = st.tabs(
    ["Overview", "Upload", "Versions", "Implicit weights"])

with overview_tab:
    active = data.active_versions(url)
    events, catalog = active.get("events"), active.get("catalog")
    if catalog:
        st.metric("Products in the active catalog", f"{catalog['rows']:,}")
    if not events:
        st.info("No behaviour data is active yet.")
    else:
        frames = data.overview(url, events["id"], catalog["id"] if catalog else None)
        per_day, popularity, countries = frames["per_day"], frames["popularity"], frames["countries"]
        a, b, c, d = st.columns(4)
        a.metric("Events", f"{int(per_day['events'].sum()):,}")
        b.metric("Customers", f"{int(countries['users'].sum()):,}")
        c.metric("Products with events", f"{len(popularity):,}")
        d.metric("Days with events", f"{per_day['day'].nunique():,}")
        st.caption(f"Events from {per_day['day'].min():%Y-%m-%d} to {per_day['day'].max():%Y-%m-%d}")
        st.plotly_chart(charts.events_over_time(per_day), key="chart_events")
        left, right = st.columns(2)
        left.plotly_chart(charts.top_products(popularity), key="chart_top")
        right.plotly_chart(charts.long_tail(popularity), key="chart_tail")
        right.plotly_chart(charts.customers_by_country(countries), key="chart_countries")

with upload_tab:
    if who.can("upload"):
        upload_form(who, url)
    else:
        st.info("Your role can look at data; operators and admins upload it.")

with versions_tab:
    versions_panel(who, url)

with weights_tab:
    weights_panel(who, url)
