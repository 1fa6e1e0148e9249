"""Fitted engines on disk: one folder per active state, fitted by a job after an activation,
loaded by the pages without fitting."""

from __future__ import annotations

import json
import time

import pytest

from db import queries
from db.engine import session_scope
from recsys import engines, jobs
from recsys.data import IngestOptions, ingest_file
from recsys.data.clean import CleaningConfig
from recsys.data.interactions import SETTING_KEY
from recsys import model_registry as registry
from tests.conftest import pseudonym
from tests.pages.conftest import app_as, column, titles


@pytest.fixture
def data(db_url, catalog_file, events_file) -> str:
    """A catalog (v1) and events (v2), nothing fitted yet."""
    ingest_file(catalog_file, IngestOptions("catalog"), actor="test")
    ingest_file(events_file, IngestOptions("events", cleaning=CleaningConfig()), actor="test")
    return db_url


def test_every_active_engine_is_fitted_once_and_loads_to_the_same_answers(data):
    specs = engines.active_specs(data)
    assert set(specs) == set(engines.KINDS) and not any(map(engines.is_fitted, specs.values()))
    fitted = engines.fit_active(data)
    assert [item["engine"] for item in fitted] == [spec.key for spec in specs.values()]
    assert engines.fit_active(data) == []  # nothing is fitted twice
    meta = json.loads((specs["search"].folder / engines.SPEC_FILE).read_text())
    assert meta["catalog_version"] == 1 and meta["backend"] == "onnx-int8" and meta["fit_s"] > 0
    assert data not in json.dumps(meta)  # the database is named by a hash, never by its URL

    search = engines.load(specs["search"])
    assert search.search("red mug", k=1)[0].product_id == "P1"
    recommender = engines.load(specs["recommendations"])
    assert set(recommender.user_ids) == {pseudonym(user) for user in ("u1", "u2", "u3")}  # as stored
    held_out = engines.load(specs["recommendations_heldout"])
    assert held_out.test.columns.tolist() == ["user_id", "product_id"] and len(held_out.test)
    # Each customer's latest product is held out of the training part.
    assert not set(held_out.recommender.history("u2")) & set(held_out.test.query("user_id == 'u2'")["product_id"])


def test_an_activation_asks_for_another_engine_and_going_back_reuses_the_fitted_one(data, tmp_path):
    engines.fit_active(data)
    before = engines.active_specs(data)
    folder = tmp_path / "ft"
    folder.mkdir()
    model = registry.register_model("embedding", folder, base_model="all-MiniLM-L6-v2", training_data={},
                                    hyperparameters={}, metrics={}, actor="olga")
    registry.activate_model(model.id, "olga")
    tuned = engines.active_specs(data)
    assert tuned["search"].embedding_model == str(folder) and tuned["search"].embedding_label == "embedding-v1"
    assert not engines.is_fitted(tuned["recommendations"])
    registry.use_base_model("embedding", "olga")
    assert engines.active_specs(data) == before and all(map(engines.is_fitted, before.values()))

    with session_scope(data) as session:
        queries.set_setting(session, SETTING_KEY, {"purchase": 9.0}, "olga")
    weighted = engines.active_specs(data)
    assert weighted["search"] == before["search"]  # search does not read the events
    assert weighted["recommendations"].key != before["recommendations"].key


def test_two_databases_with_the_same_versions_never_share_an_engine(data, tmp_path, catalog_file):
    from db.engine import upgrade

    other = f"sqlite:///{tmp_path / 'other.db'}"
    upgrade(other)
    ingest_file(catalog_file, IngestOptions("catalog"), actor="test", url=other)
    assert engines.active_specs(other)["search"].key != engines.active_specs(data)["search"].key


def test_inactive_engines_are_pruned_but_the_newest_one_per_kind(data, write):
    engines.fit_active(data)
    first = engines.active_specs(data)["search"]
    for title in ("Lamp", "Desk"):
        ingest_file(write("catalog.csv", f"product_id,title\nP1,{title}\n"), IngestOptions("catalog"),
                    actor="test")
        engines.fit_active(data)
    assert not first.folder.exists()  # two catalogs later: only the newest inactive one is kept
    kept = [folder.name for folder in engines.engines_dir().iterdir() if folder.name.startswith("search-")
            and json.loads((folder / engines.SPEC_FILE).read_text())["database"]
            == engines.database_identity(data)]
    assert len(kept) == 2


