"""Trials on a real database and the real search engine: create, judge, score, export, activate; the CLI."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from db.engine import session_scope
from recsys import active
from recsys.data import IngestOptions, ingest_file
from recsys.engines import fit_active
from recsys.evaluation.search import graded_qrels
from recsys.fusion import presets
from recsys.fusion.defaults import SEARCH
from recsys.trials import service as trials
from tests.test_cli import recsys

BM25_ONLY = {**SEARCH, "weights": {"bm25": 1.0, "semantic": 0.0}}


@pytest.fixture
def shop(db_url, catalog_file):
    """The small catalog, the default search preset and a BM25-only one, the search engine fitted."""
    ingest_file(catalog_file, IngestOptions("catalog"), actor="test")
    with session_scope(db_url) as session:
        presets.ensure_default_presets(session)
        presets.save_preset(session, "search", "bm25-only", BM25_ONLY, "test")
    fit_active(db_url)
    return db_url


def _trial(url, name="mugs"):
    query_set = trials.save_query_set(url, name, ["red mug", "mug", "teapot", "Red Mug"], "typed", "olga")
    configurations = [trials.preset_configuration(url, "default"), trials.preset_configuration(url, "bm25-only")]
    return trials.create_trial(url, name, query_set, configurations, "olga", depth=3)


def test_a_trial_pools_its_configurations_and_two_graders_judge_it_blind(shop):
    trial = _trial(shop)
    assert trial.query_set.queries == ["red mug", "mug", "teapot"] and trial.query_set.version == 1
    fresh = trials.scorecard(shop, trial.id)  # nothing judged yet: no scores, and no failure
    assert fresh.graded_pairs == 0 and [config.queries for config in fresh.configs] == [0, 0]
    assert trials.progress(shop, trial.id).empty
    assert [run.name for run in trial.runs] == ["default v1", "bm25-only v1"]
    assert trial.runs[1].rankings["mug"][:2] == ["P2", "P1"] or trial.runs[1].rankings["mug"][:2] == ["P1", "P2"]
    pool = trial.pool()
    assert set(pool["teapot"]) >= {"P3"} and all(len(set(products)) == len(products) for products in pool.values())
    todo = trials.pairs_to_grade(shop, trial.id, "ann")
    assert len(todo) == sum(map(len, pool.values()))
    for query, product in todo.itertuples(index=False):
        trials.judge(shop, trial.id, query, product, "ann", 3 if ("mug" in query) == (product in ("P1", "P2")) else 0)
    first = todo.iloc[0]
    trials.judge(shop, trial.id, first["query"], first["product_id"], "bob", None, "skipped")
    trials.judge(shop, trial.id, "mug", "P1", "bob", 1)
    assert trials.pairs_to_grade(shop, trial.id, "ann").empty
    assert len(trials.pairs_to_grade(shop, trial.id, "bob")) == len(todo) - 2  # the skip is not asked again
    with pytest.raises(ValueError, match="outside the trial's scale 0-3"):
        trials.judge(shop, trial.id, "mug", "P2", "bob", 7)
    progress = trials.progress(shop, trial.id).set_index("grader")
    assert progress.loc["ann", "graded"] == len(todo) and progress.loc["bob", "judged"] == 2

    card = trials.scorecard(shop, trial.id)
    names = [config.name for config in card.configs]
    assert names == ["default v1", "bm25-only v1"] and card.comparison["queries"] == 3
    grades = trials.consensus_grades(shop, trial.id)
    assert grades.set_index(["query", "product_id"]).loc[("mug", "P1"), "grade"] == 2.0  # (3 + 1) / 2
    for config, run in zip(card.configs, trial.runs):  # nDCG as evaluate-search computes it
        gains = graded_qrels(grades, min_grade=0)
        assert config.queries == 3 and 0 <= config.ndcg <= 1 and config.judged == pytest.approx(
            sum(len(run.rankings[q][:10]) for q in gains) / 30)


def test_a_trials_judgments_become_the_active_judgment_list(shop):
    trial = _trial(shop)
    for query, product in trials.pairs_to_grade(shop, trial.id).itertuples(index=False):
        trials.judge(shop, trial.id, query, product, "ann", 2)
    exported = trials.export_judgments(shop, trial.id)
    assert list(exported.columns) == ["query", "product_id", "grade"] and len(exported) > 0
    result = trials.activate_judgments(shop, trial.id, "olga")
    assert active.read(shop).version("judgments") == result.version_ids[0]
    assert result.reports[0].rows_out == len(exported)


def test_bad_trials_and_bad_judgment_files_are_named_and_store_nothing(shop):
    with pytest.raises(LookupError, match="there is no search preset 'nope'"):
        trials.preset_configuration(shop, "nope")
    with pytest.raises(ValueError, match="at least one query"):
        trials.save_query_set(shop, "empty", ["  "], "typed", "olga")
    query_set = trials.save_query_set(shop, "one", ["mug"], "typed", "olga")
    default = trials.preset_configuration(shop, "default")
    with pytest.raises(ValueError, match="at least 2 configurations"):
        trials.create_trial(shop, "alone", query_set, [default, default], "olga")
    trial = _trial(shop)
    with pytest.raises(ValueError, match="exists already"):
        _trial(shop)
    bad_grade = pd.DataFrame({"query": ["mug", "mug"], "product_id": ["P1", "P2"], "grade": [2, 4]})
    with pytest.raises(ValueError, match=r"j.csv, row 3, column grade: grade 4 is outside the trial's scale 0-3"):
        trials.import_judgments(shop, trial.id, bad_grade, "ann", file="j.csv")
    unknown = pd.DataFrame({"query": ["mug", "lamp"], "product_id": ["P1", "P4"], "grade": [2, 1]})
    with pytest.raises(ValueError, match=r"j.csv, row 3, column query: 'lamp' is not a query of the trial"):
        trials.import_judgments(shop, trial.id, unknown, "ann", file="j.csv")
    with pytest.raises(ValueError, match="j.csv has no column\\(s\\) grade"):
        trials.import_judgments(shop, trial.id, unknown.drop(columns="grade"), "ann", file="j.csv")
    assert trials.judgments(shop, trial.id).empty  # nothing of the bad files was kept
    good = pd.DataFrame({"query": ["MUG", "mug"], "product_id": ["P1", "P2"], "grade": [3, 2],
                         "grader": ["hd", ""]})
    assert trials.import_judgments(shop, trial.id, good, "ann", file="j.csv") == 2
    assert sorted(trials.judgments(shop, trial.id)["grader"]) == ["ann", "hd"]


def test_running_a_configuration_again_is_a_new_try_with_its_own_scores(shop):
    trial = _trial(shop)
    for query, product in trials.pairs_to_grade(shop, trial.id).itertuples(index=False):
        trials.judge(shop, trial.id, query, product, "ann", 3 if product == "P1" else 0)
    again = trials.rerun(shop, trial.id, trials.preset_configuration(shop, "bm25-only"), "olga")
    assert again.try_number == 2 and again.label == "bm25-only v1 (try 2)"
    history = trials.history(shop, trial.id)
    assert history[["name", "try"]].values.tolist() == [["default v1", 1], ["bm25-only v1", 1],
                                                        ["bm25-only v1", 2]]
    assert [config.name for config in trials.scorecard(shop, trial.id).configs] == [
        "default v1", "bm25-only v1 (try 2)"]


def test_the_trials_command_line_journey(shop, write, tmp_path):
    queries = write("queries.csv", "query\nred mug\nteapot\n")
    created = recsys("trials", "create", "--name", "cli", "--queries", str(queries), "--preset", "default",
                     "--preset", "bm25-only:1", "--depth", "3", url=shop)
    assert created.returncode == 0, created.stderr
    body = json.loads(created.stdout)
    trial_id = body["trial_id"]
    assert body["configs"] == ["default v1", "bm25-only v1"] and body["queries"] == 2
    pool = json.loads(recsys("trials", "pool", str(trial_id), url=shop).stdout)
    assert len(pool) == body["pairs_to_grade"] > 0 and set(pool[0]) == {"query", "product_id"}
    graded = pd.DataFrame(pool).assign(grade=[3 if row["product_id"] in ("P1", "P3") else 0 for row in pool])
    imported = recsys("judgments", "import", "--trial", str(trial_id), "--file",
                      str(write("grades.csv", graded)), "--grader", "hd", url=shop)
    assert imported.returncode == 0, imported.stderr
    assert json.loads(imported.stdout)["imported"] == len(pool)
    assert json.loads(recsys("trials", "pool", str(trial_id), url=shop).stdout) == []
    scored = json.loads(recsys("trials", "score", str(trial_id), url=shop).stdout)
    assert [config["name"] for config in scored["configs"]] == ["default v1", "bm25-only v1"]
    assert set(scored["configs"][0]) == {"name", "ndcg@10", "precision@10", "judged@10", "queries"}
    assert {"mean_difference", "ci95", "p_value", "wins_a", "wins_b", "ties"} <= set(scored["comparison"])
    out = tmp_path / "judged.csv"
    exported = recsys("judgments", "export", "--trial", str(trial_id), "--out", str(out), url=shop)
    assert exported.returncode == 0, exported.stderr
    ingested = recsys("ingest", "--kind", "judgments", "--file", str(out), url=shop)  # what ingest accepts
    assert ingested.returncode == 0, ingested.stderr
    unknown = recsys("trials", "create", "--name", "x", "--queries", str(queries), "--preset", "default",
                     "--preset", "nope", url=shop)
    assert unknown.returncode == 1 and "there is no search preset 'nope'" in unknown.stderr
    empty = recsys("trials", "create", "--name", "y", "--queries", str(write("none.csv", "query\n")),
                   "--preset", "default", "--preset", "bm25-only", url=shop)
    assert empty.returncode == 1 and "error:" in empty.stderr


def test_side_by_side_preferences_make_a_win_rate(shop):
    trial = _trial(shop)
    seen = []
    while (shown := trials.next_side_by_side(shop, trial.id, "ann")) is not None:
        assert {shown.left.name, shown.right.name} == {"default v1", "bm25-only v1"}
        seen.append(shown.query)
        # ann always picks the BM25-only list, wherever it is shown
        trials.prefer(shop, trial.id, shown.query, "ann", "left" if shown.left.name == "bm25-only v1" else "right")
    assert seen == trial.query_set.queries
    trials.prefer(shop, trial.id, "mug", "bob", "same")
    with pytest.raises(ValueError, match="is not a query of trial"):
        trials.prefer(shop, trial.id, "lamp", "bob", "left")
    result = trials.scorecard(shop, trial.id).side_by_side
    assert (result["first"], result["second"]) == ("default v1", "bm25-only v1")
    assert (result["wins_second"], result["wins_first"], result["same"], result["queries"]) == (3, 0, 1, 3)
    assert result["rate_second"] == 1.0 and result["p_value"] == pytest.approx(0.25)
