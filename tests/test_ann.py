"""The nearest-neighbour indexes of `recsys.ann`: the choice by size, recall against the exact scan,
persistence, refused parameters, and the index's parameters kept by a search preset."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from recsys.ann import IndexConfig, NearestIndex, build_index, legacy_index_params

DIM = 32
# Small cells and codes for 3,000 vectors: 16 cells, 12 of them scanned, 16 codes of 6 bits.
IVFPQ = {"kind": "ivfpq", "ivf_nlist": 16, "ivf_nprobe": 12, "pq_m": 16, "pq_bits": 6, "refine_factor": 8}


def unit(rows: int, seed: int) -> np.ndarray:
    vectors = np.random.default_rng(seed).normal(size=(rows, DIM)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """faiss on one thread: its OpenMP pool on a busy two-core machine made an IVF-PQ build 10x slower."""
    import faiss

    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(before)


@pytest.fixture(scope="module")
def vectors() -> np.ndarray:
    return unit(3000, seed=0)


@pytest.fixture(scope="module")
def queries() -> np.ndarray:
    return unit(50, seed=1)


def exact_top(vectors: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    return np.argsort(-(queries @ vectors.T), axis=1, kind="stable")[:, :k]


def recall(found: np.ndarray, exact: np.ndarray) -> float:
    return float(np.mean([len(set(a) & set(b)) / len(b) for a, b in zip(found, exact)]))


def test_auto_chooses_the_index_by_the_number_of_vectors():
    config = IndexConfig(hnsw_threshold=50, ivfpq_threshold=200, pq_m=4, pq_bits=4)
    assert [config.chosen_kind(n) for n in (49, 50, 199, 200)] == ["exact", "hnsw", "hnsw", "ivfpq"]
    assert [build_index(unit(n, seed=n), config).kind for n in (49, 50, 200)] == ["exact", "hnsw", "ivfpq"]
    never = IndexConfig(hnsw_threshold=0, ivfpq_threshold=0)
    assert never.chosen_kind(10**7) == "exact"
    assert IndexConfig(kind="hnsw").chosen_kind(3) == "hnsw"  # an explicit kind, whatever the size
    assert IndexConfig().chosen_kind(54_667) == "hnsw" and IndexConfig().chosen_kind(19_999) == "exact"


@pytest.mark.parametrize("params, least", [({"kind": "exact"}, 1.0), ({"kind": "hnsw"}, 0.9),
                                           (IVFPQ, 0.9)])
def test_each_kind_finds_the_exact_neighbours_with_exact_scores(vectors, queries, params, least):
    index = build_index(vectors, params)
    scores, found = index.search(queries, 10)
    assert index.kind == params["kind"] and len(index) == len(vectors)
    assert recall(found, exact_top(vectors, queries, 10)) >= least
    # the scores are the exact cosines of the vectors found, best first
    assert np.allclose(scores, np.einsum("qkd,qd->qk", vectors[found], queries), atol=1e-5)
    assert (np.diff(scores, axis=1) <= 1e-6).all()
    assert np.allclose(index.vectors(found[0]), vectors[found[0]], atol=1e-6)


def test_ivfpq_without_refining_keeps_the_codes_estimates(vectors, queries):
    refined = build_index(vectors, IVFPQ)
    estimated = build_index(vectors, {**IVFPQ, "refine_factor": 0})
    scores, found = estimated.search(queries, 10)
    exact_scores = np.einsum("qkd,qd->qk", vectors[found], queries)
    assert not np.allclose(scores, exact_scores, atol=1e-4)  # estimates, not cosines
    assert estimated.nbytes() < refined.nbytes() / 4  # the vectors are not stored
    assert recall(refined.search(queries, 10)[1], exact_top(vectors, queries, 10)) > recall(
        found, exact_top(vectors, queries, 10))


def test_search_parameters_trade_speed_for_recall(vectors, queries):
    exact = exact_top(vectors, queries, 10)
    one_cell = NearestIndex.build(vectors, IndexConfig(**{**IVFPQ, "ivf_nprobe": 1}))
    narrow = recall(one_cell.search(queries, 10)[1], exact)
    one_cell.config = IndexConfig(**{**IVFPQ, "ivf_nprobe": 16})  # every cell: as good as the codes allow
    assert recall(one_cell.search(queries, 10)[1], exact) > narrow + 0.2


@pytest.mark.parametrize("params", [{"kind": "exact"}, {"kind": "hnsw", "hnsw_ef_search": 20}, IVFPQ,
                                    {**IVFPQ, "refine_factor": 0}])
def test_a_saved_index_loads_with_the_same_results(vectors, queries, params, tmp_path):
    index = build_index(vectors, params)
    index.save(tmp_path / "index.faiss")
    loaded = NearestIndex.load(tmp_path / "index.faiss", index.config)
    assert loaded.kind == index.kind and len(loaded) == len(index)
    before, after = index.search(queries, 10), loaded.search(queries, 10)
    assert np.array_equal(before[1], after[1]) and np.allclose(before[0], after[0])
    assert np.allclose(loaded.vectors(np.arange(5)), index.vectors(np.arange(5)))


@pytest.mark.parametrize("params, named", [
    ({"kind": "annoy"}, "unknown index kind 'annoy'"),
    ({"hnsw_m": 1}, "hnsw_m must be a whole number of 2 or more"),
    ({"hnsw_ef_search": 0}, "hnsw_ef_search"),
    ({"ivf_nprobe": 2.5}, "ivf_nprobe"),
    ({"refine_factor": -1}, "refine_factor"),
    ({"pq_bits": 17}, "pq_bits must be at most 16"),
    ({"hnsw_threshold": True}, "hnsw_threshold"),
    ({"efSearch": 10}, "IndexConfig has no parameter"),
])
def test_bad_parameters_are_refused_by_name(params, named):
    with pytest.raises(ValueError, match=named):
        IndexConfig.from_dict(params)


@pytest.mark.parametrize("params, named", [
    ({**IVFPQ, "pq_m": 5}, r"pq_m \(5\) must divide the vectors' dimension 32"),
    ({**IVFPQ, "ivf_nlist": 500}, r"ivf_nlist \(500\) is more than the 300 vectors"),
    ({**IVFPQ, "pq_bits": 12}, "at least 2\\*\\*pq_bits = 4096 vectors"),
])
def test_parameters_that_do_not_fit_the_vectors_are_refused_before_building(params, named):
    with pytest.raises(ValueError, match=named):
        build_index(unit(300, seed=2), params)


def test_the_semantic_configs_hold_an_index_and_read_the_older_flat_parameters():
    from recsys.recommenders.semantic import SemanticConfig
    from recsys.search.dense import DenseConfig

    config = DenseConfig.from_dict({"index": {"kind": "ivfpq", "ivf_nprobe": 16}})
    assert isinstance(config.index, IndexConfig) and config.index.ivf_nprobe == 16
    assert DenseConfig.from_dict(config.to_dict()) == config
    assert DenseConfig(index={"kind": "hnsw"}).index == IndexConfig(kind="hnsw")
    older = DenseConfig.from_dict({"ann_threshold": 5, "ann_ef_search": 7})
    assert (older.index.kind, older.index.hnsw_threshold, older.index.hnsw_ef_search) == ("auto", 5, 7)
    assert DenseConfig.from_dict({"ann_threshold": 0}).index.kind == "exact"
    assert SemanticConfig.resolve(None, ann_threshold=1).index.hnsw_threshold == 1
    assert SemanticConfig().index.hnsw_ef_search == 64
    assert legacy_index_params({"model_path": None}, IndexConfig()) == {"model_path": None}
    with pytest.raises(ValueError, match="pq_bits"):
        DenseConfig(index={"pq_bits": 0})


def test_a_search_preset_keeps_the_index_parameters(db_url):
    from db.engine import session_scope
    from recsys.fusion import FusionConfig
    from recsys.fusion import presets
    from recsys.search.hybrid import HybridRetriever

    wanted = {"kind": "ivfpq", "ivf_nlist": 256, "ivf_nprobe": 24, "pq_m": 96, "refine_factor": 8}
    with session_scope(db_url) as session:
        saved = presets.save_preset(session, "search", "large", {"semantic_index": wanted}, "merch")
    with session_scope(db_url) as session:
        stored = presets.get_preset(session, "search", "large").config
    assert stored == saved.config
    assert stored.semantic_index == IndexConfig(**wanted).to_dict()  # every parameter stated
    assert FusionConfig.from_dict(stored.to_dict()).semantic_index == stored.semantic_index
    # a hybrid built from the preset gives its semantic source that index
    hybrid = HybridRetriever(fusion=stored.to_dict())
    assert hybrid._source_config("semantic")["index"] == stored.semantic_index
    assert FusionConfig().semantic_index is None
    with pytest.raises(ValueError, match="semantic_index: .*pq_bits"):
        FusionConfig(semantic_index={"pq_bits": 99})
    with session_scope(db_url) as session:
        with pytest.raises(ValueError, match="semantic_index: unknown index kind"):
            presets.save_preset(session, "search", "bad", {"semantic_index": {"kind": "lsh"}}, "merch")


def test_the_engine_spec_names_the_preset_index_and_keeps_older_keys():
    from recsys.engines import EngineSpec

    common = {"kind": "search", "database": "d", "catalog_version": 1, "catalog_created": "t"}
    plain = EngineSpec(**common)
    assert plain.key != EngineSpec(**common, index=IndexConfig(kind="hnsw").to_dict()).key
    # the key of a spec without an index is the one computed before the field existed
    older = {k: v for k, v in plain.to_dict().items() if k != "index"}
    assert plain.key.endswith(hashlib.sha256(json.dumps(older, sort_keys=True).encode()).hexdigest()[:12])
