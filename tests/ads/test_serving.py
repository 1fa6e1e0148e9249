"""Sponsored products served by the REST service: labelled, relevant only, organic results kept,
impressions recorded, clicks charged once and within budgets."""

from __future__ import annotations

import dataclasses

import pytest
from fastapi.testclient import TestClient

from recsys.accounts import Identity
from recsys.active import ServedPreset
from recsys.ads import campaigns
from recsys.fusion import FusionConfig
from recsys.fusion import defaults

OPERATOR = Identity("op", "operator")
SLOTS = {"positions": [1, 4], "max_ads": 2, "relevance_floor": 0.3, "reserve_price": 0.05}


@pytest.fixture
def client_with_slots(served_shop, engine, api_key):
    """A client of a service whose search and recommendation presets name sponsored slots."""
    from recsys.serving.app import create_app

    shipped = {"search": defaults.SEARCH, "recommendations": defaults.RECOMMENDATIONS}
    presets = {scope: ServedPreset(scope, FusionConfig.resolve({**config, "sponsored": SLOTS}))
               for scope, config in shipped.items()}
    served = dataclasses.replace(engine, presets=presets)
    app = create_app(served_shop, served, metrics_interval_s=0.05, alerts_interval_s=None)
    with TestClient(app, headers={"X-API-Key": api_key}) as test_client:
        yield test_client


def create(served_shop: str, products: list[str], **fields):
    values = {"name": "Mugs", "advertiser": "Acme", "max_cpc": 0.5, "daily_budget": 10.0, **fields}
    return campaigns.create_campaign(OPERATOR, products=products, url=served_shop, **values)


def search(http, query: str, k: int = 1, **params) -> dict:
    response = http.get("/search", params={"q": query, "k": k, "session": "s-1", **params})
    assert response.status_code == 200, response.text
    return response.json()


def ids(body: dict) -> list[tuple[str, bool]]:
    return [(item["product_id"], item["sponsored"]) for item in body["items"]]


def click(http, body: dict, product: str, event_id: str | None) -> dict:
    event = {"type": "click", "product_id": product, "session": "s-1", "request_id": body["request_id"]}
    response = http.post("/events", json=[{**event, **({"event_id": event_id} if event_id else {})}])
    assert response.status_code == 202, response.text
    return response.json()


def test_a_relevant_ad_takes_its_slot_labelled_and_organic_results_move_down(served_shop, client_with_slots):
    campaign = create(served_shop, ["P02"])  # the blue mug: relevance 0.97 to "coffee mug"
    body = search(client_with_slots, "coffee mug")
    assert ids(body) == [("P02", True), ("P01", False)]
    ad = body["items"][0]
    assert ad["campaign_id"] == campaign.campaign_id and ad["title"] == "Blue ceramic coffee mug"
    assert 0.3 <= ad["score"] <= 1  # its relevance to the query
    assert campaigns.report(OPERATOR, campaign.campaign_id, url=served_shop).campaigns[0].impressions == 1


def test_no_ad_below_the_relevance_floor_or_for_an_unrelated_query(served_shop, client_with_slots):
    create(served_shop, ["P02"])  # relevance 0.11 to "red coffee mug", under the floor 0.3
    create(served_shop, ["P07"], name="Drills")  # the cordless drill: nothing to do with mugs or gardens
    assert ids(search(client_with_slots, "red coffee mug")) == [("P01", False)]
    assert ids(search(client_with_slots, "garden chair", k=2)) == [("P05", False), ("P06", False)]
    assert ids(search(client_with_slots, "cordless drill")) == [("P07", False)]  # on the page already


def test_keyword_and_category_targeting(served_shop, client_with_slots):
    create(served_shop, ["P02"], keywords=["espresso"])
    assert ids(search(client_with_slots, "coffee mug")) == [("P01", False)]
    assert ids(search(client_with_slots, "espresso coffee mug"))[0] == ("P02", True)
    campaigns.pause_campaign(OPERATOR, 1, url=served_shop)
    client_with_slots.app.state.service.ads.refresh()
    create(served_shop, ["P02"], categories=["garden"], name="Garden mugs")
    assert ids(search(client_with_slots, "coffee mug")) == [("P01", False)]  # a kitchen page
    assert ids(search(client_with_slots, "coffee mug", category="garden"))[0] == ("P02", True)


