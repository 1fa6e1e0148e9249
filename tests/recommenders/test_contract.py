"""The recommender contract, run over every registered algorithm."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recsys.recommenders import REGISTRY, Reason, Recommender, get


def same(left, right) -> bool:
    """Two rankings with the same items in the same order and scores equal to 1e-6."""
    return [i for i, _ in left] == [i for i, _ in right] and np.allclose(
        [s for _, s in left], [s for _, s in right], rtol=1e-6, atol=1e-9)

# Two taste groups: tea people and garden people, plus one user who bought both kinds.
BASKETS = {
    "u1": ["teapot", "mug", "tea"], "u2": ["teapot", "mug", "tea", "saucer"],
    "u3": ["teapot", "tea", "saucer"], "u4": ["mug", "tea"],
    "g1": ["chair", "table", "parasol"], "g2": ["chair", "table"], "g3": ["chair", "parasol", "lantern"],
    "g4": ["table", "parasol", "lantern"], "mix": ["mug", "chair"],
}
TITLES = {"teapot": "White china teapot", "mug": "Red tea mug", "tea": "Earl grey tea leaves",
          "saucer": "China saucer", "chair": "Wooden garden chair", "table": "Garden table",
          "parasol": "Striped garden parasol", "lantern": "Garden lantern", "vase": "Glass vase"}


def interactions() -> pd.DataFrame:
    rows = [(user, item, 1.0 + (i % 3), pd.Timestamp("2024-01-01") + pd.Timedelta(days=i + 3 * n))
            for n, (user, items) in enumerate(BASKETS.items()) for i, item in enumerate(items)]
    return pd.DataFrame(rows, columns=["user_id", "product_id", "weight", "timestamp"])


CATALOG = pd.DataFrame({"product_id": list(TITLES), "title": list(TITLES.values())})


@pytest.fixture(scope="module", params=sorted(REGISTRY))
def fitted(request) -> Recommender:
    return get(request.param)().fit(interactions(), CATALOG)


def test_registry_lists_every_algorithm():
    assert {"popularity", "popularity_recent", "item_knn", "ease", "ease_recent", "als", "bpr", "mult_vae",
            "svd", "knn_baseline", "semantic"} <= set(REGISTRY)


def test_recommend_excludes_seen_and_is_sorted(fitted):
    ranking = fitted.recommend("u1", k=3)
    items = [item for item, _ in ranking]
    assert len(items) == 3 and not set(items) & set(BASKETS["u1"])
    scores = [score for _, score in ranking]
    assert scores == sorted(scores, reverse=True)
    with_seen = [item for item, _ in fitted.recommend("u1", k=20, exclude_seen=False)]
    assert set(BASKETS["u1"]) <= set(with_seen)


def test_unknown_user_gets_popular_products(fitted):
    ranking = fitted.recommend("never-seen", k=2)
    assert len(ranking) == 2
    if fitted.name != "popularity_recent":
        popular = get("popularity")().fit(interactions()).recommend("never-seen", k=2)
        assert [i for i, _ in ranking] == [i for i, _ in popular]
    reasons = fitted.explain("never-seen", ranking[0][0])
    assert reasons and reasons[0].kind == "popular"
    # ... and says so: the pages and the REST answer label the list a fallback.
    assert fitted.falls_back("never-seen") and fitted.falls_back(None, ["not-a-product"])
    assert not fitted.falls_back("u1")
    assert fitted.falls_back(None, ["chair"]) == (not fitted.scores_history)


def test_k_larger_than_the_catalog_returns_every_unseen_product(fitted):
    ranking = fitted.recommend("g2", k=1000)
    candidates = set(fitted.item_ids) - set(BASKETS["g2"])
    assert {item for item, _ in ranking} == candidates
    assert len(ranking) == len(candidates)


def test_bad_k_is_refused(fitted):
    with pytest.raises(ValueError, match="k must be positive"):
        fitted.recommend("u1", k=0)


def test_session_history_and_empty_history(fitted):
    session = fitted.recommend(None, k=3, history=["chair", "table"])
    assert len(session) == 3 and not {"chair", "table"} & {i for i, _ in session}
    empty = fitted.recommend("never-seen", k=3, history=[])
    assert [i for i, _ in empty] == [i for i, _ in fitted.recommend("never-seen", k=3)]
    unknown_items = fitted.recommend(None, k=2, history=["no-such-product"])
    assert len(unknown_items) == 2


def test_similar_items(fitted):
    similar = fitted.similar_items("chair", k=3)
    assert 0 < len(similar) <= 3 and "chair" not in {i for i, _ in similar}
    assert fitted.similar_items("no-such-product", k=3) == []


def test_explain_gives_structured_reasons(fitted):
    item = fitted.recommend("u4", k=1)[0][0]
    reasons = fitted.explain("u4", item)
    assert reasons and all(isinstance(r, Reason) and r.text for r in reasons)
    assert [r.weight for r in reasons] == sorted((r.weight for r in reasons), reverse=True)
    assert fitted.explain("u4", "no-such-product")[0].kind == "unknown_product"


def test_save_and_load_round_trip(fitted, tmp_path):
    fitted.save(tmp_path / "model")
    loaded = Recommender.load(tmp_path / "model")
    assert type(loaded) is type(fitted) and loaded.config == fitted.config
    for user in ("u1", "mix", "never-seen"):
        assert same(loaded.recommend(user, k=5), fitted.recommend(user, k=5))
    assert loaded.similar_items("tea", k=3) == fitted.similar_items("tea", k=3)
    item = fitted.recommend("u4", k=1)[0][0]
    assert loaded.explain("u4", item) == fitted.explain("u4", item)


def test_fitting_twice_gives_the_same_results(fitted):
    again = type(fitted)(fitted.config).fit(interactions(), CATALOG)
    for user in ("u1", "g3", "mix"):
        assert same(again.recommend(user, k=4), fitted.recommend(user, k=4))


def test_recommend_many_matches_recommend(fitted):
    users = ["u1", "g1", "never-seen", "mix"]
    for batched, user in zip(fitted.recommend_many(users, k=3), users):
        assert same(batched, fitted.recommend(user, k=3))


def test_config_round_trips_and_rejects_unknown_parameters(fitted):
    cls = type(fitted)
    assert cls.Config.from_dict(fitted.config.to_dict()) == fitted.config
    with pytest.raises(ValueError, match="no parameter"):
        cls(no_such_parameter=1)


@pytest.mark.parametrize("name", ["item_knn", "ease"])
def test_co_purchase_models_recommend_within_the_taste_group(name):
    model = get(name)().fit(interactions())
    assert model.recommend("u4", k=1)[0][0] in {"teapot", "saucer"}
    assert model.recommend("g2", k=1)[0][0] in {"parasol", "lantern"}
    reasons = model.explain("u4", "teapot")
    assert reasons[0].kind == "co_purchase" and reasons[0].product_id in {"mug", "tea"}
    assert "because you bought" in reasons[0].text


def test_semantic_recommends_by_text_and_names_the_nearest_history_item():
    model = get("semantic")().fit(interactions(), CATALOG)
    # Nobody bought the vase, but the semantic model can still recommend it.
    assert "vase" in model.item_ids
    top = [item for item, _ in model.recommend("g2", k=3)]
    assert set(top) <= {"parasol", "lantern", "chair", "vase", "saucer"} and "lantern" in top
    reasons = model.explain("g2", "lantern")
    assert reasons[0].kind == "similar_embedding" and reasons[0].product_id in {"chair", "table"}


def test_popularity_counts_customers_not_weights():
    frame = pd.DataFrame({"user_id": ["a", "b", "c", "d"], "product_id": ["x", "x", "y", "y"],
                          "weight": [1.0, 1.0, 100.0, 1.0]})
    frame.loc[4] = ["e", "x", 1.0]
    assert get("popularity")().fit(frame).recommend("new", k=2)[0][0] == "x"


def test_recent_popularity_looks_at_the_last_days():
    frame = pd.DataFrame({"user_id": list("abcde"), "product_id": ["old", "old", "old", "new", "new"],
                          "weight": 1.0, "timestamp": pd.to_datetime(
                              ["2024-01-01", "2024-01-02", "2024-01-03", "2024-06-01", "2024-06-02"])})
    assert get("popularity_recent")(window_days=30).fit(frame).recommend("z", k=1)[0][0] == "new"
    assert get("popularity")().fit(frame).recommend("z", k=1)[0][0] == "old"


def test_svd_uses_real_ratings_when_given():
    frame = interactions().assign(rating=lambda f: np.where(f["product_id"] == "tea", 5.0, 2.0))
    model = get("svd")(n_factors=4, n_epochs=50).fit(frame)
    assert model.global_mean == pytest.approx(frame["rating"].mean(), rel=1e-5)


def test_row_order_does_not_change_results(fitted):
    shuffled = interactions().sample(frac=1.0, random_state=7)
    again = type(fitted)(fitted.config).fit(shuffled, CATALOG)
    for user in ("u1", "g3", "mix", "never-seen"):
        assert [i for i, _ in again.recommend(user, k=4)] == [i for i, _ in fitted.recommend(user, k=4)]


def test_fit_accepts_interactions_with_extra_columns():
    from recsys.data.interactions import ImplicitWeights, to_interactions

    events = interactions().assign(event_type="purchase", value=1.0)
    weighted = to_interactions(events, ImplicitWeights())  # has events and last_timestamp
    model = get("item_knn")().fit(weighted)
    assert model.recommend("u4", k=1)[0][0] in {"teapot", "saucer"}


def test_loading_a_model_as_the_wrong_class_is_refused(tmp_path):
    get("popularity")().fit(interactions()).save(tmp_path / "pop")
    with pytest.raises(ValueError, match="holds a popularity model"):
        get("ease").load(tmp_path / "pop")


def test_knn_baseline_refuses_constant_ratings():
    constant = interactions().assign(weight=1.0)
    with pytest.raises(ValueError, match="needs ratings that vary"):
        get("knn_baseline")().fit(constant)


def test_history_and_co_purchases(fitted):
    assert set(fitted.history("u1")) == set(BASKETS["u1"]) and fitted.history("never-seen") == []
    together = fitted.co_purchases("teapot")
    assert together["tea"] == 3 and together["mug"] == 2 and "teapot" not in together
    assert fitted.co_purchases("nope") == {}


def test_semantic_on_the_hnsw_graph_ranks_like_the_exact_scan():
    exact = get("semantic")().fit(interactions(), CATALOG)
    graph = get("semantic")(ann_threshold=1, ann_candidates=5).fit(interactions(), CATALOG)
    assert graph._graph is not None and exact._graph is None
    for user in ("u1", "g2", "mix"):
        assert same(graph.recommend(user, k=3), exact.recommend(user, k=3))
    assert same(graph.recommend(None, k=2, history=["chair"]), exact.recommend(None, k=2, history=["chair"]))


def test_semantic_saves_its_index_and_reads_it_back(tmp_path, monkeypatch):
    from recsys.ann import NEAREST_FILE, NearestIndex

    indexed = get("semantic")(index={"kind": "ivfpq", "pq_bits": 2}, ann_candidates=5)
    indexed.fit(interactions(), CATALOG)
    folder = indexed.save(tmp_path / "semantic")
    assert (folder / NEAREST_FILE).is_file()
    monkeypatch.setattr(NearestIndex, "build", None)  # loading must not build the index again
    loaded = Recommender.load(folder)
    assert loaded._graph.kind == "ivfpq" and loaded.config.index == indexed.config.index
    for user in ("u1", "g2", "mix"):
        assert same(loaded.recommend(user, k=3), indexed.recommend(user, k=3))


def test_als_folds_a_new_session_in_as_a_customer_with_that_history():
    """A session (no customer id) is scored with the ALS user step on its products: the same
    factors the fit would give a customer with that history, so tea buyers get tea things."""
    als = get("als")(factors=8, iterations=30, regularization=0.1).fit(interactions(), CATALOG)
    session = [item for item, _ in als.recommend(None, k=2, history=["teapot", "tea"])]
    assert set(session) <= {"mug", "saucer"}
    assert not als.falls_back(None, ["teapot"]) and als.falls_back(None, None)


def small_vae(**params):
    return get("mult_vae")(**{"hidden": 16, "latent": 4, "epochs": 100, "dropout": 0.0,
                              "learning_rate": 0.01, **params})


def test_mult_vae_scores_a_session_as_a_customer_with_that_history():
    """Mult-VAE is inductive: a session is encoded as a known customer is, so a session holding u4's
    products gets u4's recommendations, and garden buyers get garden things."""
    vae = small_vae().fit(interactions(), CATALOG)
    assert same(vae.recommend(None, k=3, history=BASKETS["u4"]), vae.recommend("u4", k=3))
    assert vae.recommend("u4", k=1)[0][0] in {"teapot", "saucer"}
    assert vae.recommend(None, k=1, history=["chair", "table"])[0][0] in {"parasol", "lantern"}
    assert not vae.falls_back(None, ["chair"])


