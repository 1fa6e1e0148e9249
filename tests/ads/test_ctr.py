"""Click-through corrected for position: with clicks drawn from a known position-based model, the
model recovers the examination propensities and the products' order; new products get the prior."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recsys.ads.ctr import CtrModel

TRUE_PROPENSITY = np.array([1.0, 0.7, 0.5, 0.38, 0.3, 0.24, 0.2, 0.17, 0.15, 0.13])


def simulated(rng: np.random.Generator, attraction: np.ndarray, positions: np.ndarray) -> pd.DataFrame:
    """Impressions of products (by index) at `positions`, clicked as the position-based model says."""
    products = np.arange(len(positions)) % len(attraction) if len(positions) else positions
    products = rng.permutation(products)
    clicked = rng.random(len(positions)) < TRUE_PROPENSITY[positions - 1] * attraction[products]
    return pd.DataFrame({"product_id": [f"p{i}" for i in products], "position": positions,
                         "clicked": clicked.astype(int)})


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    return float(pd.Series(a).rank().corr(pd.Series(b).rank()))


def test_recovers_the_propensities_and_the_true_order_of_products():
    rng = np.random.default_rng(7)
    attraction = rng.uniform(0.05, 0.6, 40)
    log = simulated(rng, attraction, rng.integers(1, 11, 200_000))
    model = CtrModel(prior_strength=10).fit(log)
    assert model.estimated.all()
    assert np.abs(model.propensities - TRUE_PROPENSITY).max() < 0.04
    predicted = model.predict([f"p{i}" for i in range(40)])
    assert np.abs(predicted - attraction).max() < 0.05
    assert spearman(predicted, attraction) > 0.97


def test_corrects_products_shown_low_that_naive_click_through_ranks_last():
    rng = np.random.default_rng(3)
    attraction = np.linspace(0.1, 0.5, 20)  # p19 attracts most, but is mostly shown low on the page
    products = rng.integers(0, 20, 150_000)
    low = rng.random(len(products)) < 0.85
    worst_first = 1 + products // 2  # the better the product, the lower it is usually shown
    positions = np.where(low, worst_first, rng.integers(1, 11, len(products)))
    clicked = rng.random(len(products)) < TRUE_PROPENSITY[positions - 1] * attraction[products]
    log = pd.DataFrame({"product_id": [f"p{i}" for i in products], "position": positions, "clicked": clicked})
    ids = [f"p{i}" for i in range(20)]
    naive = log.groupby("product_id")["clicked"].mean().reindex(ids).to_numpy()
    assert spearman(naive, attraction) < 0  # what the page's order did to raw click-through
    predicted = CtrModel(prior_strength=10).fit(log).predict(ids)
    assert spearman(predicted, attraction) > 0.9


def test_new_products_get_the_prior_and_rare_ones_stay_near_it():
    rng = np.random.default_rng(11)
    attraction = rng.uniform(0.05, 0.6, 30)
    log = simulated(rng, attraction, rng.integers(1, 11, 60_000))
    rare = pd.DataFrame({"product_id": ["rare"] * 3, "position": [1, 1, 1], "clicked": [1, 1, 1]})
    model = CtrModel(prior_strength=50).fit(pd.concat([log, rare], ignore_index=True))
    corrected = log["clicked"].sum() / model.propensity(log["position"].to_numpy()).sum()
    assert model.prior_mean == pytest.approx(corrected, rel=0.02)
    assert model.prior_mean == pytest.approx(attraction.mean(), abs=0.03)
    new, rare_ctr = model.predict(["never shown", "rare"])
    assert new == model.prior_mean
    assert model.prior_mean < rare_ctr < model.prior_mean + 3 / 53 + 1e-9
    unshrunk = CtrModel(prior_strength=0).fit(pd.concat([log, rare], ignore_index=True))
    assert unshrunk.predict(["rare"])[0] == 1.0


def test_positions_the_data_cannot_identify_fall_back_to_a_power_law():
    # Each product always at the same position: position and product cannot be told apart.
    rows = np.arange(5000)
    log = pd.DataFrame({"product_id": [f"p{i % 5}" for i in rows], "position": rows % 5 + 1,
                        "clicked": rows % 7 == 0})
    model = CtrModel(eta=0.5).fit(log)
    assert not model.estimated[1:].any()  # position 1 is the reference, 1 by definition
    assert np.allclose(model.propensities, np.arange(1, 6) ** -0.5)
    assert np.allclose(model.propensity([2, 12]), [2 ** -0.5, 12 ** -0.5])
    assert np.allclose(model.predict_at(["p0", "p0"], [1, 4]), model.predict(["p0"])[0] * np.array([1, 0.5]))
    rng = np.random.default_rng(5)
    sparse = simulated(rng, rng.uniform(0.1, 0.5, 10), np.r_[rng.integers(1, 4, 20_000), [9] * 20])
    model = CtrModel(min_position_impressions=100).fit(sparse)
    assert model.estimated[:3].all() and not model.estimated[3:].any()
    assert model.propensity([9])[0] == pytest.approx(1 / 9)


def test_bad_impressions_are_refused():
    with pytest.raises(ValueError, match=r"need the column\(s\) \['clicked'\]"):
        CtrModel().fit(pd.DataFrame({"product_id": ["a"], "position": [1]}))
    with pytest.raises(ValueError, match="positions count from 1"):
        CtrModel().fit(pd.DataFrame({"product_id": ["a"], "position": [0], "clicked": [1]}))
    with pytest.raises(ValueError, match="prior_strength must be 0 or more"):
        CtrModel(prior_strength=-1)


def test_with_the_query_a_ranked_log_with_some_randomised_pages_gives_the_propensities():
    # A product attracts differently per query, and the ranker puts each query's best first: the
    # same product is high for one query, low for another. 10% of the pages are shuffled.
    rng = np.random.default_rng(17)
    queries, views = 300, 30_000
    shown = np.array([rng.choice(80, 10, replace=False) for _ in range(queries)])
    attraction = rng.uniform(0.02, 0.7, (queries, 10))
    order = np.argsort(-attraction, axis=1)
    rows = []
    for query in rng.integers(0, queries, views):
        ranking = rng.permutation(10) if rng.random() < 0.1 else order[query]
        clicked = rng.random(10) < TRUE_PROPENSITY * attraction[query, ranking]
        rows += [(f"q{query}", f"p{shown[query, i]}", position, click)
                 for position, (i, click) in enumerate(zip(ranking, clicked), 1)]
    log = pd.DataFrame(rows, columns=["query", "product_id", "position", "clicked"])
    with_query = CtrModel().fit(log)
    assert with_query.estimated.all()
    assert np.abs(with_query.propensities - TRUE_PROPENSITY).max() < 0.05
    by_product = CtrModel().fit(log.drop(columns="query"))
    assert np.abs(by_product.propensities - TRUE_PROPENSITY).max() > 0.08  # relevance taken for position
