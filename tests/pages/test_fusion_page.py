"""pages/fusion.py: weights and rules previewed live against the active preset, metrics, presets.

The test shop's four products: P1 Red mug, P2 Blue mug, P3 Green teapot
(kitchen) and P4 Garden chair (garden). For the query "garden mug" BM25 ranks
the chair first and the semantic retriever the mugs, so the weights decide the
order; the judgments grade the blue mug best for it.
"""

from __future__ import annotations

import pytest

from db import queries
from db.engine import session_scope
from recsys.data import IngestOptions, ingest_file
from recsys.fusion import presets
from tests.conftest import pseudonym
from tests.pages.conftest import app_as

PAGE = "pages/fusion.py"
JUDGMENTS_CSV = """query,product_id,grade
garden mug,P2,3
garden mug,P4,1
cup,P1,3
cup,P4,1
"""


@pytest.fixture
def judged_shop(shop, write) -> str:
    """The shop with a judgment list (v3) for the search metrics."""
    ingest_file(write("judgments.csv", JUDGMENTS_CSV), IngestOptions("judgments"), actor="test")
    return shop


def open_page(role: str = "merchandiser", query: str | None = "garden mug"):
    app = app_as(role, PAGE)
    assert not app.exception, app.exception
    if query is not None:
        app.text_input(key="fusion_query").input(query).run()
    return app


def table(app, which: str):
    """The preview table `which`: "active", "working" (it has moves) or "effects" (of the rules)."""
    frames = [frame.value for frame in app.dataframe]
    if which == "effects":
        return next(frame for frame in frames if "action" in frame)
    working = next(i for i, frame in enumerate(frames) if "move" in frame)
    return frames[working] if which == "working" else frames[working - 1]


def preview(app, which: str) -> list[str]:
    """Product ids of the preview list `which` ("active" or "working"), best first."""
    return list(table(app, which)["product"])


def metrics(app) -> dict[str, str]:
    return {metric.label: metric.value for metric in app.metric}


def active_label(scope: str = "search") -> str | None:
    with session_scope() as session:
        active = presets.active_preset(session, scope)
        return active.label if active else None


def test_the_page_starts_from_the_default_preset(judged_shop):
    app = open_page(query=None)
    assert app.slider(key="fusion_search_weight_bm25").value == 0.75
    assert app.slider(key="fusion_search_weight_semantic").value == 0.25
    assert app.radio(key="fusion_search_method").value == "weighted"
    assert app.text_input(key="fusion_query").value == "cup"  # the first judged query
    assert set(metrics(app)) == {"nDCG@10", "Recall@100", "Coverage@10", "Diversity@10"}
    # The default's semantic floor (0.475) leaves out the products whose text is far from "cup".
    assert preview(app, "active") == preview(app, "working") == ["P1", "P2"]
    assert app.slider(key="fusion_search_floor_semantic").value == 0.475
    assert any("shipped default is served" in info.value for info in app.info)


def test_moving_a_weight_changes_the_order_and_the_metrics(judged_shop):
    app = open_page()
    assert preview(app, "working") == ["P4", "P2", "P1", "P3"]
    before = metrics(app)
    app.slider(key="fusion_search_weight_bm25").set_value(0.0).run()
    assert not app.exception
    assert preview(app, "active") == ["P4", "P2", "P1", "P3"]
    assert preview(app, "working") == ["P2", "P1", "P3"]  # P4 is below the semantic floor
    moves = table(app, "working")["move"]
    assert list(moves) == ["↑1", "↑1", "↑1"]
    assert any("left the top 10: P4 (was #1)" in c.value for c in app.caption)
    after = metrics(app)
    assert float(after["nDCG@10"]) > float(before["nDCG@10"])
    ndcg = next(metric for metric in app.metric if metric.label == "nDCG@10")
    assert ndcg.delta.startswith("+")
    # The working config survives a switch of scope.
    app.radio(key="fusion_scope").set_value("Recommendations").run()
    app.radio(key="fusion_scope").set_value("Search").run()
    assert app.slider(key="fusion_search_weight_bm25").value == 0.0
    assert app.text_input(key="fusion_query").value == "garden mug"


def test_the_semantic_floor_lets_a_query_nothing_matches_find_nothing(judged_shop):
    app = open_page(query="xyzzy qqq")
    assert any("Nothing is found under the working config" in i.value for i in app.info)
    app.slider(key="fusion_search_floor_semantic").set_value(0.0).run()  # no floor: the least distant
    assert len(preview(app, "working")) == 4
    assert app.session_state["fusion_search_working"]["min_scores"] == {}


