"""Jobs: every background job (status, progress, cancel) and the Ray cluster they run on."""

import streamlit as st

from recsys.services import database_url
from ui.jobs import job_status, ray_cluster_panel
from ui.session import require

who = require("view")
url = database_url()
st.title("Jobs")
st.caption("Evaluations, fine-tunes, engine fits and the other long work of the workbench run in the "
           "background; their state is kept in the database, so they go on when this page is closed.")

st.subheader("Ray cluster")
ray_cluster_panel(who, url)

st.subheader("Recent jobs")
job_status(None, url, who.can("settings"), key="all_jobs", limit=20)