def test_mult_vae_fits_the_same_weights_with_the_same_seed_and_others_with_another(tmp_path):
    first, again = small_vae().fit(interactions()), small_vae().fit(interactions())
    other = small_vae(seed=8).fit(interactions())
    assert all(np.array_equal(first.weights[name], again.weights[name]) for name in first.weights)
    assert not np.array_equal(first.weights["decoder_output"], other.weights["decoder_output"])
    first.save(tmp_path / "vae")
    with np.load(tmp_path / "vae" / "arrays.npz", allow_pickle=False) as saved:
        assert np.array_equal(saved["model_decoder_output"], first.weights["decoder_output"])
    loaded = Recommender.load(tmp_path / "vae")
    assert same(loaded.recommend(None, k=3, history=["tea"]), first.recommend(None, k=3, history=["tea"]))


def test_mult_vae_refuses_a_dropout_of_one():
    with pytest.raises(ValueError, match="dropout"):
        get("mult_vae")(dropout=1.0)


def test_ease_recent_follows_the_latest_basket_and_is_ease_at_decay_one():
    """mix bought a mug first and a chair last: with recency, garden things come first."""
    frame = interactions()
    mug = (frame["user_id"] == "mix") & (frame["product_id"] == "mug")
    frame.loc[mug, "timestamp"] = pd.Timestamp("2023-01-01")
    recent = get("ease_recent")(l2=1.0, decay=0.1).fit(frame)
    assert recent.recommend("mix", k=1)[0][0] in {"table", "parasol", "lantern"}
    reasons = recent.explain("mix", recent.recommend("mix", k=1)[0][0])
    assert reasons[0].product_id == "chair"
    # A session product makes a newer basket: tea things after a teapot, whatever mix bought before.
    assert recent.recommend("mix", k=1, history=["teapot"])[0][0] in {"tea", "saucer"}
    ease, flat = get("ease")(l2=1.0).fit(frame), get("ease_recent")(l2=1.0, decay=1.0).fit(frame)
    for user in ("u1", "mix", "g3"):
        assert same(flat.recommend(user, k=4), ease.recommend(user, k=4))
    assert same(flat.recommend(None, k=3, history=["tea"]), ease.recommend(None, k=3, history=["tea"]))
    with pytest.raises(ValueError, match="decay"):
        get("ease_recent")(decay=1.5)


def test_ease_recent_and_mult_vae_fuse_in_a_hybrid(tmp_path):
    hybrid = get("hybrid")(sources=["ease_recent", "mult_vae"],
                           source_configs={"mult_vae": {"hidden": 16, "latent": 4, "epochs": 20}},
                           fusion={"weights": {"ease_recent": 0.7, "mult_vae": 0.3}})
    hybrid.fit(interactions(), CATALOG)
    ranking = hybrid.recommend("u4", k=3)
    assert len(ranking) == 3 and not set(BASKETS["u4"]) & {item for item, _ in ranking}
    assert len(hybrid.recommend(None, k=2, history=["chair"])) == 2
    hybrid.save(tmp_path / "hybrid")
    assert same(Recommender.load(tmp_path / "hybrid").recommend("u4", k=3), ranking)
