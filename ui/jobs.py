"""Job status panels that poll SQL while a background job runs."""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st

from recsys import jobs
from ui.text import md


def job_status(kind: str, url: str, can_cancel: bool, key: str, limit: int = 5,
               details: Callable[[jobs.JobRecord], None] | None = None) -> None:
    """The latest jobs of `kind` with progress; reruns itself every 2 s.

    When a job it showed running has ended, the whole page runs again, so that what depends on
    the job (results, a new model) appears without leaving the page. `details(job)` draws more
    of the newest job under its line (e.g. a training curve).
    """

    @st.fragment(run_every=2)
    def panel() -> None:
        recent = jobs.list_jobs(kind, url=url, limit=limit)
        running = {job.id for job in recent if job.status in jobs.ACTIVE}
        watched = st.session_state.get(f"{key}_running", set())
        st.session_state[f"{key}_running"] = running
        if watched - running:
            st.rerun(scope="app")
        if not recent:
            st.caption("No runs yet.")
            return
        for job in recent:
            label = f"Run {job.id} by {md(job.created_by)}: {job.status}"
            if job.status in jobs.ACTIVE:
                st.progress(job.progress, text=f"{label} - {md(job.message)}")
                if can_cancel and st.button("Cancel", key=f"{key}_cancel_{job.id}"):
                    jobs.cancel(job.id, st.session_state["identity"]["username"], url=url)
                    st.rerun(scope="fragment")
            elif job.status == "failed":
                st.error(f"{label}: {md(job.message)}")
            else:
                st.caption(f"{label} ({job.finished_at:%Y-%m-%d %H:%M}); {md(job.message)}")
            if details is not None and job is recent[0]:
                details(job)

    panel()
