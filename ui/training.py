"""Widgets of the Fine-tune page: data on hand, the training curve, before/after results, the models."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from recsys import cluster, jobs
from recsys import model_registry as registry
from recsys.training.jobs import TrainedModel
from ui.data import active_versions
from ui.engines import refit
from ui.text import md

SOURCE_LABELS = {"judgments": "Relevance judgments", "search_log": "Search log clicks",
                 "co_purchases": "Co-purchases (baskets)"}
DATA_KIND = {"judgments": "judgments", "search_log": "search_log", "co_purchases": "events"}


def available_sources(url: str) -> dict[str, int]:
    """{training source: rows of its active data version} (0 when there is none or no catalog)."""
    versions = active_versions(url)
    if "catalog" not in versions:
        return {}
    return {source: versions.get(kind, {}).get("rows", 0) for source, kind in DATA_KIND.items()}


NO_CLUSTER_CAPTION = ("Training runs on this machine. To train on a Ray cluster (several workers, GPUs), "
                      "name one: set RAY_ADDRESS where the workbench starts, or the Ray address on the "
                      "Jobs page.")


def run_on(url: str) -> dict:
    """Where an embedding fine-tune runs, as FinetuneSpec fields (engine, workers, use_gpu): a
    "Run on" choice with the workers and GPUs of Ray Train when a Ray address is in force,
    otherwise this machine and a caption saying how to name a cluster. Call inside the form."""
    address = cluster.ray_address(url)
    if address is None:
        st.caption(NO_CLUSTER_CAPTION)
        return {"engine": "local"}
    engine = st.radio("Run on (embedding model)", ["local", "ray"], horizontal=True, key="ft_engine",
                      format_func={"local": "this machine", "ray": f"the Ray cluster at {address}"}.get,
                      help="On the Ray cluster the training loop runs under Ray Train: data-parallel "
                           "workers (DDP), each reading its own batch of every step; the data "
                           "preparation, validation and registry stay as here.")
    left, right = st.columns(2)
    workers = left.number_input("Ray Train workers", 1, 256, 1, key="ft_workers")
    gpu = right.checkbox("A GPU per worker", key="ft_gpu")
    if engine == "local":
        return {"engine": "local"}
    return {"engine": "ray", "workers": int(workers), "use_gpu": bool(gpu)}


def training_chart(job: jobs.JobRecord, url: str) -> None:
    """Loss and validation nDCG@10 by step of a fine-tune, from its logs in SQL."""
    logs = [row for row in jobs.job_logs(job.id, url=url) if row["step"] is not None]
    if not logs:
        return
    frame = pd.DataFrame([{"step": row["step"], **row["metrics"]} for row in logs])
    figure = make_subplots(specs=[[{"secondary_y": True}]])
    loss = frame.dropna(subset=["loss"]).drop_duplicates("step", keep="last") if "loss" in frame else frame[[]]
    if not loss.empty:
        figure.add_trace(go.Scatter(x=loss["step"], y=loss["loss"], name="training loss"))
    if "val_ndcg" in frame:
        validation = frame.dropna(subset=["val_ndcg"])
        figure.add_trace(go.Scatter(x=validation["step"], y=validation["val_ndcg"], mode="lines+markers",
                                    name="validation nDCG@10"), secondary_y=True)
    figure.update_layout(height=260, margin={"t": 10, "b": 10}, xaxis_title="step",
                         legend={"orientation": "h"})
    st.plotly_chart(figure, key=f"ft_chart_{job.id}")


def metrics_frame(full_catalog: dict) -> pd.DataFrame:
    """part x (metric before, after, change) from a run's full-catalog metrics."""
    rows = []
    for part, by_model in full_catalog.items():
        for metric in by_model["before"]:
            before, after = by_model["before"][metric], by_model["after"][metric]
            rows.append({"part": part, "metric": metric, "before": round(before, 4), "after": round(after, 4),
                         "change": f"{(after - before) / before:+.1%}" if before else "n/a"})
    return pd.DataFrame(rows)


