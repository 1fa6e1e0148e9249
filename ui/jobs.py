"""Job status panels that poll SQL while a background job runs, and the Ray cluster jobs run on."""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st

from recsys import cluster, jobs
from recsys.accounts import Identity
from ui.text import md


def job_status(kind: str | None, url: str, can_cancel: bool, key: str, limit: int = 5,
               details: Callable[[jobs.JobRecord], None] | None = None) -> None:
    """The latest jobs of `kind` (None: of every kind, each named) with progress; reruns itself every 2 s.

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
            name = f"Run {job.id}" if kind else f"{md(job.kind)} job {job.id}"
            label = f"{name} by {md(job.created_by)}: {job.status}"
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


def ray_cluster_panel(who: Identity, url: str) -> None:
    """Where jobs run: the Ray address in force and where it comes from, a check of what the
    cluster offers (or why it cannot be reached), and, with "settings", the ``ray`` setting."""
    address, source = cluster.address_in_force(url)
    if address is None:
        st.info("No Ray cluster is named: each job runs in its worker's process on this machine.")
    else:
        where = "$RAY_ADDRESS of this app's environment" if source == "environment" else "the setting below"
        st.markdown(f"Jobs run on the Ray cluster at {md(address)} (from {where}), each as a Ray task "
                    "with the CPU and GPU it asks for; their progress shows here as before.")
        if st.button("Check the cluster", key="ray_check"):
            try:
                status = cluster.check(address)
            except cluster.ClusterUnavailable as error:
                st.error(md(str(error)))
            else:
                st.success(f"{status.nodes} node(s) alive with {status.cpus:g} CPUs and {status.gpus:g} GPUs "
                           f"(Ray {md(status.ray_version)}).")
    if not who.can("settings"):
        st.caption("Operators and admins name the cluster.")
        return
    with st.form("ray_address_form"):
        typed = st.text_input("Ray address", value=cluster.setting_address(url) or "", key="ray_address",
                              help="HOST:PORT of the cluster's head (6379 by default), ray://HOST:PORT (Ray "
                                   "Client) or local (a Ray inside each job worker); empty: no cluster")
        if st.form_submit_button("Save"):
            try:
                cluster.set_ray_address(typed, who.username, url)
            except ValueError as error:
                st.error(md(str(error)))
            else:
                st.rerun()  # the address in force, above, as saved
    if source == "environment":
        st.caption("$RAY_ADDRESS is set where this app runs, and wins over the setting.")
