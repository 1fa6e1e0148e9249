"""Fine-tune: adapt the embedding model to the shop's data, compare it, activate or roll back."""

from dataclasses import replace

import streamlit as st

from recsys.services import database_url
from recsys import jobs
from recsys import model_registry as registry
from recsys.training.jobs import DEMO_CONFIG, FinetuneSpec, RankerSpec, RerankerSpec
from recsys.training.ltr import RankerConfig
from recsys.training.reranker import RerankerConfig
from recsys.training.pairs import SOURCES
from ui.jobs import job_status
from ui.session import require
from ui.text import md
from ui.training import (SOURCE_LABELS, available_sources, flash, model_actions, models_table, run_on,
                         run_results, training_chart)

who = require("view")
url = database_url()
allowed = who.can("train")
st.title("Fine-tune")
flash()
active = registry.active_model("embedding", url)
st.caption("Search, semantic recommendations and the REST service embed with the active model: "
           + (f"**v{active.version}** (fine-tuned on {active.training_data.get('source', '?')})"
              if active else "**the shipped all-MiniLM-L6-v2**") + ".")

counts = available_sources(url)
with st.form("finetune_form"):
    kind = st.radio("Train", ["embedding", "reranker", "ranker"], horizontal=True, key="ft_kind", format_func={
        "embedding": "the embedding model (search, semantic recommendations)",
        "reranker": "a cross-encoder reranker (reorders search's top results; needs judgments)",
        "ranker": "a learned ranker (weighs search's own signals per query; minutes on CPU; needs judgments)"}.get,
        help="A learned ranker (LambdaMART) reorders the fused top 100 by BM25's and the embedding's scores and "
             "the words the product shares with the query; it is trained over the search engine as served "
             "(the active embedding model and search preset), and only reads the judgments. The training "
             "settings below are for the other two.")
    usable = [source for source in SOURCES if counts.get(source)] or list(SOURCES)
    source = st.radio("Training data", usable, horizontal=True, key="ft_source",
                      format_func=lambda s: f"{SOURCE_LABELS[s]} ({counts.get(s, 0):,} rows)")
    left, middle, right = st.columns(3)
    steps = left.number_input("Training steps", 10, 100_000, DEMO_CONFIG.max_steps, step=10, key="ft_steps")
    batch = middle.number_input("Batch size", 2, 512, DEMO_CONFIG.batch_size, key="ft_batch")
    rate = right.number_input("Learning rate", 1e-6, 1e-3, DEMO_CONFIG.learning_rate, format="%.0e",
                              key="ft_lr")
    left, middle, right = st.columns(3)
    warmup = left.slider("Warm-up share of steps", 0.0, 0.5, DEMO_CONFIG.warmup_ratio, 0.05, key="ft_warmup")
    seed = middle.number_input("Seed", 0, 1_000_000, DEMO_CONFIG.seed, key="ft_seed")
    min_grade = right.number_input("Lowest grade of a positive (judgments)", value=None, key="ft_min_grade",
                                   placeholder="top third of the scale")
    start_from = st.radio("Start from", ["active", "shipped"], horizontal=True, key="ft_start",
                          format_func={"active": "the active model", "shipped": "the shipped MiniLM"}.get)
    hard = st.checkbox("Add a hard negative per pair", key="ft_hard",
                       help="With judgments: a product judged not relevant for the query (bottom third "
                            "of the grades) when there is one; otherwise an unjudged product of BM25's "
                            "top 30 for it. Each step reads a third more texts.")
    where = run_on(url)
    submitted = st.form_submit_button("Start fine-tuning", disabled=not allowed, type="primary")
if submitted:
    common = {"max_steps": int(steps), "eval_steps": max(1, int(steps) // 3), "batch_size": int(batch),
              "learning_rate": float(rate), "warmup_ratio": float(warmup), "seed": int(seed)}
    try:
        if kind != "embedding" and not counts.get("judgments"):
            raise ValueError("A reranker learns from relevance judgments: upload them on the Data page first.")
        if kind == "embedding":
            spec = FinetuneSpec(source=source, min_grade=min_grade, start_from=start_from, config=replace(
                DEMO_CONFIG, **common, hard_negatives=hard), **where)
        elif kind == "reranker":
            spec = RerankerSpec(config=RerankerConfig(**common), min_grade=min_grade)
        else:
            spec = RankerSpec(config=RankerConfig(seed=int(seed)))
        job_id = jobs.submit(spec, who.username, url=url)
        st.success(f"Started fine-tune {job_id}; it runs in the background, so you may leave this page.")
    except (jobs.JobBusy, ValueError) as error:
        st.warning(md(error))
if not allowed:
    st.caption("Operators and admins can start fine-tuning and activate models.")

for job_kind, label in (("finetune", "Embedding fine-tunes"), ("train_reranker", "Cross-encoder trainings"),
                        ("train_ranker", "Learned ranker trainings")):
    st.markdown(f"**{label}**")
    job_status(job_kind, url, allowed, key=f"ft_{job_kind}", details=lambda job: training_chart(job, url))

finished = sorted((job for job_kind in ("finetune", "train_reranker", "train_ranker")
                   for job in jobs.list_jobs(job_kind, url=url, limit=20) if job.status == "succeeded"),
                  key=lambda job: -job.id)
if finished:
    st.subheader("Before and after")
    chosen = st.selectbox("Run", finished, key="ft_result", format_func=lambda job: (
        f"Run {job.id} by {job.created_by}: {job.result.kind} model v{job.result.version}"))
    run_results(chosen.result)

st.subheader("Models")
table = models_table(url)
if table.empty:
    st.info("No fine-tuned model yet: the shipped all-MiniLM-L6-v2 is in use.")
else:
    st.dataframe(table, hide_index=True, width="stretch", key="ft_models")
    model_actions(table, url, who.username, allowed)
