"""Evaluation: offline quality, coverage and latency of every algorithm, and tuning."""

import streamlit as st

from recsys.services import database_url
from recsys import jobs
from recsys.evaluation.jobs import EvaluateSpec, TuneSpec
from recsys.evaluation.splits import SPLIT_KINDS, SplitConfig
from recsys.recommenders import get, names
from ui.evaluation import quality_charts, results
from ui.jobs import job_status
from ui.session import require
from ui.text import md

who = require("view")
url = database_url()
st.title("Evaluation")
st.caption("Each algorithm is fitted on the training part of the active behaviour data and scored "
           "on the held-out part. Runs happen in the background and are kept for comparison.")
allowed = who.can("evaluate")
run_tab, tune_tab = st.tabs(["Compare algorithms", "Tune an algorithm"])

with run_tab:
    with st.form("evaluate_form"):
        algorithms = st.multiselect("Algorithms", names(), default=["popularity", "item_knn", "ease"],
                                    key="eval_algorithms")
        left, middle, right, last = st.columns(4)
        split = left.selectbox("Split", SPLIT_KINDS, index=SPLIT_KINDS.index("temporal"),
                               key="eval_split", help="stratified: a share of each user's products; "
                               "temporal: each user's last product; time: everything after a cutoff")
        test_frac = middle.slider("Test share", 0.05, 0.5, 0.25, 0.05, key="eval_test_frac")
        k = right.number_input("k", 1, 100, 10, key="eval_k")
        seed = last.number_input("Seed", 0, 10_000, 42, key="eval_seed")
        submitted = st.form_submit_button("Run evaluation", disabled=not allowed)
    if submitted:
        if not algorithms:
            st.warning("Pick at least one algorithm.")
        else:
            config = SplitConfig(kind=split, test_frac=test_frac, seed=int(seed))
            job_id = jobs.submit(EvaluateSpec(algorithms=algorithms, split=config, k=int(k)), who.username,
                                 url=url)
            st.success(f"Started run {job_id}.")
    job_status("evaluate", url, allowed, key="eval")

    stored = results(url)
    if stored.empty:
        st.info("No results yet: run an evaluation.")
    else:
        shown_k = st.selectbox("Results at k", sorted(stored["k"].unique()), key="eval_show_k")
        at_k = stored[stored["k"] == shown_k]
        columns = [c for c in ["run", "algorithm", "split", f"ndcg@{shown_k}", f"precision@{shown_k}",
                               f"recall@{shown_k}", f"map@{shown_k}", f"coverage@{shown_k}",
                               f"diversity@{shown_k}", f"novelty@{shown_k}", "fit_s",
                               "recommend_ms_p50", "recommend_ms_p95", "users", "created_at"]
                   if c in at_k]
        st.dataframe(at_k[columns], hide_index=True, width="stretch", key="eval_results")
        quality_charts(at_k, shown_k)

with tune_tab:
    tunable = [n for n in names() if getattr(get(n), "search_space", None)]
    with st.form("tune_form"):
        algorithm = st.selectbox("Algorithm", tunable, key="tune_algorithm")
        left, right = st.columns(2)
        split = left.selectbox("Split", SPLIT_KINDS, index=SPLIT_KINDS.index("temporal"),
                               key="tune_split")
        max_configs = right.number_input("At most this many configurations", 1, 100, 12,
                                         key="tune_max_configs")
        st.caption(f"Search space: {get(algorithm).search_space}")
        tune_submitted = st.form_submit_button("Tune", disabled=not allowed)
    if tune_submitted:
        try:
            job_id = jobs.submit(TuneSpec(algorithm=algorithm, k=10, split=SplitConfig(kind=split),
                                          max_configs=int(max_configs)), who.username, url=url)
            st.success(f"Started tuning run {job_id}.")
        except jobs.JobBusy as busy:
            st.warning(md(busy))
    job_status("tune", url, allowed, key="tune")
    finished = [j for j in jobs.list_jobs("tune", url=url, limit=20) if j.status == "succeeded"]
    if finished:
        latest = finished[0].result
        st.subheader(f"Best configuration of {latest.algo}")
        if not latest.tuned:
            st.info(latest.message)
        st.json({"best": latest.best, "default": latest.default})
        st.dataframe([{**t.get("params", {}), **t.get("scores", {})} for t in latest.tried],
                      key="tune_tried")
