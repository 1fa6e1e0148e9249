"""The embedding model exported to ONNX: same embeddings as PyTorch (fp32), close ones (int8),
the backend choice of the semantic retriever, the per-backend cache and the export command.

The model is exported once per session into a temporary folder (about 10 s with the int8
variant); nothing is written under var/.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest

from recsys import embeddings
from recsys.search import get
from recsys.timing import StageTimer
from tests.search.conftest import CATALOG, KNOWN_ANSWERS

TEXTS = [
    "cordless drill",
    "1/2 in. x 10 ft. Type L copper pipe, ½\" élbow",
    "Oak garden chair",
    # Far over the model's 256 tokens: truncated the same way on both sides.
    "stainless steel electric kettle with automatic shut-off and blue LED light " * 40,
    "-",
    " ",
    "LED",
]


@pytest.fixture(scope="session")
def torch_vectors():
    return embeddings.encode(TEXTS)


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def test_fp32_embeddings_equal_pytorch(encoders, torch_vectors):
    vectors = encoders["fp32"].encode(TEXTS)
    assert vectors.shape == torch_vectors.shape == (len(TEXTS), 384)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert cosines(vectors, torch_vectors).min() > 0.9999


def test_batching_does_not_change_embeddings(encoders):
    # Batches of 2 pad differently from one batch of all: the mask must make that invisible.
    one_batch = encoders["fp32"].encode(TEXTS)
    small_batches = encoders["fp32"].encode(TEXTS, batch_size=2)
    assert cosines(one_batch, small_batches).min() > 0.9999
    assert encoders["fp32"].encode([]).shape == (0, 384)


def test_int8_embeddings_are_close(encoders, torch_vectors):
    vectors = encoders["int8"].encode(TEXTS)
    assert vectors.shape == torch_vectors.shape and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert cosines(vectors, torch_vectors).min() > 0.9
    assert encoders["int8"].path.stat().st_size < encoders["fp32"].path.stat().st_size / 3


def test_exports_are_reused_and_leave_no_temporary_files(encoders, onnx_dir):
    from recsys.onnx_encoder import export

    path = encoders["fp32"].path
    assert path.parent.parent == onnx_dir
    written = path.stat().st_mtime_ns
    assert export(None, "fp32") == path and path.stat().st_mtime_ns == written
    # The queries' graph is there once a query was encoded (other tests may have), nothing else.
    names = {p.name for p in path.parent.iterdir()}
    assert {"model-fp32.onnx", "model-int8-rows.onnx"} <= names
    assert names <= {"model-fp32.onnx", "model-int8-rows.onnx", "model-int8-text.onnx"}


def test_the_tokenizer_settings_travel_in_the_export(encoders):
    model = embeddings.load_model()
    for encoder in encoders.values():
        assert encoder.max_seq_length == model.max_seq_length == 256
        assert encoder.input_names == ["input_ids", "attention_mask", "token_type_ids"]


@pytest.mark.parametrize("backend", ["onnx-fp32", "onnx-int8"])
def test_semantic_retriever_on_onnx_ranks_as_on_torch(encoders, backend):
    torch_retriever = get("semantic")().fit(CATALOG)
    onnx_retriever = get("semantic")(backend=backend).fit(CATALOG)
    for query, expected in KNOWN_ANSWERS:
        hits = onnx_retriever.search(query, k=3)
        assert hits[0].product_id == expected
        if backend == "onnx-fp32":
            reference = torch_retriever.search(query, k=3)
            assert [h.product_id for h in hits] == [h.product_id for h in reference]
            np.testing.assert_allclose([h.score for h in hits], [h.score for h in reference],
                                       atol=1e-4)


def test_the_semantic_retriever_encodes_each_query_on_the_queries_graph(encoders):
    # int8: a search and an evaluation's search_many read the same vector for a query, the one
    # the queries' own graph gives, not the products' per-row one.
    retriever = get("semantic")(backend="onnx-int8").fit(CATALOG)
    queries = [query for query, _ in KNOWN_ANSWERS]
    vectors = retriever.encode_queries(queries)
    np.testing.assert_array_equal(vectors, encoders["int8"].encode_queries(queries))
    assert not np.allclose(vectors, encoders["int8"].encode(queries), atol=1e-5)
    alone = retriever.search(queries[0], k=3)
    among = retriever.search_many(queries, k=3)[0]
    # The same vector; the scan's matrix product over one row or several rounds differently.
    assert [h.product_id for h in alone] == [h.product_id for h in among]
    np.testing.assert_allclose([h.score for h in alone], [h.score for h in among], atol=1e-6)


def test_hybrid_passes_the_backend_to_its_semantic_source(encoders):
    hybrid = get("hybrid")(source_configs={"semantic": {"backend": "onnx-fp32"}}).fit(CATALOG)
    semantic = next(source for source in hybrid.sources if source.name == "semantic")
    assert semantic.config.backend == "onnx-fp32"
    assert hybrid.search("red mug", k=1)[0].product_id == "P01"


@pytest.mark.parametrize("backend", ["torch", "onnx-fp32"])
def test_query_encoding_is_timed_as_a_stage(encoders, backend):
    retriever = get("semantic")(backend=backend).fit(CATALOG)
    with StageTimer() as timer:
        retriever.search("garden chair", k=2)
    assert timer.ms["encode"] > 0


def test_unknown_backend_is_refused_clearly():
    with pytest.raises(ValueError, match="unknown embedding backend 'tensorrt'; choose one of "
                                         "torch, onnx-fp32, onnx-int8"):
        get("semantic")(backend="tensorrt")
    with pytest.raises(ValueError, match="unknown embedding backend"):
        get("semantic").Config.from_dict({"backend": "onnx"})
    with pytest.raises(ValueError, match="unknown embedding backend"):
        embeddings.encode(["mug"], backend="onnx-fp16")
    from recsys.onnx_encoder import export

    with pytest.raises(ValueError, match="unknown ONNX precision 'fp16'"):
        export(None, "fp16")


def test_semantic_config_round_trips_with_its_backend():
    config = get("semantic")(backend="onnx-int8").config
    assert get("semantic").Config.from_dict(json.loads(json.dumps(config.to_dict()))) == config


def test_embedding_cache_is_kept_per_backend(encoders, tmp_path):
    texts = ["Red ceramic coffee mug", "20-Volt cordless drill"]
    torch_vectors = embeddings.cached_encode(texts, cache_dir=tmp_path)
    int8_vectors = embeddings.cached_encode(texts, cache_dir=tmp_path, backend="onnx-int8")
    identity = embeddings.model_identity()
    assert sorted(p.name for p in tmp_path.iterdir()) == [identity, f"{identity}-onnx-int8"]
    np.testing.assert_array_equal(int8_vectors, encoders["int8"].encode(texts))
    assert not np.allclose(int8_vectors, torch_vectors, atol=1e-4)
    # Read back from its own files, not from torch's.
    np.testing.assert_array_equal(
        embeddings.cached_encode(texts, cache_dir=tmp_path, backend="onnx-int8"), int8_vectors)


def test_export_command_prints_paths_and_sizes(encoders, capsys):
    from recsys import onnx_encoder

    parser = argparse.ArgumentParser()
    onnx_encoder.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["export-onnx", "--int8"])
    assert args.func(args) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["fp32"]["path"] == str(encoders["fp32"].path)
    assert result["int8"]["reused"] is True
    assert result["int8"]["bytes"] == encoders["int8"].path.stat().st_size
    # And the queries' graph: per-tensor int8, next to the others.
    assert result["int8-text"]["path"] == str(encoders["int8"].path.with_name("model-int8-text.onnx"))
    assert result["int8-text"]["bytes"] > 0


def test_export_command_names_a_missing_model_folder(tmp_path, capsys):
    from recsys import onnx_encoder

    parser = argparse.ArgumentParser()
    onnx_encoder.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["export-onnx", "--model", str(tmp_path / "nowhere")])
    assert args.func(args) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and "does not exist" in captured.err


def _quantize_after(barrier, source: str, target: str, failures) -> None:
    from recsys.onnx_encoder import _quantize_int8

    barrier.wait()
    try:
        _quantize_int8(Path(source), Path(target))
    except Exception as error:  # reported to the test process, which fails with it
        failures.put(repr(error))


def test_processes_quantising_one_export_at_once_all_succeed(encoders, tmp_path):
    """Two replicas starting on one artifact folder quantise the same fp32 export at once; the
    quantiser's shape-inferred copy beside its input used to be deleted under the other's feet."""
    import multiprocessing

    folder = tmp_path / "shared"
    folder.mkdir()
    source = folder / "model-fp32.onnx"
    source.write_bytes(encoders["fp32"].path.read_bytes())
    target = folder / "model-int8-rows.onnx"
    context = multiprocessing.get_context("fork")
    barrier, failures = context.Barrier(3), context.Queue()
    processes = [context.Process(target=_quantize_after, args=(barrier, str(source), str(target), failures))
                 for _ in range(3)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=300)
    errors = []
    while not failures.empty():
        errors.append(failures.get())
    assert errors == [] and all(process.exitcode == 0 for process in processes)
    assert sorted(p.name for p in folder.iterdir()) == ["model-fp32.onnx", "model-int8-rows.onnx"]
    assert target.stat().st_size < source.stat().st_size / 3
