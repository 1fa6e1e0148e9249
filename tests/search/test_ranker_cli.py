"""`python -m recsys train-ranker` and `evaluate-search --ranker`: a search pipeline with a learned
ranker trained and checked from the command line, and clear errors for a ranker that does not fit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from recsys.evaluation.splits import split_judgments
from tests.search.conftest import CATALOG
from tests.search.test_ltr import shop
from tests.search.test_search_cli import JUDGMENTS

ROOT = Path(__file__).resolve().parents[2]
COLUMNS = ("--id-col", "product_id", "--text-col", "title", "--query-col", "query",
           "--item-col", "product_id", "--grade-col", "grade")


def recsys(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "recsys", *args], cwd=ROOT,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"}, capture_output=True, text=True,
                          timeout=600)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The sized-products shop of test_ltr in files, and a ranker trained on it by the command."""
    folder = tmp_path_factory.mktemp("ranker_cli")
    catalog, judgments = shop()
    catalog.to_csv(folder / "products.csv", index=False)
    judgments.to_csv(folder / "judgments.csv", index=False)
    result = recsys("train-ranker", "--catalog", str(folder / "products.csv"), "--judgments",
                    str(folder / "judgments.csv"), *COLUMNS, "--top-n", "20", "--trees", "40",
                    "--out", str(folder / "ranker"))
    return folder, judgments, result


def test_train_ranker_prints_its_figures_and_saves_the_folder(trained):
    folder, judgments, result = trained
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    parts = split_judgments(judgments)
    assert report["queries"] == {part: frame["query"].nunique() for part, frame in parts.items()}
    assert report["trees"] >= 1 and report["top_n"] == 20 and report["train_s"] >= 0
    assert report["val_ndcg@10_after"] >= report["val_ndcg@10_before"]
    assert (folder / "ranker" / "ranker.txt").is_file()
    meta = json.loads((folder / "ranker" / "ranker.json").read_text())
    assert meta["catalog"]["products"] == 96 and meta["embedding_model"]


def test_evaluate_search_with_the_ranker_on_the_test_queries(trained):
    folder, judgments, _ = trained
    common = ("--catalog", str(folder / "products.csv"), "--judgments", str(folder / "judgments.csv"),
              *COLUMNS, "--method", "hybrid", "--part", "test", "--latency-queries", "0")
    plain = recsys("evaluate-search", *common)
    ranked = recsys("evaluate-search", *common, "--ranker", str(folder / "ranker"))
    assert plain.returncode == 0 and ranked.returncode == 0, plain.stderr + ranked.stderr
    before, after = json.loads(plain.stdout), json.loads(ranked.stdout)
    assert before["queries"] == after["queries"] == split_judgments(judgments)["test"]["query"].nunique()
    assert after["part"] == "test" and after["fusion"]["reranker"] == str(folder / "ranker")
    assert after["fusion"]["rerank_top"] == 20  # as many as it was trained to order
    # BM25 in the default fusion already tells the sizes apart here; the ranker keeps that.
    assert after["ndcg@10"] >= before["ndcg@10"] > 0.9


def test_a_ranker_that_does_not_fit_is_refused_by_name(trained, tmp_path, write):
    folder, _, _ = trained
    args = ("--judgments", str(folder / "judgments.csv"), "--query-col", "query", "--item-col", "product_id",
            "--grade-col", "grade", "--method", "hybrid", "--latency-queries", "0")
    empty = tmp_path / "empty"
    empty.mkdir()
    result = recsys("evaluate-search", "--catalog", str(folder / "products.csv"), "--id-col", "product_id",
                    "--text-col", "title", *args, "--ranker", str(empty))
    assert result.returncode == 1 and f"{empty} holds no reranker" in result.stderr
    # Another catalog, with judgments of its own products.
    other = write("other.csv", CATALOG)
    judged = write("other_judgments.csv", JUDGMENTS.rename(columns={"product_uid": "product_id",
                                                                   "relevance": "grade"}))
    result = recsys("evaluate-search", "--catalog", str(other), "--id-col", "product_id",
                    "--text-col", "title", *args[2:], "--judgments", str(judged),
                    "--ranker", str(folder / "ranker"))
    assert result.returncode == 1, result.stdout
    assert "trained over another catalog" in result.stderr and "Traceback" not in result.stderr
    # Another embedding model than the one it read.
    moved = tmp_path / "moved"
    moved.mkdir()
    for name in ("ranker.txt", "ranker.json"):
        (moved / name).write_bytes((folder / "ranker" / name).read_bytes())
    meta = json.loads((moved / "ranker.json").read_text())
    (moved / "ranker.json").write_text(json.dumps({**meta, "embedding_model": "0123456789abcdef",
                                                   "embedding_model_path": "models/other"}))
    result = recsys("evaluate-search", "--catalog", str(folder / "products.csv"), "--id-col", "product_id",
                    "--text-col", "title", *args, "--ranker", str(moved))
    assert result.returncode == 1 and "trained over another embedding model (models/other)" in result.stderr


def test_train_ranker_refuses_too_few_queries(write):
    catalog, judgments = shop()
    few = judgments[judgments["query"] == judgments["query"].iloc[0]]
    result = recsys("train-ranker", "--catalog", str(write("p.csv", catalog)), "--judgments",
                    str(write("j.csv", few)), *COLUMNS, "--out", "unused")
    assert result.returncode == 1 and "too few to split" in result.stderr and "Traceback" not in result.stderr
