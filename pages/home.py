"""Overview of the active shop data."""

import streamlit as st

from recsys.services import database_url
from ui import data
from ui.session import require
from ui.text import md

who = require("view")
url = database_url()
st.title("Workbench")
st.write(f"Logged in as **{md(who.username)}** ({who.role}).")
active = data.active_versions(url)
if not active:
    st.info("No shop data yet. Operators upload a catalog and behaviour on the Data page.")
    st.stop()
columns = st.columns(len(active))
for column, (kind, version) in zip(columns, sorted(active.items())):
    column.metric(f"{kind} (v{version['id']})", f"{version['rows']:,} rows")
    column.caption(f"from {md(version['source'])}")
st.page_link("pages/data.py", label="Explore and upload data", icon=":material/database:")
