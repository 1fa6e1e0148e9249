"""Top-k selection and catalog ranks of the retriever base: properties over random scores."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from recsys.search.base import catalog_ranks, top_k

# Few distinct values, so ties are common; -inf marks products that do not match.
scores = arrays(np.float64, st.integers(1, 200),
                elements=st.sampled_from([-np.inf, 0.0, 0.5, 1.0, 2.0, 3.5]))


def stable_order(values: np.ndarray) -> list[int]:
    """The reference: finite scores, best first, ties by index."""
    return sorted((i for i in range(len(values)) if np.isfinite(values[i])),
                  key=lambda i: (-values[i], i))


@given(scores, st.integers(1, 250))
def test_top_k_is_the_head_of_a_stable_sort(values, k):
    assert top_k(values, k).tolist() == stable_order(values)[:k]


@given(scores, st.data())
def test_catalog_ranks_are_positions_in_that_sort(values, data):
    order = stable_order(values)
    if not order:
        return
    chosen = data.draw(st.lists(st.sampled_from(order), min_size=1, max_size=100, unique=True))
    ranks = catalog_ranks(values, np.array(chosen))
    assert ranks.tolist() == [order.index(i) + 1 for i in chosen]
