"""`embed --engine ray`: a catalog encoded by Ray Data over a pool of encoder actors gives the
local path's vectors (cosine >= 0.999 per title), in the catalog's order and the same folder format.

Ray is the session's local instance with 2 CPUs (`ray_local`); the model is exported once per
session (`encoders`)."""

from __future__ import annotations

import argparse
import json

import pandas as pd
import pytest

from recsys import cluster, embeddings
from tests.conftest import ROOT


def run_embed(argv: list[str], capsys) -> tuple[int, dict | None, str]:
    parser = argparse.ArgumentParser()
    embeddings.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["embed", *argv])
    status = args.func(args)
    captured = capsys.readouterr()
    return status, json.loads(captured.out) if captured.out.strip() else None, captured.err


@pytest.fixture
def titles_file(tmp_path):
    """300 real product titles of the demo data, with ids."""
    titles = (pd.read_parquet(ROOT / "data" / "online_retail.parquet", columns=["Description"])
              ["Description"].dropna().drop_duplicates().head(300))
    path = tmp_path / "titles.csv"
    skus = [f"S{i:03d}" for i in range(len(titles))]
    pd.DataFrame({"sku": skus, "title": titles}).to_csv(path, index=False)
    return path


def test_embed_on_ray_gives_the_local_vectors(encoders, ray_local, titles_file, tmp_path, capsys,
                                               monkeypatch):
    monkeypatch.delenv(cluster.RAY_ADDRESS_ENV, raising=False)
    common = ["--catalog", str(titles_file), "--id-col", "sku", "--text-col", "title"]
    status, here, _ = run_embed([*common, "--out", str(tmp_path / "local")], capsys)
    assert status == 0 and here["engine"] == "local"
    status, there, error = run_embed([*common, "--engine", "ray", "--address", ray_local, "--workers", "2",
                                      "--batch-size", "16", "--out", str(tmp_path / "ray")], capsys)
    assert status == 0, error
    assert there["engine"] == "ray" and there["workers"] == 2 and there["titles"] == 300
    ids, vectors, meta = embeddings.read_embeddings(tmp_path / "ray", None, "onnx-int8")
    local_ids, local_vectors, local_meta = embeddings.read_embeddings(tmp_path / "local", None, "onnx-int8")
    assert ids == local_ids and vectors.shape == local_vectors.shape == (300, 384)
    assert (vectors * local_vectors).sum(axis=1).min() >= 0.999
    same = {"model", "model_fingerprint", "backend", "encoder", "dim", "normalised", "count", "ids", "format"}
    assert {k: v for k, v in meta.to_dict().items() if k in same} == \
        {k: v for k, v in local_meta.to_dict().items() if k in same}


def test_encode_on_ray_refuses_what_cannot_work_before_starting_anything():
    from recsys.ray_embed import encode_on_ray

    with pytest.raises(ValueError, match="GPUs encode with --backend torch; onnx-int8 runs on CPU"):
        encode_on_ray(["LED"], num_gpus=1, address="127.0.0.1:9")
    with pytest.raises(ValueError, match=r"workers \(0\) and batch size \(256\) must be at least 1"):
        encode_on_ray(["LED"], workers=0, address="127.0.0.1:9")
    assert encode_on_ray([], address="127.0.0.1:9").shape == (0, 0)
    with pytest.raises(cluster.ClusterUnavailable, match="cannot reach the Ray cluster at 127.0.0.1:9"):
        encode_on_ray(["LED"], address="127.0.0.1:9")


def test_bad_ray_options_and_an_unreachable_cluster_are_refused(titles_file, tmp_path, capsys):
    common = ["--catalog", str(titles_file), "--id-col", "sku", "--text-col", "title", "--engine", "ray",
              "--out", str(tmp_path / "out")]
    status, out, error = run_embed([*common, "--gpus-per-worker", "1"], capsys)
    assert status == 1 and out is None and "--gpus-per-worker needs --backend torch" in error
    status, out, error = run_embed([*common, "--workers", "0"], capsys)
    assert status == 1 and "--workers must be at least 1" in error
    status, out, error = run_embed([*common, "--address", "127.0.0.1:9"], capsys)
    assert status == 1 and out is None and "cannot reach the Ray cluster at 127.0.0.1:9" in error
    assert not (tmp_path / "out").exists()
