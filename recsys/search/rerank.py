"""A cross-encoder reranker: a second stage that reorders a retriever's best candidates.

What it computes: for a query q and a product text d, a cross-encoder reads
the pair together ("[CLS] q [SEP] d [SEP]") and a classification head gives
one relevance logit, turned into a probability by a sigmoid (Nogueira and Cho,
"Passage Re-ranking with BERT", 2019). It is far slower than the first stage
per product, so it only reorders the first `top_n` candidates; the rest keep
their order after them. Models are trained by `recsys.training.reranker` and
saved as sentence-transformers CrossEncoder folders.

A folder is loaded once per process (keyed by its path and the size and time
of its weights, so a retrained model in the same folder is read again); on the
CPU torch's threads are set by `recsys.embeddings.configure_threads`. Scoring
is stage "rerank" of the active `recsys.timing.StageTimer`.

`rerank_items` does the same for fused items (`recsys.fusion.FusedItem`): the
reordered items take the fused scores of the places they land on, so the list
still falls in score and the rules' boost span is unchanged, and each carries
a `RerankScore` under `sources["rerank"]` (its cross-encoder score, its rank
before and after) for the explanation panel.

>>> reranker = Reranker("var/models/reranker")                        # doctest: +SKIP
>>> reranker.rerank("red mug", [("P2", 0.9), ("P1", 0.8), ("P7", 0.1)],   # doctest: +SKIP
...                 {"P1": "Red ceramic mug", "P2": "Blue mug", "P7": "Oak chair"}, top_n=2)
[('P1', 0.97), ('P2', 0.12), ('P7', 0.1)]
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from recsys import embeddings
from recsys.embedding_model import resolve_device
from recsys.fusion.base import FusedItem, SourceScore
from recsys.timing import stage

RERANK_SOURCE = "rerank"
CROSS_ENCODER = "cross-encoder"
BATCH_SIZE = 64


@dataclass
class RerankScore(SourceScore):
    """The reranker's part in a reranked item: `rank` is its place after the rerank,
    `fused_rank` its place in the fused list before; `score` and `normalised` are the
    reranker's score (a cross-encoder's probability, a learned ranker's score);
    `contribution` is how much the item's score changed."""

    fused_rank: int = 0
    by: str = CROSS_ENCODER  # the kind of model that scored it (`recsys.search.ltr.LEARNED_RANKER`)


@lru_cache(maxsize=4)
def _load(path: str, identity: str, device: str):
    """The CrossEncoder in `path`; `identity` (its weights' size and time) is only part of the key."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from sentence_transformers.cross_encoder import CrossEncoder

        return CrossEncoder(path, device=device, local_files_only=True)


class Reranker:
    """A saved cross-encoder folder, loaded once; scores and reorders candidates for a query.

    `device` None: CUDA when available, else the CPU. `batch_size` is the number
    of (query, text) pairs the model reads at once.
    """

    def __init__(self, model_path: str | os.PathLike, device: str | None = None,
                 batch_size: int = BATCH_SIZE):
        path = Path(model_path)
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"{path} is not a cross-encoder model folder (it has no config.json); "
                                    "train one with `recsys.training.reranker.train_reranker`")
        self.path = path.resolve()
        self.device = resolve_device(device)
        self.batch_size = batch_size
        if self.device == "cpu":
            embeddings.configure_threads()
        self.model = _load(str(self.path), embeddings.model_identity(self.path), self.device)

    def scores(self, query: str, texts: Sequence[str]) -> np.ndarray:
        """Relevance probabilities of `texts` for `query`, shape (len(texts),)."""
        return self.scores_many([query], [texts])[0]

    def scores_many(self, queries: Sequence[str], texts: Sequence[Sequence[str]]) -> list[np.ndarray]:
        """`scores` of each query's own texts, read by the model in one batched pass."""
        if len(queries) != len(texts):
            raise ValueError(f"{len(queries)} queries but {len(texts)} lists of texts")
        pairs = [[query, text] for query, chosen in zip(queries, texts) for text in chosen]
        if not pairs:
            return [np.zeros(0) for _ in queries]
        with stage("rerank"):
            flat = np.asarray(self.model.predict(pairs, batch_size=self.batch_size, show_progress_bar=False,
                                                 convert_to_numpy=True), dtype=np.float64).reshape(-1)
        ends = np.cumsum([len(chosen) for chosen in texts])
        return np.split(flat, ends[:-1])

    def rerank(self, query: str, candidates: Sequence[tuple[str, float]],
               texts: Mapping[str, str] | pd.Series, top_n: int) -> list[tuple[str, float]]:
        """`candidates` ([(product_id, score)], best first) with the first `top_n` reordered.

        The reordered ones carry their cross-encoder probability, the rest follow
        in their order with their own scores. `texts` maps product id to text; a
        product without one is read as an empty text. Equal probabilities keep
        the candidates' order.
        """
        top = list(candidates[:max(top_n, 0)])
        probabilities = self.scores(query, [_text(texts, product_id) for product_id, _ in top])
        order = np.argsort(-probabilities, kind="stable")
        return ([(top[i][0], float(probabilities[i])) for i in order]
                + [(product_id, float(score)) for product_id, score in candidates[len(top):]])

    def rerank_items(self, queries: Sequence[str], items: Sequence[Sequence[FusedItem]],
                     texts: Mapping[str, str] | pd.Series, top_n: int) -> list[list[FusedItem]]:
        """Each query's fused `items` with the first `top_n` reordered (see the module docstring).

        All queries' pairs go through the model together. The items are not
        modified; reordered ones are new, with `sources["rerank"]` added.
        """
        tops = [list(ranked[:max(top_n, 0)]) for ranked in items]
        probabilities = self.scores_many(
            queries, [[_text(texts, item.product_id) for item in top] for top in tops])
        return reordered(items, tops, probabilities, CROSS_ENCODER)

    def rerank_hybrid(self, hybrid, queries: Sequence[str], items: Sequence[Sequence[FusedItem]],
                      top_n: int) -> list[list[FusedItem]]:
        """`rerank_items` over `hybrid`'s product texts, `queries` (as typed) spelled as it searches them."""
        return self.rerank_items([hybrid.correct(query).query for query in queries], items,
                                 hybrid.product_texts, top_n)


def reordered(items: Sequence[Sequence[FusedItem]], tops: Sequence[Sequence[FusedItem]],
              scores: Sequence[np.ndarray], by: str) -> list[list[FusedItem]]:
    """Each query's `items` with its first ``len(top)`` items ordered by `scores`, higher first.

    The reordered items take the fused scores of the places they land on and
    carry a `RerankScore` (`by` names the model); equal scores keep the fused order.
    """
    results = []
    for ranked, top, values in zip(items, tops, scores):
        order = np.argsort(-np.asarray(values), kind="stable")
        moved = []
        for rank, (position, place) in enumerate(zip(order, top), 1):
            item = top[position]
            value = float(values[position])
            part = RerankScore(rank=rank, score=value, normalised=value, contribution=place.score - item.score,
                               fused_rank=int(position) + 1, by=by)
            moved.append(FusedItem(item.product_id, place.score, {**item.sources, RERANK_SOURCE: part},
                                   list(item.effects)))
        results.append(moved + list(ranked[len(top):]))
    return results


def _text(texts: Mapping[str, str] | pd.Series, product_id: str) -> str:
    text = texts.get(product_id)
    return "" if text is None or (isinstance(text, float) and np.isnan(text)) else str(text)
