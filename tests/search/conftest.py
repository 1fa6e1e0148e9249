"""Fixtures of the search tests: a tiny catalog with known answers, the embedding model
loaded once per session, and catalog embeddings cached in a temporary folder."""

from __future__ import annotations

import pandas as pd
import pytest

CATALOG = pd.DataFrame({
    "product_id": ["P01", "P02", "P03", "P04", "P05", "P06", "P07", "P08", "P09", "P10"],
    "title": ["Red ceramic coffee mug", "Blue ceramic coffee mug", "Green glass teapot",
              "Stainless steel electric kettle", "Oak garden chair", "Folding garden table",
              "1/2 in. copper pipe elbow", "3/4 in. x 10 ft. PVC pipe", "20-Volt cordless drill",
              "60-Watt LED light bulb"],
    "category": ["kitchen", "kitchen", "kitchen", "kitchen", "garden", "garden", "plumbing",
                 "plumbing", "tools", "lighting"],
})

# (query, the product every retriever must rank first)
KNOWN_ANSWERS = [("red mug", "P01"), ("garden chair", "P05"), ("cordless drill", "P09"),
                 ("teapot", "P03")]


@pytest.fixture(scope="session")
def catalog() -> pd.DataFrame:
    return CATALOG.copy()


@pytest.fixture(scope="session", autouse=True)
def embedding_cache(tmp_path_factory):
    """Catalog embeddings of the tests go to a temporary folder, not var/."""
    from recsys import embeddings

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(embeddings, "CACHE_DIR", tmp_path_factory.mktemp("embeddings"))
        yield embeddings.CACHE_DIR


@pytest.fixture(scope="session")
def model():
    """The shipped MiniLM, loaded once for the whole session (about 5 s)."""
    from recsys import embeddings

    return embeddings.load_model()


@pytest.fixture(scope="session")
def fitted(model, catalog):
    """{name: that retriever fitted on the tiny catalog}, for every registered retriever."""
    from recsys.search import get, names

    return {name: get(name)().fit(catalog) for name in names()}


@pytest.fixture(scope="session")
def cross_encoder(tmp_path_factory) -> str:
    """A saved cross-encoder: the shipped MiniLM with a seeded, untrained head (its order is
    arbitrary but fixed, which is all these tests need)."""
    from recsys.training.reranker import RerankerConfig, base_cross_encoder

    folder = tmp_path_factory.mktemp("cross-encoder") / "model"
    base_cross_encoder(RerankerConfig(seed=1, max_length=32), "cpu").save(str(folder))
    return str(folder)


@pytest.fixture(scope="session")
def learned_ranker(fitted, tmp_path_factory) -> str:
    """A saved learned ranker over the fitted hybrid, trained on a few judged queries of the tiny catalog."""
    from recsys.training.ltr import RankerConfig, train_ranker

    rows = [("mug", "P01", 3), ("mug", "P02", 2), ("coffee", "P02", 3), ("coffee", "P01", 1),
            ("pipe", "P08", 3), ("pipe", "P07", 1), ("garden", "P06", 3), ("garden", "P05", 1),
            ("ceramic mug", "P02", 3), ("ceramic mug", "P01", 2), ("copper pipe", "P07", 3)]
    judgments = pd.DataFrame(rows, columns=["query", "product_id", "grade"])
    validation = judgments["query"].isin(["ceramic mug", "copper pipe"])
    folder = tmp_path_factory.mktemp("learned-ranker") / "model"
    config = RankerConfig(top_n=5, leaves=4, min_child_samples=1, trees=10, early_stopping=10)
    train_ranker(fitted["hybrid"], judgments[~validation], judgments[validation], config, folder)
    return str(folder)
