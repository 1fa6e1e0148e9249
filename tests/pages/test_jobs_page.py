"""pages/jobs.py: every kind of job with its state and cancel, and the Ray cluster they run on
(named by operators and admins, checked by anyone, an unreachable one stated)."""

from __future__ import annotations

import pytest

from recsys import cluster, jobs
from recsys.accounts import create_account
from recsys.evaluation.jobs import EvaluateSpec
from tests.pages.conftest import PASSWORD, app_as, shown

PAGE = "pages/jobs.py"


@pytest.fixture
def accounts(db_url, monkeypatch):
    monkeypatch.delenv(cluster.RAY_ADDRESS_ENV, raising=False)
    for role in ("operator", "viewer"):
        create_account(role + "1", PASSWORD, role, actor="test")
    return db_url


def test_viewer_sees_no_cluster_and_cannot_name_one(accounts):
    app = app_as("viewer", PAGE)
    assert not app.exception
    assert any("No Ray cluster is named" in info.value for info in app.info)
    assert not [form for form in app.get("form")] and "Operators and admins name the cluster." in [
        caption.value for caption in app.caption]


def test_operator_names_checks_and_clears_the_cluster(accounts):
    app = app_as("operator", PAGE)
    app.text_input(key="ray_address").input("head:port")
    next(b for b in app.button if b.label == "Save").click().run()
    assert any("'head:port' is not a Ray address" in shown(error.value) for error in app.error)
    assert cluster.ray_address(accounts) is None

    app.text_input(key="ray_address").input("127.0.0.1:9")
    next(b for b in app.button if b.label == "Save").click().run()
    assert not app.exception and cluster.ray_address(accounts) == "127.0.0.1:9"
    assert any("Ray cluster at 127.0.0.1:9 (from the setting below)" in shown(m.value) for m in app.markdown)
    app.button(key="ray_check").click().run()
    assert any("cannot reach the Ray cluster at 127.0.0.1:9" in shown(error.value) for error in app.error)

    app.text_input(key="ray_address").input("")
    next(b for b in app.button if b.label == "Save").click().run()
    assert cluster.ray_address(accounts) is None
    assert any("No Ray cluster is named" in info.value for info in app.info)


def test_jobs_of_every_kind_are_listed_and_a_queued_one_is_cancelled(accounts):
    failed = jobs.submit(EvaluateSpec(algorithms=["popularity"]), "operator1", spawn=False)
    cluster.set_ray_address("127.0.0.1:9", "operator1", accounts)
    assert jobs.run_job(failed) == "failed"  # the cluster cannot be reached: the job says why
    queued = jobs.submit(EvaluateSpec(algorithms=["item_knn"]), "operator1", spawn=False)
    app = app_as("operator", PAGE)
    assert not app.exception
    assert any(f"evaluate job {failed} by operator1: failed" in shown(e.value)
               and "cannot reach the Ray cluster at 127.0.0.1:9" in shown(e.value) for e in app.error)
    app.button(key=f"all_jobs_cancel_{queued}").click().run()
    assert jobs.get_job(queued).status == "cancelled"
    assert not [b for b in app_as("viewer", PAGE).button if b.label == "Cancel"]
