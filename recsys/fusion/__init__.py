"""Fusion of ranked lists from several retrievers or recommenders; one file per method.

A fuser takes ranked, scored lists (``[(product_id, score), ...]``, best first)
and returns one; it composes the components that made the lists and never
subclasses them.
"""

from recsys.fusion.rrf import fuse_rrf, rrf_contribution

__all__ = ["fuse_rrf", "rrf_contribution"]