def test_a_click_is_charged_once_at_the_second_price_and_a_spent_budget_stops_ads(served_shop,
                                                                                 client_with_slots):
    campaign = create(served_shop, ["P02"], max_cpc=0.5, daily_budget=0.5)
    body = search(client_with_slots, "coffee mug")
    assert ids(body)[0] == ("P02", True)
    charged = click(client_with_slots, body, "P02", "e-1")["ad_clicks"]
    # Alone in its auction, it pays the reserve price, not its bid.
    assert charged == [{"index": 0, "campaign_id": campaign.campaign_id, "outcome": "charged",
                        "charged": 0.05}]
    replay = click(client_with_slots, body, "P02", "e-1")
    assert replay["duplicates"] == 1 and replay["ad_clicks"][0]["outcome"] == "replayed"
    again = click(client_with_slots, body, "P02", "e-2")["ad_clicks"]  # another click on the same ad
    assert again[0]["outcome"] == "already_clicked" and again[0]["charged"] == 0
    organic = click(client_with_slots, body, "P01", "e-3")  # the organic result: nothing charged
    assert organic["accepted"] == 1 and organic["ad_clicks"] == []
    spent = campaigns.report(OPERATOR, campaign.campaign_id, url=served_shop).campaigns[0].spend
    assert spent == pytest.approx(0.05)

    # What is left today (0.45) no longer covers a click at the bid (0.5): its ads stop.
    client_with_slots.app.state.service.ads.refresh()
    assert ids(search(client_with_slots, "coffee mug")) == [("P01", False)]


def test_the_frequency_cap_counts_a_sessions_impressions(served_shop, engine, api_key):
    from recsys.serving.app import create_app

    create(served_shop, ["P02"])
    capped = {**defaults.SEARCH, "sponsored": {**SLOTS, "frequency_cap": 2}}
    presets = {"search": ServedPreset("search", FusionConfig.resolve(capped)),
               "recommendations": ServedPreset("recommendations",
                                               FusionConfig.resolve(defaults.RECOMMENDATIONS))}
    app = create_app(served_shop, dataclasses.replace(engine, presets=presets), metrics_interval_s=0.05,
                     alerts_interval_s=None)
    with TestClient(app, headers={"X-API-Key": api_key}) as http:
        shown = [ids(search(http, "coffee mug"))[0][1] for _ in range(3)]
        assert shown == [True, True, False]
        assert ids(search(http, "coffee mug", session="s-2"))[0] == ("P02", True)  # another session


def test_recommendations_carry_an_ad_relevant_to_the_customer(served_shop, client_with_slots):
    create(served_shop, ["P04"], name="Kettles")  # relevance 0.94 to u1, who bought mugs and a teapot
    create(served_shop, ["P07"], name="Drills")  # nothing to do with u1
    response = client_with_slots.get("/recommend/u1", params={"k": 1})
    assert response.status_code == 200, response.text
    items = response.json()["items"]
    assert [(item["product_id"], item["sponsored"]) for item in items] == [("P04", True), ("P02", False)]


def test_a_preset_without_slots_serves_no_ads(served_shop, engine, api_key):
    from recsys.serving.app import create_app

    create(served_shop, ["P02"])
    shipped = {"search": defaults.SEARCH, "recommendations": defaults.RECOMMENDATIONS}
    presets = {scope: ServedPreset(scope, FusionConfig.resolve({**config, "sponsored": None}))
               for scope, config in shipped.items()}
    app = create_app(served_shop, dataclasses.replace(engine, presets=presets), metrics_interval_s=0.05,
                     alerts_interval_s=None)
    with TestClient(app, headers={"X-API-Key": api_key}) as http:
        assert ids(search(http, "coffee mug")) == [("P01", False)]


def test_the_shipped_presets_name_two_slots_so_a_new_campaign_shows(served_shop, client):
    create(served_shop, ["P02"])
    assert ids(search(client, "coffee mug")) == [("P02", True), ("P01", False)]


def test_under_an_interleaving_experiment_an_ad_belongs_to_neither_arm(served_shop, engine, api_key):
    from recsys.active import RunningExperiment
    from recsys.serving.app import create_app

    create(served_shop, ["P02"])
    search_preset = ServedPreset("search", FusionConfig.resolve(defaults.SEARCH))
    bm25_only = FusionConfig.resolve({**defaults.SEARCH, "weights": {"bm25": 1.0}})
    experiment = RunningExperiment(1, "bm25 vs shipped", "interleaving", 1.0, {
        "control": search_preset, "treatment": ServedPreset("search", bm25_only)})
    served = dataclasses.replace(engine, experiment=experiment, arms={
        arm: engine.retriever.with_fusion(preset.config) for arm, preset in experiment.arms.items()})
    app = create_app(served_shop, served, metrics_interval_s=0.05, alerts_interval_s=None, follow_s=None)
    with TestClient(app, headers={"X-API-Key": api_key}) as http:
        body = search(http, "coffee mug")
        assert [(item["product_id"], item["sponsored"], item["team"]) for item in body["items"]][0] == (
            "P02", True, None)
        assert {item["team"] for item in body["items"][1:]} <= {"control", "treatment"}
        assert http.app.state.service.served([body["request_id"]])[body["request_id"]][0] == "P02"
