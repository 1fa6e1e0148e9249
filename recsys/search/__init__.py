"""Retrievers behind one contract (see `base`); each method is one file that registers itself.

``get(name)`` gives the class of a retriever, ``names()`` lists them: "bm25"
(lexical), "semantic" (dense embeddings) and "hybrid" (the two fused, then reranked and
ruled). Rerankers (`rerank`: "cross-encoder", "learned ranker") register the same way.
"""

from importlib import import_module

from recsys.search.base import (REGISTRY, Retriever, RetrieverConfig, SearchHit, SearchReason,
                                register)

# Importing a module registers its retrievers and rerankers.
for _module in ("bm25", "dense", "hybrid", "cross_encoder", "ltr"):
    import_module(f"recsys.search.{_module}")


get = REGISTRY.lookup
names = REGISTRY.names


__all__ = ["REGISTRY", "Retriever", "RetrieverConfig", "SearchHit", "SearchReason", "get", "names",
           "register"]
