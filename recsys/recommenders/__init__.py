"""Recommenders behind one contract (see `base`); each algorithm is one file that registers itself."""

from importlib import import_module

from recsys.recommenders.base import REGISTRY, Reason, Recommender, RecommenderConfig, register

# Importing a module registers its algorithms.
for _module in ("popularity", "item_knn", "ease", "ease_recent", "implicit_mf", "mult_vae", "cf_surprise",
                "semantic", "hybrid"):
    import_module(f"recsys.recommenders.{_module}")


get = REGISTRY.lookup
names = REGISTRY.names


__all__ = ["REGISTRY", "Reason", "Recommender", "RecommenderConfig", "get", "names", "register"]
