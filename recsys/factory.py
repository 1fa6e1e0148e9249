"""The one place engines are made: a retriever or a recommender with a fusion config and an embedding model.

Every consumer builds through here: the engine store (`recsys.engines`, which the pages and the
REST service load from), the learned-ranker job, and the evaluation commands, so that a hybrid is
configured the same way wherever it is measured or served.

>>> retriever("bm25").name, retriever("hybrid", model_path="var/models/ft").config.source_configs
('bm25', {'semantic': {'model_path': 'var/models/ft'}})
"""

from __future__ import annotations

import pandas as pd

from recsys import recommenders, search
from recsys.fusion import FusionConfig


def _hybrid_params(fusion: FusionConfig | dict | None, model_path: str | None) -> dict:
    params = {} if fusion is None else {"fusion": FusionConfig.resolve(fusion).to_dict()}
    if model_path is not None:
        params["source_configs"] = {"semantic": {"model_path": model_path}}
    return params


def retriever(method: str = "hybrid", *, fusion: FusionConfig | dict | None = None,
              model_path: str | None = None) -> search.Retriever:
    """An unfitted retriever: "bm25", "semantic" (encoding with `model_path`, None: the shipped
    MiniLM) or "hybrid" (both, fused as `fusion` says; None: its own default)."""
    if method == "hybrid":
        return search.get(method)(**_hybrid_params(fusion, model_path))
    if method == "semantic":
        return search.get(method)(model_path=model_path)
    return search.get(method)()


def build_retriever(catalog: pd.DataFrame, fusion: FusionConfig | dict | None = None,
                    model_path: str | None = None) -> search.Retriever:
    """The hybrid retriever (BM25 + semantic) fitted on `catalog` under `fusion`; the semantic source
    encodes with the model in folder `model_path` (None: the shipped one) on `fusion`'s backend."""
    return retriever("hybrid", fusion=fusion, model_path=model_path).fit(catalog)


def build_recommender(interactions: pd.DataFrame, catalog: pd.DataFrame, fusion: FusionConfig | dict | None = None,
                      model_path: str | None = None) -> recommenders.Recommender:
    """The hybrid recommender (EASE + semantic) fitted on `interactions` under `fusion`; the semantic
    source encodes `catalog`'s texts with `model_path` (None: the shipped model)."""
    return recommenders.get("hybrid")(**_hybrid_params(fusion, model_path)).fit(interactions, catalog)
