"""`python -m recsys`: JSON on stdout, and clear messages without tracebacks on bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.conftest import ROOT


def recsys(*args: str, url: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DATABASE_URL": url, "USER": "cli-user"}
    return subprocess.run([sys.executable, "-m", "recsys", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_db_upgrade(tmp_path):
    result = recsys("db", "upgrade", url=f"sqlite:///{tmp_path / 'cli.db'}")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["migrated"] is True


def test_ingest_then_bad_file_then_rollback(db_url, catalog_file, write):
    good = recsys("ingest", "--kind", "catalog", "--file", str(catalog_file), url=db_url)
    assert good.returncode == 0, good.stderr
    assert json.loads(good.stdout)["versions"] == [1]

    renamed = write("renamed.csv", "sku;name;price\nP9; Lamp ;9.5\nP8;Desk;120\n")
    mapped = recsys("ingest", "--kind", "catalog", "--file", str(renamed), "--map", "sku=product_id",
                    "--map", "name=title", url=db_url)
    assert mapped.returncode == 0, mapped.stderr
    assert json.loads(mapped.stdout)["reports"][0]["rows_out"] == 2

    bad = write("bad.csv", "product_id,title,price\nP1,Mug,2\nP2,Pot,abc\n")
    failed = recsys("ingest", "--kind", "catalog", "--file", str(bad), url=db_url)
    assert failed.returncode == 1
    assert "bad.csv, row 2 (line 3), column 'price': is not a number (value 'abc')" in failed.stderr
    assert "Traceback" not in failed.stderr and failed.stdout == ""

    listed = json.loads(recsys("versions", "list", url=db_url).stdout)
    assert [(v["version"], v["active"]) for v in listed] == [(2, True), (1, False)]
    back = recsys("versions", "rollback", "--kind", "catalog", url=db_url)
    # The suite sets WORKBENCH_FIT_ON_ACTIVATE=0: no background fit job is started.
    assert json.loads(back.stdout) == {"active": {"kind": "catalog", "version": 1}, "engines_job": None}


def test_bad_inputs_exit_nonzero_with_a_message(db_url, write, tmp_path):
    cases = {
        "missing file": (str(tmp_path / "nope.csv"), "cannot be opened"),
        "not a table": (str(write("photo.csv", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")), "not a table"),
        "empty": (str(write("empty.csv", b"")), "is empty"),
        "missing column": (str(write("nocol.csv", "product_id,price\nP1,3\n")),
                           "required column 'title' is missing"),
    }
    for name, (path, expected) in cases.items():
        result = recsys("ingest", "--kind", "catalog", "--file", path, url=db_url)
        assert result.returncode == 1, name
        assert expected in result.stderr, (name, result.stderr)
        assert "Traceback" not in result.stderr, name


def test_events_need_a_catalog_first(db_url, events_file):
    result = recsys("ingest", "--kind", "events", "--file", str(events_file), url=db_url)
    assert result.returncode == 1
    assert "upload a catalog first" in result.stderr


def test_bad_mapping_argument(db_url, catalog_file):
    result = recsys("ingest", "--kind", "catalog", "--file", str(catalog_file), "--map", "oops",
                    url=db_url)
    assert result.returncode != 0 and "SOURCE=TARGET" in result.stderr


def test_unreachable_database_is_a_message(tmp_path):
    url = "postgresql+psycopg://nobody@127.0.0.1:1/none"
    result = recsys("db", "upgrade", url=url)
    assert result.returncode == 1
    assert "the database cannot be used" in result.stderr and "Traceback" not in result.stderr


def test_non_product_codes_can_be_chosen(db_url, write):
    catalog = write("codes.csv", "product_id,title,price\nM,Medium mug,3\nPOST,Postage,5\nFEE1,Fee,1\n")
    default = recsys("ingest", "--kind", "catalog", "--file", str(catalog), "--dry-run", url=db_url)
    assert json.loads(default.stdout)["reports"][0]["rows_out"] == 2  # 'M' is a product here
    chosen = recsys("ingest", "--kind", "catalog", "--file", str(catalog), "--dry-run",
                    "--non-product-codes", "POST, FEE1", url=db_url)
    assert json.loads(chosen.stdout)["reports"][0]["rows_out"] == 1


def test_presets_are_listed_saved_activated_and_rolled_back_from_the_command_line(db_url, write):
    assert recsys("init", "--no-demo", "--no-fit", url=db_url).returncode == 0
    listed = json.loads(recsys("presets", "list", url=db_url).stdout)
    assert [(row["scope"], row["name"], row["version"], row["active"]) for row in listed] == [
        ("search", "default", 1, True), ("recommendations", "default", 1, True)]
    config = write("semantic.json", json.dumps({"weights": {"bm25": 0.4, "semantic": 0.6}}))
    saved = recsys("presets", "save", "--scope", "search", "--name", "semantic-heavy", "--config", str(config),
                   "--activate", url=db_url)
    assert saved.returncode == 0, saved.stderr
    body = json.loads(saved.stdout)
    assert (body["name"], body["version"], body["active"]) == ("semantic-heavy", 1, True)
    assert body["config"]["weights"] == {"bm25": 0.4, "semantic": 0.6}
    inline = recsys("presets", "save", "--scope", "search", "--name", "semantic-heavy", "--config",
                    '{"method": "rrf"}', url=db_url)
    assert json.loads(inline.stdout)["version"] == 2 and not json.loads(inline.stdout)["active"]
    again = json.loads(recsys("presets", "activate", "--scope", "search", "--name", "semantic-heavy", url=db_url).stdout)
    assert again["version"] == 2
    back = json.loads(recsys("presets", "rollback", "--scope", "search", url=db_url).stdout)
    assert (back["name"], back["version"]) == ("semantic-heavy", 1)
    bad = recsys("presets", "save", "--scope", "search", "--name", "x", "--config", '{"weights": {"bm25": -1}}',
                 url=db_url)
    assert bad.returncode == 1 and "fusion weights must be numbers of 0 or more" in bad.stderr
    assert "Traceback" not in bad.stderr
    missing = recsys("presets", "activate", "--scope", "search", url=db_url)
    assert missing.returncode == 2 and "presets activate needs --name" in missing.stderr
    unknown = recsys("presets", "activate", "--scope", "search", "--name", "nope", url=db_url)
    assert unknown.returncode == 1 and "there is no search preset 'nope'" in unknown.stderr


def test_jobs_are_listed_shown_cancelled_and_retried_from_the_command_line(db_url):
    from recsys import jobs

    assert recsys("db", "upgrade", url=db_url).returncode == 0
    from recsys.evaluation.jobs import EvaluateSpec

    queued = jobs.submit(EvaluateSpec(algorithms=["popularity"], k=2), "olga", url=db_url, spawn=False)
    listed = json.loads(recsys("jobs", "list", url=db_url).stdout)
    assert [(job["id"], job["kind"], job["status"]) for job in listed] == [(queued, "evaluate", "queued")]
    shown = json.loads(recsys("jobs", "show", "--id", str(queued), url=db_url).stdout)
    assert shown["spec"]["algorithms"] == ["popularity"] and shown["logs"] == [] and shown["result"] is None
    assert json.loads(recsys("jobs", "cancel", "--id", str(queued), url=db_url).stdout)["cancel_requested"]
    assert jobs.get_job(queued, url=db_url).status == "cancelled"
    retried = recsys("jobs", "retry", "--id", str(queued), url=db_url)
    assert retried.returncode == 0, retried.stderr
    assert json.loads(retried.stdout)["retried_as"] == queued + 1
    missing = recsys("jobs", "show", url=db_url)
    assert missing.returncode == 1 and "jobs show needs --id" in missing.stderr


def test_models_are_listed_activated_and_rolled_back_from_the_command_line(db_url, tmp_path):
    from recsys import model_registry as registry

    assert recsys("db", "upgrade", url=db_url).returncode == 0
    for name in ("first", "second"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "ranker.json").write_text('{"config": {"top_n": 10}}')
        registry.register_model("reranker", tmp_path / name, base_model="learned ranker", training_data={},
                                hyperparameters={}, metrics={}, actor="olga", url=db_url)
    listed = json.loads(recsys("models", "list", "--kind", "reranker", url=db_url).stdout)
    assert [(row["version"], row["is_active"]) for row in listed] == [(2, False), (1, False)]
    for version in (1, 2):
        done = recsys("models", "activate", "--kind", "reranker", "--version", str(version), url=db_url)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["active"]["version"] == version
    assert registry.active_model("reranker", db_url).version == 2
    back = json.loads(recsys("models", "rollback", "--kind", "reranker", url=db_url).stdout)
    assert back["active"]["version"] == 1 and back["engines_job"] is None  # a reranker needs no fitting
    base = json.loads(recsys("models", "use-base", "--kind", "reranker", url=db_url).stdout)
    assert base["active"] == {"kind": "reranker", "version": None, "id": None, "path": None}
    assert registry.active_model("reranker", db_url) is None
    missing = recsys("models", "activate", "--kind", "reranker", "--version", "9", url=db_url)
    assert missing.returncode == 1 and "there is no reranker model v9" in missing.stderr
    (tmp_path / "first").joinpath("ranker.json").unlink()
    (tmp_path / "first").rmdir()
    gone = recsys("models", "activate", "--kind", "reranker", "--version", "1", url=db_url)
    assert gone.returncode == 1 and "no longer exists" in gone.stderr
