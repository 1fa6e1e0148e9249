"""`python -m recsys evaluate-recs` and `tune`: one JSON document on stdout, messages without tracebacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from recsys.evaluation.recs_cli import InputError, read_interactions
from recsys.evaluation.tuning import search_space_of
from recsys.recommenders import get, names
from tests.conftest import ROOT

KEYS = {"algo", "users", "ndcg@10", "precision@10", "recall@10", "map@10", "coverage@10", "fit_s",
        "recommend_ms_p50", "recommend_ms_p95"}


def recsys(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "recsys", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"})


@pytest.fixture
def udata(tmp_path):
    """A MovieLens-style u.data: user, item, rating, Unix time; tab-separated, no header."""
    rng = np.random.default_rng(0)
    lines = [f"{user}\t{item}\t{rng.integers(1, 6)}\t{881250000 + 1000 * user + 10 * item}"
             for user in range(1, 31) for item in rng.choice(np.arange(1, 41), size=8, replace=False)]
    path = tmp_path / "u.data"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_udata_file_evaluates_to_one_json_object(udata):
    result = recsys("evaluate-recs", "--interactions", str(udata), "--sep", "\\t", "--user-col", "0",
                    "--item-col", "1", "--rating-col", "2", "--time-col", "3", "--split", "temporal",
                    "--algo", "popularity")
    assert result.returncode == 0, result.stderr
    output = json.loads(result.stdout)  # the whole of stdout is the document
    assert KEYS <= set(output) and output["algo"] == "popularity"
    assert output["users"] == 30 and output["test_pairs"] == 30  # one latest product per user
    assert output["split"]["kind"] == "temporal"
    assert "without a header row" in result.stderr and "popularity: fitted" in result.stderr


def test_algo_list_and_algo_all(tmp_path):
    listed = recsys("evaluate-recs", "--algo", "list")
    assert listed.returncode == 0, listed.stderr
    names = json.loads(listed.stdout)
    assert "popularity" in names

    rng = np.random.default_rng(1)
    frame = pd.DataFrame([(f"c{u}", f"P{p}") for u in range(25) for p in rng.choice(30, 6, replace=False)],
                         columns=["customer", "sku"])
    path = tmp_path / "orders.csv"
    frame.to_csv(path, index=False)
    result = recsys("evaluate-recs", "--interactions", str(path), "--user-col", "customer", "--item-col",
                    "sku", "--k", "5", "--algo", "all", "--latency-users", "5")
    assert result.returncode == 0, result.stderr
    results = json.loads(result.stdout)
    assert isinstance(results, list) and "popularity" in [r["algo"] for r in results]
    assert all("ndcg@5" in r for r in results)
    needs_catalog = [name for name in names if name not in {r["algo"] for r in results}]
    for name in needs_catalog:
        assert f"skipping {name}" in result.stderr


def test_tune_prints_the_search_and_writes_it(udata, tmp_path):
    tunable = [name for name in names() if search_space_of(get(name))
               and not hasattr(get(name), "surprise_algorithm")]
    if not tunable:
        pytest.skip("no registered algorithm declares a search_space")
    out = tmp_path / "tuned.json"
    result = recsys("tune", "--interactions", str(udata), "--no-header", "--sep", "tab", "--user-col", "0",
                    "--item-col", "1", "--algo", tunable[0], "--split", "stratified", "--k", "5",
                    "--max-configs", "2", "--out", str(out))
    assert result.returncode == 0, result.stderr
    output = json.loads(result.stdout)
    assert output["algo"] == tunable[0] and output["file"] == "u.data" and len(output["tried"]) == 2
    assert output["best"]["scores"]["ndcg@5"] == max(t["scores"]["ndcg@5"] for t in output["tried"])
    assert set(output["test"]) == {"best", "default"}
    assert json.loads(out.read_text())["best"] == output["best"]


def test_an_algorithm_without_a_search_space_is_left_untuned(udata):
    result = recsys("tune", "--interactions", str(udata), "--no-header", "--user-col", "0",
                    "--item-col", "1", "--algo", "popularity")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["tuned"] is False and "no search_space" in result.stderr


@pytest.mark.parametrize("args, expected", [
    (["--user-col", "nope"], "u.data: has no column 'nope' (given as --user-col)"),
    (["--algo", "magic"], "unknown algorithm 'magic'"),
    (["--split", "time"], "the time split needs a timestamp"),
])
def test_bad_input_exits_1_with_a_message(udata, args, expected):
    base = {"--user-col": "0", "--item-col": "1", "--algo": "popularity", "--no-header": None,
            "--sep": "\\t"}
    options = dict(base)
    options.update(dict(zip(args[::2], args[1::2])))
    argv = [part for key, value in options.items() for part in ([key] if value is None else [key, value])]
    result = recsys("evaluate-recs", "--interactions", str(udata), *argv)
    assert result.returncode == 1
    assert expected in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_a_missing_file_is_named(tmp_path):
    result = recsys("evaluate-recs", "--interactions", str(tmp_path / "gone.csv"), "--algo", "popularity")
    assert result.returncode == 1 and "gone.csv" in result.stderr and "cannot be opened" in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_read_interactions_weights_ratings_and_times(tmp_path):
    path = tmp_path / "ratings.csv"
    path.write_text("u,i,r,t\na,x,4,1700000000\na,x,2,1700000100\nb,y,5,1700000200\n")
    frame = read_interactions(path, user_col="u", item_col="i", rating_col="r", time_col="t")
    assert frame["weight"].tolist() == [4.0, 2.0, 5.0] and frame["rating"].tolist() == [4.0, 2.0, 5.0]
    assert frame["timestamp"].iloc[0] == pd.Timestamp("2023-11-14 22:13:20")
    assert read_interactions(path, user_col="u", item_col="i")["weight"].tolist() == [1.0, 1.0, 1.0]
    path.write_text("u,i,r\na,x,4\nb,y,five\n")
    with pytest.raises(InputError, match=r"ratings.csv, row 2, column 'r': is not a number \(value 'five'\)"):
        read_interactions(path, user_col="u", item_col="i", rating_col="r")