def test_the_pages_load_fitted_engines_and_never_fit(data, monkeypatch):
    from recsys.accounts import create_account

    create_account("viewer1", "correct-horse-1", "viewer", actor="test")
    engines.fit_active(data)

    def refuse(*args, **kwargs):
        raise AssertionError("a page fitted an engine")

    monkeypatch.setattr(engines, "fit", refuse)
    for page in ("pages/recommendations.py", "pages/similar_items.py", "pages/fusion.py"):
        app = app_as("viewer", page)
        assert not app.exception, page
    app = app_as("viewer", "pages/search_trial.py")
    app.text_input(key="search_query").input("red mug").run()
    assert not app.exception and titles(column(app, "Hybrid"))[0] == "Red mug"


def _wait(job_id: int, url: str) -> dict:
    deadline = time.time() + 240
    while time.time() < deadline:
        job = jobs.get_job(job_id, url=url)
        if job.status not in jobs.ACTIVE:
            return job
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} did not finish")


def test_a_page_without_its_engine_starts_the_fit_job_and_fills_in_when_it_ends(data):
    from recsys.accounts import create_account

    create_account("viewer1", "correct-horse-1", "viewer", actor="test")
    app = app_as("viewer", "pages/recommendations.py")
    assert not app.exception
    waiting = next(info.value for info in app.info if "being fitted in the background" in info.value)
    job_id = int(waiting.split("(job ")[1].split(")")[0])
    assert _wait(job_id, data).status == "succeeded"
    app.run()
    assert not app.exception
    assert [c for c in app.columns if [s.value for s in c.subheader] == ["Hybrid"]]


def test_an_upload_starts_fitting_its_engines_in_the_background(data, monkeypatch):
    from recsys.accounts import create_account

    monkeypatch.setenv(engines.FIT_ON_ACTIVATE_ENV, "1")
    create_account("operator1", "correct-horse-1", "operator", actor="test")
    app = app_as("operator", "pages/data.py")
    app.selectbox(key="upload_kind").select("catalog").run()
    app.get("file_uploader")[0].set_value(("lamps.csv", b"product_id,title\nQ1,Lamp\nQ2,Desk\n", "text/csv"))
    app.run()
    app.radio(key="upload_catalog_how").set_value("merge").run()
    next(b for b in app.button if b.label == "Upload and activate").click().run()
    stored = next(s.value for s in app.success if "Stored and activated" in s.value)
    assert "being fitted for it in the background (job " in stored
    job_id = int(stored.split("(job ")[1].split(")")[0])
    assert _wait(job_id, data).status == "succeeded"
    assert all(map(engines.is_fitted, engines.active_specs(data).values()))


def test_the_command_line_lists_and_fits_the_active_engines(data):
    import subprocess
    import sys

    from tests.conftest import ROOT

    def run(*args):
        done = subprocess.run([sys.executable, "-m", "recsys", "engines", *args], cwd=ROOT, capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    assert [(row["kind"], row["fitted"]) for row in run("list")] == [(kind, False) for kind in engines.KINDS]
    assert len(run("fit")["fitted"]) == 3
    assert all(row["fitted"] for row in run("list"))


def test_only_this_machines_dead_partial_folders_are_removed(tmp_path, monkeypatch):
    """In an artifact folder shared by several machines, a half-written engine of another machine
    (its process alive there, whatever its pid means here) is left alone."""
    import os
    import socket
    import subprocess
    import sys

    from recsys.engines import remove_partial_folders

    monkeypatch.setenv("WORKBENCH_ENGINES_DIR", str(tmp_path))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True).stdout.strip()
    host = socket.gethostname()
    names = [f"a.partial-{host}-{dead}", f"b.partial-web-9-{dead}", f"c.partial-{host}-{os.getpid()}",
             f"d.partial-{dead}"]  # d: the name before machines were named
    for name in names:
        (tmp_path / name).mkdir()
    assert sorted(remove_partial_folders()) == [names[0], names[3]]
    assert sorted(folder.name for folder in tmp_path.iterdir()) == [names[1], names[2]]
