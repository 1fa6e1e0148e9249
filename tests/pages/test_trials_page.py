"""pages/trials.py: a merchandiser makes a query set and a trial; a grader judges it blind; the scorecard."""

from __future__ import annotations

from db.engine import session_scope
from recsys.accounts import create_account
from recsys.fusion import presets
from recsys.fusion.defaults import SEARCH
from recsys.trials import service as trials
from tests.pages.conftest import PASSWORD, app_as


def _presets(url):
    with session_scope(url) as session:
        presets.ensure_default_presets(session)
        presets.save_preset(session, "search", "bm25-only", {**SEARCH, "weights": {"bm25": 1.0, "semantic": 0}},
                            "test")


def _button(app, key):
    return next(button for button in app.button if button.key == key)


def test_a_merchandiser_makes_a_query_set_and_a_trial_of_two_presets(shop):
    _presets(shop)
    app = app_as("merchandiser", "pages/trials.py")
    assert not app.exception
    app.radio(key="qs_source").set_value("typed").run()
    app.text_area(key="qs_text").set_value("red mug\nteapot\nRed Mug").run()
    assert any("2 queries: red mug, teapot" in caption.value for caption in app.caption)
    app.text_input(key="qs_name").set_value("kitchen").run()
    _button(app, "qs_save").click().run()
    assert any("Saved kitchen v1: 2 queries" in success.value for success in app.success)
    assert app.multiselect(key="trial_configs").value == ["default v1", "bm25-only v1"]
    app.text_input(key="trial_name").set_value("bm25 vs default")  # in a form: sent with its button
    app.button[[b.label for b in app.button].index("Create the trial")].click().run()
    assert not app.exception
    assert any("Created trial 1, bm25 vs default" in success.value for success in app.success)
    assert trials.get_trial(shop, 1).query_set.queries == ["red mug", "teapot"]


def test_a_grader_judges_with_the_buttons_goes_back_and_sees_nothing_else(shop):
    _presets(shop)
    query_set = trials.save_query_set(shop, "kitchen", ["red mug", "teapot"], "typed", "test")
    trial = trials.create_trial(shop, "t", query_set, [trials.preset_configuration(shop, "default"),
                                                      trials.preset_configuration(shop, "bm25-only")], "test")
    pool = sum(map(len, trial.pool().values()))
    create_account("grace", PASSWORD, "grader", actor="test")
    app = app_as(None)
    app.session_state["identity"] = {"username": "grace", "role": "grader"}
    app.run()
    assert not app.exception and app.title[0].value == "Trials & judging"
    assert [tab.label for tab in app.tabs] == ["Judge", "Side by side"]  # no scorecard, no trial building
    first = trials.pairs_to_grade(shop, trial.id, "grace").iloc[0]
    assert any(f"Query: **{first['query']}**" == m.value for m in app.markdown)
    _button(app, "grade_3").click().run()
    _button(app, "grade_skip").click().run()
    judged = trials.judgments(shop, trial.id).set_index("product_id")
    assert judged.loc[first["product_id"], "grade"] == 3 and list(judged["verdict"]) == ["graded", "skipped"]
    assert f"You have judged 2 of {pool} pairs" in app.get("progress")[0].proto.text
    _button(app, "grade_back").click().run()  # back to the skipped pair: grade it after all
    _button(app, "grade_1").click().run()
    assert sorted(trials.judgments(shop, trial.id)["verdict"]) == ["graded", "graded"]
    for _ in range(pool - 2):
        _button(app, "grade_2").click().run()
    assert any("You have judged every pair" in success.value for success in app.success)
    for _ in range(2):  # side by side: the right list, whichever configuration it is, each time
        _button(app, "sbs_right").click().run()
    assert any("You have compared every query" in success.value for success in app.success)
    assert len(trials.preferences(shop, trial.id)) == 2

    owner = app_as("admin", "pages/trials.py")
    assert not owner.exception
    scores = next(frame.value for frame in owner.dataframe if "ndcg@10" in frame.value.columns)
    assert scores["name"].tolist() == ["default v1", "bm25-only v1"] and scores["judged@10"].max() > 0
    _button(owner, "score_activate").click().run()
    assert any("is now active" in success.value for success in owner.success)