def test_rules_show_their_effect_and_bad_rules_are_explained(judged_shop):
    app = open_page()
    app.selectbox(key="fusion_search_rule_kind").select("pin").run()
    app.button(key="fusion_search_rule_add").click().run()
    assert not app.exception
    assert [e.value for e in app.error] == ["The rule was not added: a pin rule needs the product id to pin."]

    app.selectbox(key="fusion_search_rule_product").select("P3")
    app.number_input(key="fusion_search_rule_position").set_value(1)
    app.button(key="fusion_search_rule_add").click().run()
    assert not app.exception
    assert preview(app, "working") == ["P3", "P4", "P2", "P1"]
    effects = table(app, "effects")
    assert list(effects[["product", "action", "before", "after"]].itertuples(index=False, name=None)) == [
        ("P3", "pinned", 4, 1)]

    app.selectbox(key="fusion_search_rule_kind").select("boost").run()
    app.selectbox(key="fusion_search_rule_field").select("category").run()
    app.selectbox(key="fusion_search_rule_value").select("kitchen")
    app.slider(key="fusion_search_rule_strength").set_value(1.0)
    app.button(key="fusion_search_rule_add").click().run()
    assert not app.exception
    working = table(app, "working")
    assert list(working["product"]) == ["P3", "P2", "P1", "P4"]
    assert list(working["move"]) == ["↑3", "=", "=", "↓3"]
    effects = table(app, "effects")
    assert set(effects[effects["action"] == "boosted"]["product"]) == {"P1", "P2", "P3"}

    app.button(key="fusion_search_rule_remove_0").click().run()
    assert [rule["kind"] for rule in app.session_state["fusion_search_working"]["rules"]] == ["boost"]


def test_presets_are_saved_activated_and_rolled_back(judged_shop):
    app = open_page()
    app.text_input(key="fusion_search_preset_name").input("semantic first")
    app.button(key="fusion_search_preset_save").click().run()
    assert not app.exception
    assert any("Saved semantic first v1" in s.value for s in app.success)
    assert active_label() is None  # saved, not served
    # The page keeps what it does not edit, such as the served encoder.
    assert presets.preset_config("search", "semantic first").backend == "onnx-int8"

    app.slider(key="fusion_search_weight_bm25").set_value(0.0).run()
    app.checkbox(key="fusion_search_preset_activate").check()
    app.button(key="fusion_search_preset_save").click().run()
    assert active_label() == "semantic first v2"
    # The served preset is now the working config: nothing differs any more.
    assert preview(app, "active") == preview(app, "working") == ["P2", "P1", "P3"]

    app.button(key="fusion_search_preset_roll_back").click().run()
    assert not app.exception
    assert active_label() == "semantic first v1"
    assert preview(app, "active") == ["P4", "P2", "P1", "P3"]

    with session_scope() as session:
        stored = presets.list_presets(session, "search")
        v2 = int(stored[stored["version"] == 2]["id"].iloc[0])
    app.selectbox(key="fusion_search_preset_version").select(v2)
    app.button(key="fusion_search_preset_activate_version").click().run()
    assert active_label() == "semantic first v2"

    app.button(key="fusion_search_preset_roll_back").click().run()
    app.button(key="fusion_search_preset_roll_back").click().run()
    assert any("first version" in w.value for w in app.warning)
    with session_scope() as session:
        log = queries.audit_log(session)
    actions = list(log[log["action"].str.contains("preset")]["action"])[::-1]
    assert actions == ["save preset", "save preset", "activate preset", "roll back preset",
                       "activate preset", "roll back preset"]
    assert set(log[log["action"].str.contains("preset")]["actor"]) == {"merchandiser1"}


def test_a_preset_version_loads_into_the_editor(judged_shop):
    with session_scope() as session:
        saved = presets.save_preset(session, "search", "lexical", {"weights": {"bm25": 1.0, "semantic": 0.0}},
                                    "test")
    app = open_page()
    app.selectbox(key="fusion_search_preset_version").select(saved.id)
    app.button(key="fusion_search_preset_load").click().run()
    assert app.slider(key="fusion_search_weight_semantic").value == 0.0
    assert preview(app, "working") == ["P4", "P1", "P2"]
    app.button(key="fusion_search_reset").click().run()
    assert app.slider(key="fusion_search_weight_semantic").value == 0.25


def test_a_presets_sponsored_slots_survive_the_editor(judged_shop):
    slots = {"positions": [1, 4], "max_ads": 2, "relevance_floor": 0.5}
    with session_scope() as session:
        saved = presets.save_preset(session, "search", "with ads", {"sponsored": slots}, "test")
    app = open_page()
    app.selectbox(key="fusion_search_preset_version").select(saved.id)
    app.button(key="fusion_search_preset_load").click().run()
    app.slider(key="fusion_search_weight_semantic").set_value(0.5).run()
    assert app.session_state["fusion_search_working"]["sponsored"] == {**slots, "reserve_price": 0.05,
                                                                       "frequency_cap": None}


