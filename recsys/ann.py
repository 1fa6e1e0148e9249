"""Nearest neighbours of unit vectors by inner product: an exact scan, a faiss HNSW graph or IVF-PQ.

What it computes: the `k` catalog vectors with the largest inner product with a
query vector (the cosine, for unit vectors), by one of three faiss indexes that
`IndexConfig.kind` names, or that "auto" picks by the number of vectors:

- "exact" (``IndexFlatIP``): every vector scored; below `hnsw_threshold` vectors.
- "hnsw" (``IndexHNSWFlat``): a hierarchical navigable small-world graph (Malkov and
  Yashunin, "Efficient and robust approximate nearest neighbor search using Hierarchical
  Navigable Small World graphs", TPAMI 2018); each query explores at least `hnsw_ef_search`
  candidates. From `hnsw_threshold` (20,000) vectors.
- "ivfpq" (``IndexIVFPQ``, inside ``IndexRefineFlat``): the vectors are split into `ivf_nlist`
  cells by k-means and each is stored as `pq_m` codes of `pq_bits` bits (product quantisation:
  Jégou, Douze and Schmid, "Product quantization for nearest neighbor search", TPAMI 2011);
  a query scans the `ivf_nprobe` nearest cells by its estimated inner products, and the best
  `refine_factor` x k of them are scored again exactly from the stored vectors, so the scores
  returned are exact cosines (with `refine_factor` 0 they are the codes' estimates). From
  `ivfpq_threshold` (500,000) vectors: on Home Depot's titles grown to 218,668 near-duplicate
  vectors it kept more of the exact top 100 at its defaults (0.91 against the graph's 0.87),
  while the graph built about twice as fast and answered faster (on a quiet machine both builds
  grew about linearly); the threshold is a judgment where the graph would need a larger
  ef_search to keep its recall, not a measured crossover (docs/benchmarks.md,
  "Nearest-neighbour indexes").

Every index returns exact inner products of the vectors it found (IVF-PQ with refining), so
only which vectors it finds depends on the kind. Used by the semantic retriever
(`recsys.search.dense`) and the semantic recommender (`recsys.recommenders.semantic`), whose
configs hold an `IndexConfig` (and so the search preset, `recsys.fusion.FusionConfig`'s
`semantic_index`). An index is saved in faiss's own file format (`save`, `load`).

>>> import numpy as np
>>> vectors = np.eye(4, dtype=np.float32)
>>> index = build_index(vectors, IndexConfig(kind="hnsw"))
>>> index.kind, len(index)
('hnsw', 4)
>>> scores, found = index.search(vectors[[2]], 1)
>>> int(found[0, 0]), float(scores[0, 0])
(2, 1.0)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from recsys.config import JsonConfig

KINDS = ("auto", "exact", "hnsw", "ivfpq")
DEFAULT_THRESHOLD = 20_000  # vectors from which "auto" searches through the HNSW graph
IVFPQ_THRESHOLD = 500_000  # vectors from which "auto" searches through IVF-PQ
NEAREST_FILE = "nearest.faiss"  # an index's file in a saved engine's folder
TRAINING_PER_CELL = 39  # k-means training vectors per IVF cell: faiss's least without a warning


def _whole(value, at_least: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= at_least


@dataclass
class IndexConfig(JsonConfig):
    """Which nearest-neighbour index searches a catalog, and its parameters (see the module docstring).

    >>> IndexConfig().chosen_kind(50_000), IndexConfig().chosen_kind(1_000)
    ('hnsw', 'exact')
    """

    # "auto" (by the catalog's size, the thresholds below), "exact", "hnsw" or "ivfpq".
    kind: str = "auto"
    # auto: the HNSW graph from this many vectors (0: never); below it every vector is scored.
    hnsw_threshold: int = DEFAULT_THRESHOLD
    # auto: IVF-PQ from this many vectors (0: never).
    ivfpq_threshold: int = IVFPQ_THRESHOLD
    hnsw_m: int = 32  # neighbours per node of the graph (faiss's M): memory and build time for recall
    hnsw_ef_construction: int = 64  # candidates explored when a vector is added
    hnsw_ef_search: int = 100  # candidates explored per query (at least the k asked for)
    ivf_nlist: int = 0  # k-means cells; 0: about 4 sqrt(n), at most n / 39
    ivf_nprobe: int = 64  # cells scanned per query
    pq_m: int = 0  # codes per vector; must divide the dimension; 0: dimension / 8 (48 for 384)
    pq_bits: int = 8  # bits per code (2**bits centroids per sub-vector)
    refine_factor: int = 4  # scored exactly: this many times k of the best estimates; 0: estimates kept

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown index kind {self.kind!r}; choose one of {', '.join(KINDS)}")
        at_least = {"hnsw_threshold": 0, "ivfpq_threshold": 0, "hnsw_m": 2, "hnsw_ef_construction": 1,
                    "hnsw_ef_search": 1, "ivf_nlist": 0, "ivf_nprobe": 1, "pq_m": 0, "pq_bits": 1,
                    "refine_factor": 0}
        for name, least in at_least.items():
            value = getattr(self, name)
            if not _whole(value, least):
                raise ValueError(f"index parameter {name} must be a whole number of {least} or more, "
                                 f"not {value!r}")
        if self.pq_bits > 16:
            raise ValueError(f"index parameter pq_bits must be at most 16 (faiss's limit), "
                             f"not {self.pq_bits}")

    def chosen_kind(self, count: int) -> str:
        """The kind that searches `count` vectors: `kind`, or for "auto" the one its thresholds pick."""
        if self.kind != "auto":
            return self.kind
        if self.ivfpq_threshold and count >= self.ivfpq_threshold:
            return "ivfpq"
        if self.hnsw_threshold and count >= self.hnsw_threshold:
            return "hnsw"
        return "exact"

    def nlist(self, count: int) -> int:
        """IVF cells for `count` vectors: `ivf_nlist`, or about 4 sqrt(count), with at least
        TRAINING_PER_CELL vectors a cell."""
        if self.ivf_nlist:
            return self.ivf_nlist
        return max(1, min(round(4 * math.sqrt(count)), count // TRAINING_PER_CELL))

    def codes(self, dim: int) -> int:
        """PQ codes per vector of dimension `dim`: `pq_m`, or the largest divisor of `dim` up to dim / 8."""
        if self.pq_m:
            return self.pq_m
        return max(m for m in range(1, max(1, dim // 8) + 1) if dim % m == 0)

    def check_fits(self, count: int, dim: int) -> None:
        """ValueError naming the parameter when the index cannot be built over `count` vectors of `dim`."""
        if self.chosen_kind(count) != "ivfpq":
            return
        if dim % self.codes(dim):
            divisors = [m for m in range(1, dim + 1) if dim % m == 0 and dim // m <= 32]
            raise ValueError(f"index parameter pq_m ({self.pq_m}) must divide the vectors' dimension {dim}; "
                             f"choose one of {divisors[:12]}")
        if self.nlist(count) > count:
            raise ValueError(f"index parameter ivf_nlist ({self.ivf_nlist}) is more than the {count} "
                             "vectors; choose fewer cells, or 0 for about 4 sqrt(n)")
        if count < 2 ** self.pq_bits:
            raise ValueError(f"IVF-PQ needs at least 2**pq_bits = {2 ** self.pq_bits} vectors to train its "
                             f"codes and there are {count}: lower pq_bits or choose kind 'exact' or 'hnsw'")


def legacy_index_params(data: dict, default: IndexConfig) -> dict:
    """`data` (a component config's dict) with the flat parameters of configs saved before
    `IndexConfig` existed folded into its "index": ann_threshold (0: exact) and ann_ef_search."""
    if "ann_threshold" not in data and "ann_ef_search" not in data:
        return data
    data = dict(data)
    index = dict(data.get("index") or default.to_dict())
    if isinstance(index, IndexConfig):
        index = index.to_dict()
    if "ann_threshold" in data:
        threshold = data.pop("ann_threshold")
        index.update({"hnsw_threshold": threshold} if threshold else {"kind": "exact"})
    if "ann_ef_search" in data:
        index["hnsw_ef_search"] = data.pop("ann_ef_search")
    data["index"] = index
    return data


class NearestIndex:
    """A built faiss index over unit vectors (inner product), searched with its config's parameters.

    `kind` is "exact", "hnsw" or "ivfpq"; results are rows of the vectors it was built from.
    """

    def __init__(self, index, kind: str, config: IndexConfig | None = None):
        self.index, self.kind = index, kind
        self.config = config or IndexConfig()
        if kind == "ivfpq" and not isinstance(index, _faiss().IndexRefine):
            ivf = _faiss().extract_index_ivf(index)
            ivf.make_direct_map()  # `vectors` reconstructs rows from their codes

    @classmethod
    def build(cls, vectors: np.ndarray, config: IndexConfig | None = None, kind: str | None = None,
              seed: int = 0) -> NearestIndex:
        """The index of `vectors`, shape (n, dim), in their order; `kind` None: `config.chosen_kind(n)`."""
        faiss = _faiss()
        config = config or IndexConfig()
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        count, dim = vectors.shape
        kind = kind or config.chosen_kind(count)
        replace(config, kind=kind).check_fits(count, dim)
        if kind == "exact":
            index = faiss.IndexFlatIP(dim)
        elif kind == "hnsw":
            index = faiss.IndexHNSWFlat(dim, config.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = config.hnsw_ef_construction
        elif kind == "ivfpq":
            nlist = config.nlist(count)
            quantizer = faiss.IndexFlatIP(dim)
            index = faiss.IndexIVFPQ(quantizer, dim, nlist, config.codes(dim), config.pq_bits,
                                     faiss.METRIC_INNER_PRODUCT)
            index.cp.seed = seed
            # 10 k-means rounds, not faiss's 25: the cells change little after, and training is most
            # of the build (54,667 titles: 16 s of 20 s with 467 cells).
            index.cp.niter = 10
            if config.refine_factor:
                index = faiss.IndexRefineFlat(index)
            sample = min(count, TRAINING_PER_CELL * max(nlist, 2 ** config.pq_bits))
            chosen = np.sort(np.random.default_rng(seed).choice(count, sample, replace=False))
            index.train(vectors[chosen])
        else:
            raise ValueError(f"unknown index kind {kind!r}; choose one of {', '.join(KINDS[1:])}")
        index.add(vectors)
        return cls(index, kind, config)

    def __len__(self) -> int:
        return int(self.index.ntotal)

    def _set_search_parameters(self, k: int) -> None:
        if self.kind == "hnsw":
            self.index.hnsw.efSearch = max(k, self.config.hnsw_ef_search)
        elif self.kind == "ivfpq":
            _faiss().extract_index_ivf(self.index).nprobe = self.config.ivf_nprobe
            if isinstance(self.index, _faiss().IndexRefine):
                self.index.k_factor = float(max(1, self.config.refine_factor))

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores, indices), each (n_queries, k), best first; index -1 (score -inf) where fewer
        were found."""
        self._set_search_parameters(k)
        scores, found = self.index.search(np.ascontiguousarray(queries, dtype=np.float32), k)
        return np.where(found >= 0, scores, -np.inf), found

    def vectors(self, indices: np.ndarray) -> np.ndarray:
        """The vectors at `indices`, shape (len(indices), dim), read from the index's own row-major
        copy: 0.03 ms for 100 of 54,667 where gathering them from a (dim, n) matrix took 0.4 ms
        (IVF-PQ without refining: the vectors its codes stand for)."""
        return self.index.reconstruct_batch(np.asarray(indices, dtype=np.int64))

    def nbytes(self) -> int:
        """The size of the index as saved (faiss's serialisation), in bytes."""
        return int(_faiss().serialize_index(self.index).nbytes)

    def save(self, path: str | Path) -> None:
        _faiss().write_index(self.index, str(path))

    @classmethod
    def load(cls, path: str | Path, config: IndexConfig | None = None) -> NearestIndex:
        """The index saved at `path`; its search parameters (ef_search, nprobe, refine_factor) come
        from `config`."""
        faiss = _faiss()
        index = faiss.read_index(str(path))
        if isinstance(index, faiss.IndexHNSW):
            kind = "hnsw"
        elif isinstance(index, faiss.IndexFlat):
            kind = "exact"
        else:
            kind = "ivfpq"
        return cls(index, kind, config)


def build_index(vectors: np.ndarray, config: IndexConfig | dict | None = None) -> NearestIndex:
    """The index `config` chooses for `vectors` (n, dim), unit rows, built over them.

    >>> vectors = np.random.default_rng(0).normal(size=(300, 8)).astype(np.float32)
    >>> build_index(vectors / np.linalg.norm(vectors, axis=1, keepdims=True), {"hnsw_threshold": 100}).kind
    'hnsw'
    """
    return NearestIndex.build(vectors, IndexConfig.resolve(config))


def _faiss():
    import faiss  # loaded on first use: importing it takes a moment that small catalogs never need

    return faiss