def run_results(result: TrainedModel) -> None:
    """A finished fine-tune: before/after metrics on validation and test, and changed queries."""
    trained = (f"{result.pairs.get('train', 0):,} training examples from "
               f"{SOURCE_LABELS.get(result.source, '?')}, {result.steps} steps in "
               f"{result.train_s / 60:.1f} min on {result.device}.")
    if result.kind == "reranker":
        st.caption(f"{trained} Validation: each validation query's BM25 top 30 reordered by the "
                   "cross-encoder (before: BM25's order); its best checkpoint was kept.")
    elif result.kind == "ranker":
        st.caption(f"A learned ranker of {result.steps} trees from {result.pairs.get('train', 0):,} fused "
                   "items "
                   f"of the judged training queries, trained in {result.train_s:.1f} s. Before: search "
                   "as served (the active embedding model and search preset, without the preset's rules); "
                   f"after: the same with the ranker reordering its fused top {result.top_n}. "
                   "The whole catalog is searched for every validation and test query; none was trained on. "
                   "To use it, activate it below and turn reranking on (N = "
                   f"{result.top_n}) in a search preset on Fusion & rules.")
    else:
        st.caption(f"{trained} Before: the model that was active when the run started. The whole catalog "
                   "is searched for every validation and test query; none was trained on.")
    st.dataframe(metrics_frame(result.headline()), hide_index=True, key="ft_metrics")
    if not result.examples:
        return
    st.markdown("**Test queries whose top 5 changed** (grade in brackets when judged)")
    for example in result.examples:
        with st.expander(md(example["query"])):
            before, after = st.columns(2)
            for column, name in ((before, "before"), (after, "after")):
                column.markdown(f"*{name}*")
                for rank, hit in enumerate(example[name], 1):
                    grade = "" if hit["grade"] is None else f" [{hit['grade']:g}]"
                    column.write(f"{rank}. {md(hit['title'])}{grade}")


def models_table(url: str) -> pd.DataFrame:
    return registry.list_models(url=url)


NOTES = {"embedding": "Search and recommendations use it once their engines are fitted with it (in the "
                      "background, a minute on the demo); the REST service follows once they are fitted.",
         "reranker": "Search presets with reranking on rerank with it; the REST service follows within "
                     "seconds. (A preset saved before presets followed the active reranker names a folder: "
                     "turn its reranking off and on again on Fusion & rules.)"}
NO_MODEL = {"embedding": "the shipped all-MiniLM-L6-v2", "reranker": "no reranker"}


def model_actions(table: pd.DataFrame, url: str, actor: str, allowed: bool) -> None:
    """Activate a version, roll back, or go back to the shipped model / no reranker (operators, admins)."""
    kinds = [kind for kind in registry.MODEL_KINDS if (table["kind"] == kind).any()]
    kind = st.radio("Models of", kinds, horizontal=True, key="ft_model_kind")
    of_kind = table[table["kind"] == kind].set_index("id")
    left, middle, right = st.columns([2, 1, 1])
    chosen = left.selectbox("Model version", of_kind.index.tolist(), key="ft_model",
                            format_func=lambda i: f"{kind} v{int(of_kind.loc[i, 'version'])}")
    note = NOTES[kind]
    done = None
    try:
        if middle.button("Activate", key="ft_activate", disabled=not allowed or chosen is None):
            model = registry.activate_model(int(chosen), actor, url=url)
            done = f"Activated {kind} model v{model.version}. {note}"
        if right.button("Roll back", key="ft_rollback", disabled=not allowed):
            model = registry.rollback_model(kind, actor, url=url)
            target = f"{kind} model v{model.version}" if model else NO_MODEL[kind]
            done = f"Rolled back to {target}. {note}"
        if st.button(f"Use {NO_MODEL[kind]}", key="ft_shipped", disabled=not allowed):
            registry.use_base_model(kind, actor, url=url)
            done = f"Now using {NO_MODEL[kind]}. {note}"
    except (LookupError, FileNotFoundError) as error:
        st.error(md(error))
    if done:
        if kind == "embedding":
            done += refit(url, actor)
        # Rerun so that the caption and the table above show the new active model.
        st.session_state[FLASH] = done
        st.rerun()


FLASH = "ft_flash"


def flash() -> None:
    """The message of the last model action, once, after the rerun it caused."""
    message = st.session_state.pop(FLASH, None)
    if message:
        st.success(message)
