"""Batch encoding whose result for a text does not depend on its batch-mates, the embedding folder
format (`recsys.embeddings`) and the `embed` command.

The model is exported once per session into a temporary folder; nothing is written under var/.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

from recsys import embeddings

# Texts of very different token lengths, so a batch of them pads the short ones a lot.
BATCH_MATES = [
    "1/2 in. x 10 ft. Type L copper pipe, ½\" élbow, lead-free, for potable water lines",
    "LED",
    "stainless steel electric kettle with automatic shut-off and blue LED light " * 12,
    "Oak garden chair",
    "-",
]
PROBE = "cordless drill"


def alone_and_in_batch(encoder) -> tuple[np.ndarray, np.ndarray]:
    alone = encoder.encode([PROBE])[0]
    in_batch = encoder.encode(BATCH_MATES[:2] + [PROBE] + BATCH_MATES[2:])[2]
    return alone, in_batch


def assert_same_embeddings(a: np.ndarray, b: np.ndarray) -> None:
    """Equal up to float rounding: what other shapes of batch may change in the fp32 parts."""
    a, b = np.atleast_2d(a), np.atleast_2d(b)
    assert (a * b).sum(axis=1).min() > 1 - 1e-6
    np.testing.assert_allclose(a, b, atol=1e-5)


@pytest.mark.parametrize("precision", ["int8", "fp32"])
def test_embedding_is_the_same_alone_and_in_a_batch(encoders, precision):
    alone, in_batch = alone_and_in_batch(encoders[precision])
    assert_same_embeddings(alone, in_batch)
    # One text runs on its own one-thread session, batches on the pool.
    encoder = encoders[precision]
    assert encoder.one_text_session.get_session_options().intra_op_num_threads == 1
    assert encoder.one_text_session is not encoder.session
    # And in batches of another size: every text as it is alone.
    texts = BATCH_MATES + [PROBE]
    batched = encoders[precision].encode(texts, batch_size=4)
    assert_same_embeddings(batched, np.vstack([encoders[precision].encode([t]) for t in texts]))


def test_per_tensor_int8_would_fail_the_batch_check(encoders, tmp_path):
    # The scheme replaced (one activation scale per tensor) is what the check above catches.
    import onnxruntime

    from recsys.onnx_encoder import FILE_NAMES, _quantize_int8

    per_tensor = tmp_path / "per-tensor.onnx"
    _quantize_int8(encoders["fp32"].path, per_tensor, per_row=False)
    encoder = encoders["int8"]
    per_row_session = encoder.session
    try:
        encoder.session = onnxruntime.InferenceSession(str(per_tensor), providers=["CPUExecutionProvider"])
        alone, in_batch = alone_and_in_batch(encoder)
    finally:
        encoder.session = per_row_session
    with pytest.raises(AssertionError):
        assert_same_embeddings(alone, in_batch)
    assert encoder.path.name == FILE_NAMES["int8"] == "model-int8-rows.onnx"


@pytest.mark.parametrize("precision", ["int8", "fp32"])
def test_a_query_is_encoded_the_same_alone_and_among_queries(encoders, precision):
    encoder = encoders[precision]
    queries = BATCH_MATES[:2] + [PROBE] + BATCH_MATES[2:]
    together = encoder.encode_queries(queries)
    # Exactly: each query runs alone on the same session, whatever comes with it.
    np.testing.assert_array_equal(together[2], encoder.encode_queries([PROBE])[0])
    np.testing.assert_allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)
    assert encoder.query_session.get_session_options().intra_op_num_threads == 1
    # Many queries run in threads, each still alone.
    from recsys.onnx_encoder import QUERIES_IN_THREADS

    many = [f"{PROBE} {i}" for i in range(QUERIES_IN_THREADS + 6)]
    in_threads = encoder.encode_queries(many)
    for row in (0, 37, len(many) - 1):
        np.testing.assert_array_equal(in_threads[row], encoder.encode_queries([many[row]])[0])
    close_to_fp32 = (together * encoders["fp32"].encode(queries)).sum(axis=1)
    assert close_to_fp32.min() > 0.98
    if precision == "fp32":   # one graph for both: the query is the text's embedding
        assert encoder.query_session is encoder.one_text_session
        assert_same_embeddings(together, encoder.encode(queries))
    else:                     # per text, not per row: another graph, near but not equal
        from recsys.onnx_encoder import ALONE_FILE_NAMES

        assert encoder.query_session is not encoder.one_text_session
        assert encoder.query_session._model_path.endswith(ALONE_FILE_NAMES["int8"])
        assert not np.allclose(together, encoder.encode(queries), atol=1e-5)


def test_per_row_int8_stays_close_to_fp32(encoders):
    texts = BATCH_MATES + [PROBE]
    int8, fp32 = encoders["int8"].encode(texts), encoders["fp32"].encode(texts)
    np.testing.assert_allclose(np.linalg.norm(int8, axis=1), 1.0, atol=1e-5)
    assert (int8 * fp32).sum(axis=1).min() > 0.98   # "-" is the farthest, at 0.987


def run_embed(argv: list[str], capsys) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser()
    embeddings.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["embed", *argv])
    status = args.func(args)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.fixture
def catalog_file(tmp_path):
    path = tmp_path / "catalog.csv"
    path.write_text('sku,name,price\nA1,cordless drill,99\nB2,"Oak garden chair, teak oil",45\n'
                    "C3,LED,3\n")
    return path


def test_embed_command_writes_the_documented_format(encoders, catalog_file, tmp_path, capsys):
    out = tmp_path / "embedded"
    status, stdout, _ = run_embed(["--catalog", str(catalog_file), "--id-col", "sku", "--text-col", "name",
                                   "--out", str(out)], capsys)
    assert status == 0
    result = json.loads(stdout)
    assert result["titles"] == 3 and result["titles_per_s"] > 0 and result["seconds"] >= 0
    assert sorted(p.name for p in out.iterdir()) == ["embeddings.npy", "ids.json", "meta.json"]
    vectors = np.load(out / "embeddings.npy")
    assert vectors.dtype == np.float32 and vectors.shape == (3, 384)
    assert json.loads((out / "ids.json").read_text()) == ["A1", "B2", "C3"]
    meta = json.loads((out / "meta.json").read_text())
    assert meta["backend"] == "onnx-int8" and meta["dim"] == 384 and meta["count"] == 3
    assert meta["normalised"] is True and meta["format"] == "recsys-embeddings/1"
    assert meta["model_fingerprint"] == embeddings.model_fingerprint() == result["model_fingerprint"]
    assert "per row" in meta["encoder"] and meta["created"].endswith("+00:00")
    np.testing.assert_array_equal(vectors, encoders["int8"].encode(
        ["cordless drill", "Oak garden chair, teak oil", "LED"]))
    ids, read_vectors, read_meta = embeddings.read_embeddings(out, None, "onnx-int8")
    assert ids == ["A1", "B2", "C3"] and read_meta.to_dict() == meta
    np.testing.assert_array_equal(read_vectors, vectors)


def test_embeddings_of_another_model_or_backend_are_refused(encoders, tmp_path):
    folder = tmp_path / "embedded"
    vectors = encoders["int8"].encode(["cordless drill"])
    meta = embeddings.EmbeddingsMeta.describe(None, "onnx-int8", 1, 384, "sku")
    embeddings.write_embeddings(folder, ["A1"], vectors, meta)
    other_model = tmp_path / "other-model"
    other_model.mkdir()
    (other_model / "model.safetensors").write_bytes(b"other weights")
    with pytest.raises(embeddings.EmbeddingsMismatch, match="holds embeddings of another model"):
        embeddings.read_embeddings(folder, other_model, "onnx-int8")
    with pytest.raises(embeddings.EmbeddingsMismatch, match="made by onnx-int8 .* not by onnx-fp32"):
        embeddings.read_embeddings(folder, None, "onnx-fp32")
    # Torn files: the counts disagree.
    np.save(folder / "embeddings.npy", np.vstack([vectors, vectors]))
    with pytest.raises(embeddings.EmbeddingsMismatch, match="but meta.json says 1 x 384"):
        embeddings.read_embeddings(folder, None, "onnx-int8")


def test_cache_of_another_model_is_encoded_again_not_served(encoders, tmp_path):
    texts = ["Red ceramic coffee mug", "20-Volt cordless drill"]
    folder = tmp_path / f"{embeddings.model_identity()}-onnx-int8"
    stale = embeddings.EmbeddingsMeta.describe(None, "onnx-int8", 2, 384, embeddings.CACHE_IDS)
    keys = [embeddings.hashlib.sha1(t.encode()).hexdigest() for t in texts]
    other_model = embeddings.EmbeddingsMeta(**{**stale.to_dict(), "model_fingerprint": "0" * 16})
    embeddings.write_embeddings(folder, keys, np.zeros((2, 384), np.float32), other_model)
    vectors = embeddings.cached_encode(texts, cache_dir=tmp_path, backend="onnx-int8")
    np.testing.assert_array_equal(vectors, encoders["int8"].encode(texts))
    assert embeddings.read_embeddings(folder, None, "onnx-int8")[2].model_fingerprint \
        == embeddings.model_fingerprint()


@pytest.mark.parametrize("argv, message", [
    (["--id-col", "id", "--text-col", "name"], "has no column 'id' (given as --id-col); its columns are "
                                               "'sku', 'name', 'price'"),
    (["--id-col", "sku", "--text-col", "title"], "has no column 'title' (given as --text-col)"),
])
def test_embed_command_names_the_missing_column(catalog_file, tmp_path, capsys, argv, message):
    status, stdout, stderr = run_embed(["--catalog", str(catalog_file), *argv, "--out", str(tmp_path / "o")],
                                       capsys)
    assert status == 1 and stdout == ""
    assert str(catalog_file) in stderr and message in stderr
    assert not (tmp_path / "o").exists()


def test_embed_command_names_an_unreadable_catalog_and_repeated_ids(tmp_path, capsys):
    missing = tmp_path / "nowhere.csv"
    status, stdout, stderr = run_embed(["--catalog", str(missing), "--id-col", "sku", "--text-col", "name",
                                        "--out", str(tmp_path / "o")], capsys)
    assert status == 1 and stdout == "" and f"cannot read the catalog {missing}" in stderr
    repeated = tmp_path / "repeated.csv"
    repeated.write_text("sku,name\nA1,drill\nB2,chair\nA1,mug\n")
    status, _, stderr = run_embed(["--catalog", str(repeated), "--id-col", "sku", "--text-col", "name",
                                   "--out", str(tmp_path / "o")], capsys)
    assert status == 1 and "'A1' on lines 2 and 4" in stderr
