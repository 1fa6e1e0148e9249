"""`python -m recsys evaluate-search`: one JSON object on stdout, clear errors on bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.search.conftest import CATALOG

ROOT = Path(__file__).resolve().parents[2]

JUDGMENTS = pd.DataFrame(
    [("red mug", "P01", 3.0), ("red mug", "P02", 2.0), ("red mug", "P05", 1.0),
     ("garden chair", "P05", 3.0), ("garden chair", "P06", 2.33), ("garden chair", "P09", 1.0),
     ("cordless drill", "P09", 3.0), ("cordless drill", "P10", 1.0)],
    columns=["query", "product_uid", "relevance"])
KEYS = {"method", "queries", "ndcg@10", "recall@100", "rerank_ndcg@10", "latency_ms_p50",
        "latency_ms_p95"}


def evaluate_search(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "recsys", "evaluate-search", *args], cwd=ROOT,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"}, capture_output=True, text=True,
                          timeout=300)


@pytest.fixture
def files(write):
    """The tiny catalog and judgments, written with Home Depot's column names."""
    products = CATALOG.rename(columns={"product_id": "product_uid", "title": "product_title"})
    return {"catalog": write("products.csv", products[["product_uid", "product_title"]]),
            "judgments": write("judgments.csv", JUDGMENTS),
            "catalog_parquet": write("products.parquet", products),
            "judgments_tsv": write("judgments.tsv", JUDGMENTS)}


def test_bm25_prints_one_json_object(files):
    result = evaluate_search("--catalog", str(files["catalog"]), "--judgments", str(files["judgments"]),
                             "--method", "bm25", "--k", "10")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert KEYS <= set(report) and report["method"] == "bm25" and report["queries"] == 3
    # Every query's best product is found first, and every relevant one is found.
    assert report["ndcg@10"] == pytest.approx(1.0) and report["recall@100"] == 1.0
    assert report["rerank_ndcg@10"] == pytest.approx(1.0)
    assert 0 < report["latency_ms_p50"] <= report["latency_ms_p95"]
    assert "Traceback" not in result.stderr


def test_hybrid_reads_parquet_and_tsv(files):
    result = evaluate_search("--catalog", str(files["catalog_parquet"]), "--id-col", "product_uid",
                             "--text-col", "product_title", "--judgments", str(files["judgments_tsv"]),
                             "--query-col", "query", "--item-col", "product_uid",
                             "--grade-col", "relevance", "--method", "hybrid",
                             "--latency-queries", "3")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1
    report = json.loads(lines[0])
    assert report["method"] == "hybrid" and report["ndcg@10"] > 0.9


@pytest.mark.parametrize("change, expected", [
    ({"--text-col": "name"}, "products.csv: the catalog file has no column 'name'"),
    ({"--grade-col": "score"}, "judgments.csv: the judgments file has no column 'score'"),
    ({"--catalog": "missing.csv"}, "the catalog file missing.csv does not exist"),
    ({"--model": "no-such-model"}, "the model folder no-such-model does not exist"),
    ({"--k": "0"}, "--k must be a positive number"),
])
def test_bad_input_exits_1_with_a_message(files, change, expected):
    args = {"--catalog": str(files["catalog"]), "--judgments": str(files["judgments"]),
            "--method": "semantic", **change}
    result = evaluate_search(*[part for pair in args.items() for part in pair])
    assert result.returncode == 1
    assert expected in result.stderr, result.stderr
    assert result.stdout == "" and "Traceback" not in result.stderr


def test_grades_must_be_numbers(files, write):
    bad = write("bad.csv", JUDGMENTS.assign(relevance=["3", "2", "high", "3", "2", "1", "3", "1"]))
    result = evaluate_search("--catalog", str(files["catalog"]), "--judgments", str(bad),
                             "--method", "bm25")
    assert result.returncode == 1 and result.stdout == ""
    assert "bad.csv, row 3, column 'relevance': is not a number (value 'high')" in result.stderr
