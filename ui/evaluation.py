"""Charts and tables of stored evaluation results."""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import streamlit as st

from recsys.services import evaluation


def results(url: str) -> pd.DataFrame:
    return evaluation.results(url)


def quality_charts(frame: pd.DataFrame, k: int) -> None:
    frame = frame.assign(label=frame["algorithm"] + " (run " + frame["run"].astype(str) + ")")
    left, right = st.columns(2)
    left.plotly_chart(px.scatter(
        frame, x="recommend_ms_p95", y=f"ndcg@{k}", color="algorithm", hover_name="label",
        title="Quality against latency (p95 ms per user)", log_x=True),
        key="chart_quality_latency")
    right.plotly_chart(px.scatter(
        frame, x=f"coverage@{k}", y=f"ndcg@{k}", color="algorithm", hover_name="label",
        title="Coverage against accuracy"),
        key="chart_coverage_accuracy")
