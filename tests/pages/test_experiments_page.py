"""pages/experiments.py: start an experiment of two search presets, read its report, stop it and promote
the winner, feed live clicks into the search log. Nothing is fitted: the page reads SQL only."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from db import experiments as store
from db.engine import session_scope
from recsys.accounts import create_account
from recsys.data import IngestOptions, ingest_file
from recsys.experiments import service
from recsys.fusion import presets
from recsys.fusion.defaults import SEARCH
from tests.pages.conftest import PASSWORD, ROLES, app_as, shown

PAGE = "pages/experiments.py"
START = datetime(2024, 3, 1, 9, 0)


@pytest.fixture
def presets_db(db_url, catalog_file) -> str:
    """A catalog, the default search preset (active) and a lexical one, and one account per role."""
    ingest_file(catalog_file, IngestOptions("catalog"), actor="test")
    with session_scope(db_url) as session:
        presets.ensure_default_presets(session)
        presets.save_preset(session, "search", "lexical", {**SEARCH, "weights": {"bm25": 1.0, "semantic": 0}},
                            "test")
    for role in ROLES:
        create_account(role + "1", PASSWORD, role, actor="test")
    return db_url


def _button(app, key):
    return next(button for button in app.button if button.key == key)


def _traffic(url: str, experiment_id: int, arms: list[str], clicked: list[bool]) -> None:
    """One searched list per session (arm "interleaved": the treatment picked position 1), clicked at
    position 1 where `clicked` says so, an hour apart."""
    served, events = [], []
    for number, (arm, click) in enumerate(zip(arms, clicked)):
        at = START + timedelta(hours=number)
        teams = ["treatment", "control", "treatment", "control"] if arm == "interleaved" else None
        served.append({"request_id": f"r-{number}", "endpoint": "/search", "query": "mug",
                       "unit": f"session:s-{number}", "experiment_id": experiment_id, "arm": arm,
                       "products": ["P1", "P2", "P3", "P4"], "teams": teams, "at": at})
        if click:
            events.append({"event_id": f"click-{number}", "type": "click", "product_id": "P1",
                           "session": f"s-{number}", "user_id": f"u-{number}", "request_id": f"r-{number}",
                           "position": 1, "at": at + timedelta(minutes=1),
                           "received_at": at + timedelta(minutes=1)})
    with session_scope(url) as session:
        store.insert_served(session, served)
        store.insert_events(session, events)


def test_empty_state_says_what_to_do_and_a_viewer_does_not_get_the_page(presets_db):
    app = app_as("operator", PAGE)
    assert not app.exception and app.title[0].value == "Experiments"
    assert any("No experiment yet" in info.value for info in app.info)
    assert not app.dataframe and not app.metric
    assert any("POST /events" in caption.value and "session=S" in caption.value for caption in app.caption)
    assert app.selectbox(key="exp_control").value == "default v1"  # the active preset is the control
    assert app.selectbox(key="exp_treatment").value == "lexical v1"
    assert _button(app, "FormSubmitter:exp_form-Start the experiment").disabled  # needs "merchandise"
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        app_as("viewer", PAGE)


def test_a_merchandiser_starts_an_experiment_through_the_form(presets_db):
    app = app_as("merchandiser", PAGE)
    app.text_input(key="exp_name").set_value("lexical-vs-default")  # in a form: sent with its button
    app.radio(key="exp_method").set_value("ab")
    app.slider(key="exp_traffic").set_value(0.5)
    _button(app, "FormSubmitter:exp_form-Start the experiment").click().run()
    assert not app.exception
    assert any("Started experiment 1, lexical-vs-default: default v1 against lexical v1 (A/B test) on 50%"
               in shown(success.value) for success in app.success)
    table = app.dataframe[0].value
    assert table[["name", "method", "control", "treatment", "status"]].values.tolist() == [
        ["lexical-vs-default", "ab", "default v1", "lexical v1", "running"]]
    assert table["traffic"].tolist() == [0.5]
    assert app.selectbox(key="exp_chosen").value == 1
    assert any("No significant winner yet" in info.value for info in app.info)
    assert any("Nothing served in this experiment yet" in caption.value for caption in app.caption)


def test_the_same_preset_twice_is_refused_with_the_reason(presets_db):
    app = app_as("admin", PAGE)
    app.text_input(key="exp_name").set_value("pointless")
    app.selectbox(key="exp_treatment").set_value("default v1")
    _button(app, "FormSubmitter:exp_form-Start the experiment").click().run()
    assert not app.exception
    assert any("was not started: control and treatment are both default v1" in error.value
               for error in app.error)
    assert service.list_experiments(presets_db).empty


def test_an_interleaving_report_then_stop_and_promote_the_winner(presets_db):
    created = service.create_experiment(presets_db, "lexical-vs-default", "default", "lexical",
                                        "interleaving", "test")
    _traffic(presets_db, created.id, ["interleaved"] * 12, [True] * 10 + [False] * 2)
    app = app_as("merchandiser", PAGE)
    assert not app.exception
    metrics = {metric.label: metric.value for metric in app.metric}
    assert metrics == {"Impressions": "12", "Clicks": "10", "Sessions": "12", "Wins of control": "0",
                       "Wins of treatment": "10", "Ties": "0", "Treatment win rate": "100.0%"}
    assert any("exact binomial" in markdown.value for markdown in app.markdown)
    assert any("Significant winner (5% level): the treatment, lexical v1." in s.value for s in app.success)
    assert any("more sessions are needed to detect win rate 55%" in caption.value for caption in app.caption)
    charts = app.get("plotly_chart")
    assert len(charts) == 2 and '"y":0.5' in charts[1].proto.spec.replace(" ", "")  # the no-difference line
    assert any(warning.value.startswith("Early: the test has not reached") for warning in app.warning)
    assert not _button(app, "exp_promote").disabled
    _button(app, "exp_promote").click().run()
    assert not app.exception
    assert any("lexical v1 is now the active search preset" in success.value for success in app.success)
    with session_scope(presets_db) as session:
        assert presets.active_preset(session, "search").label == "lexical v1"
    assert app.dataframe[0].value[["status", "winner"]].values.tolist() == [["stopped", "treatment"]]
    assert not [button for button in app.button if button.key in ("exp_stop", "exp_promote")]


def test_an_ab_report_without_a_winner_cannot_promote_and_stops(presets_db):
    created = service.create_experiment(presets_db, "ab", "default", "lexical", "ab", "test")
    _traffic(presets_db, created.id, ["control", "treatment"] * 3, [True, True, False, False, True, False])
    app = app_as("admin", PAGE)
    assert not app.exception
    metrics = {metric.label: metric.value for metric in app.metric}
    assert metrics["Click-through (control)"] == "66.7%" and metrics["Click-through (treatment)"] == "33.3%"
    assert metrics["Conversion (control)"] == "0.0%" and metrics["Sessions (treatment)"] == "3"
    assert any("No significant winner yet" in info.value for info in app.info)
    assert len(app.get("plotly_chart")) == 1
    assert _button(app, "exp_promote").disabled
    _button(app, "exp_stop").click().run()
    assert any("Stopped experiment 1, ab." == success.value for success in app.success)
    with session_scope(presets_db) as session:
        assert presets.active_preset(session, "search").label == "default v1"



def test_clicks_after_searches_become_a_search_log_version_once(presets_db):
    created = service.create_experiment(presets_db, "lexical-vs-default", "default", "lexical",
                                        "interleaving", "test")
    _traffic(presets_db, created.id, ["interleaved"] * 3, [True, True, False])
    app = app_as("operator", PAGE)
    _button(app, "exp_feed").click().run()
    assert not app.exception
    assert any(success.value.startswith("Stored search-log version v2 (2 rows)") for success in app.success)
    _button(app, "exp_feed").click().run()
    assert any("Nothing new" in info.value for info in app.info)
    assert _button(app_as("merchandiser", PAGE), "exp_feed").disabled  # storing data needs "upload"
