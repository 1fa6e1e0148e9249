"""Retrievers behind one contract (see `base`); each method is one file that registers itself.

``get(name)`` gives the class of a retriever, ``names()`` lists them: "bm25"
(lexical), "semantic" (dense embeddings) and "hybrid" (reciprocal rank fusion
of the two).
"""

from importlib import import_module

from recsys.search.base import (REGISTRY, Retriever, RetrieverConfig, SearchHit, SearchReason,
                                register)

# Importing a module registers its retrievers.
for _module in ("bm25", "dense", "hybrid"):
    import_module(f"recsys.search.{_module}")


get = REGISTRY.lookup
names = REGISTRY.names


__all__ = ["REGISTRY", "Retriever", "RetrieverConfig", "SearchHit", "SearchReason", "get", "names",
           "register"]