def test_the_sponsored_slots_are_edited_saved_and_refused_when_they_cannot_work(judged_shop):
    app = open_page()
    # The shipped preset names slots 1 and 4; a merchandiser moves them and caps a campaign's ads.
    assert app.multiselect(key="fusion_search_ads_positions").value == [1, 4]
    app.multiselect(key="fusion_search_ads_positions").set_value([2, 5, 8])
    app.number_input(key="fusion_search_ads_max").set_value(3)
    app.number_input(key="fusion_search_ads_cap").set_value(4).run()
    assert not app.exception and not app.error
    app.text_input(key="fusion_search_preset_name").input("three ads")
    app.button(key="fusion_search_preset_save").click().run()
    stored = presets.preset_config("search", "three ads").sponsored
    assert stored["positions"] == [2, 5, 8] and stored["max_ads"] == 3 and stored["frequency_cap"] == 4
    # More ads than positions: refused with the reason, the slots kept as they were.
    app.number_input(key="fusion_search_ads_max").set_value(3)
    app.multiselect(key="fusion_search_ads_positions").set_value([2]).run()
    refused = [e.value for e in app.error if "These slots cannot be used" in e.value]
    assert refused and "number of positions" in refused[0]
    assert app.session_state["fusion_search_working"]["sponsored"]["positions"] == [2, 5, 8]
    # Off: the preset shows no ads.
    app.toggle(key="fusion_search_ads_on").set_value(False).run()
    assert app.session_state["fusion_search_working"]["sponsored"] is None


def test_a_viewer_sees_everything_read_only(judged_shop):
    app = open_page("viewer")
    assert any("read-only" in info.value for info in app.info)
    assert app.slider(key="fusion_search_weight_bm25").disabled
    assert app.button(key="fusion_search_rule_add").disabled
    for key in ("save", "activate_version", "roll_back"):
        assert app.button(key=f"fusion_search_preset_{key}").disabled
    assert preview(app, "working") == ["P4", "P2", "P1", "P3"]  # the preview still answers queries
    assert metrics(app)


def test_search_metrics_need_judgments_recommendations_do_not(shop):
    app = open_page(query=None)
    assert not app.metric
    assert any("upload a judgment list on the Data page" in info.value for info in app.info)
    assert preview(app, "working")  # a common title word is the default query
    app.radio(key="fusion_scope").set_value("Recommendations").run()
    assert not app.exception
    assert set(metrics(app)) == {"nDCG@10", "Recall@100", "Coverage@10", "Diversity@10"}
    assert app.slider(key="fusion_recommendations_weight_ease").value == 0.85
    assert app.selectbox(key="fusion_customer").value == pseudonym("u2")  # the one with the most products
    assert preview(app, "working") == ["P1", "P4"]


def test_a_learned_ranker_trained_over_another_embedding_model_is_flagged(judged_shop, tmp_path):
    from recsys import model_registry as registry

    def ranker(embedding_model, saved=True):
        folder = tmp_path / f"ranker-{len(list(tmp_path.iterdir()))}"
        folder.mkdir()
        if saved:  # what tells a learned ranker's folder (the booster is only read to rerank)
            (folder / "ranker.json").write_text('{"config": {"top_n": 7}}')
        model = registry.register_model(
            "reranker", str(folder), base_model="learned ranker (LightGBM LambdaMART)",
            training_data={"engine": {"fusion": {}, "embedding_model": embedding_model}},
            hyperparameters={}, metrics={}, actor="test")
        registry.activate_model(model.id, "test")

    ranker(None)  # trained over the shipped model, which is still the active one
    app = app_as("merchandiser", "pages/fusion.py")
    assert not app.exception and not [w for w in app.warning if "learned ranker" in w.value]
    assert app.number_input(key="fusion_search_rerank_top").value == 7  # the N it was trained with
    assert any("with the active reranker, now the learned ranker v1" in c.value for c in app.caption)
    ranker(str(tmp_path / "some-fine-tuned-model"))
    app = app_as("merchandiser", "pages/fusion.py")
    assert any("trained over another embedding model" in w.value for w in app.warning)
    # With a model trained on judgments active, the live metrics leave out the training jobs' queries:
    # here both judged queries are in the jobs' train part.
    assert any("are ones an active model was trained on" in w.value for w in app.warning)
    ranker(None, saved=False)  # registered, but its folder holds no reranker (e.g. deleted by hand)
    app = app_as("merchandiser", "pages/fusion.py")
    assert any("v3 is missing from its folder" in w.value for w in app.warning)
    assert app.checkbox(key="fusion_search_rerank").disabled  # nothing to rerank with
