"""pages/evaluation.py: start a run, watch it, compare stored results."""

from __future__ import annotations

import time

from db.engine import session_scope
from db.models import EvaluationResult
from recsys import jobs
from tests.pages.conftest import app_as


def results_table(app):
    return next(d.value for d in app.dataframe if "algorithm" in d.value.columns)


def _stored_result(algorithm: str, ndcg: float) -> None:
    with session_scope() as session:
        session.add(EvaluationResult(job_id=None, algorithm=algorithm, split="temporal", k=10,
                                     metrics={"ndcg@10": ndcg, "coverage@10": 0.3,
                                              "recommend_ms_p95": 1.5, "users": 3},
                                     created_by="test"))


def test_viewer_sees_results_and_cannot_start_runs(shop):
    _stored_result("ease", 0.4)
    _stored_result("popularity", 0.1)
    app = app_as("viewer", "pages/evaluation.py")
    assert not app.exception
    table = results_table(app)
    assert list(table["algorithm"]) == ["popularity", "ease"]
    assert len(app.get("plotly_chart")) == 2
    assert next(b for b in app.button if b.label == "Run evaluation").disabled


def test_operator_starts_a_run_that_finishes_in_the_background(shop):
    app = app_as("operator", "pages/evaluation.py")
    app.multiselect(key="eval_algorithms").set_value(["popularity"])
    app.selectbox(key="eval_split").select("stratified")
    app.slider(key="eval_test_frac").set_value(0.5)
    next(b for b in app.button if b.label == "Run evaluation").click().run()
    assert not app.exception
    started = [s.value for s in app.success if s.value.startswith("Started run")]
    assert started
    job_id = int(started[0].split()[-1].rstrip("."))
    deadline = time.time() + 180
    while jobs.get_job(job_id).status in jobs.ACTIVE and time.time() < deadline:
        time.sleep(0.5)
    assert jobs.get_job(job_id).status == "succeeded", jobs.get_job(job_id).message
    app.run()
    table = results_table(app)
    assert list(table["algorithm"]) == ["popularity"] and list(table["run"]) == [job_id]
