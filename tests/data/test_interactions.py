"""Implicit feedback: events summed into one weighted interaction per user and
product. The events are few enough that each expected weight is a sum that
can be done by hand, written next to it."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from recsys.data.interactions import ImplicitWeights, to_interactions


def _events(rows: list[tuple]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["user_id", "product_id", "event_type", "value", "timestamp"])
    frame["timestamp"] = pd.to_datetime(frame["timestamp"])
    return frame


EVENTS = _events([
    ("u1", "P1", "view", 1.0, "2024-01-01"),
    ("u1", "P1", "cart", 1.0, "2024-01-02"),
    ("u1", "P1", "purchase", 2.0, "2024-01-03"),   # the quantity does not scale a purchase
    ("u1", "P2", "click", 1.0, "2024-01-01"),
    ("u2", "P1", "rating", 4.0, "2024-01-05"),
    ("u2", "P2", "rating", 0.0, "2024-01-06"),     # a zero rating weighs nothing
    ("u2", "P3", "view", 1.0, "2024-01-07"),
    ("u2", "P3", "view", 1.0, "2024-01-04"),
])


def _weights(frame: pd.DataFrame) -> dict[tuple[str, str], float]:
    return {(u, p): w for u, p, w in frame[["user_id", "product_id", "weight"]].itertuples(index=False)}


def test_default_weights_sum_per_user_and_product():
    interactions = to_interactions(EVENTS, ImplicitWeights())
    assert _weights(interactions) == {
        ("u1", "P1"): 1 + 3 + 5,
        ("u1", "P2"): 2,
        ("u2", "P1"): 4 * 1,
        ("u2", "P3"): 1 + 1,
    }
    assert list(interactions.columns) == ["user_id", "product_id", "weight", "events", "last_timestamp"]


def test_interactions_count_events_and_keep_the_latest_time():
    interactions = to_interactions(EVENTS, ImplicitWeights()).set_index(["user_id", "product_id"])
    assert interactions.loc[("u1", "P1"), "events"] == 3
    assert interactions.loc[("u2", "P3"), "last_timestamp"] == pd.Timestamp("2024-01-07")


def test_the_rating_weight_multiplies_the_rating():
    interactions = to_interactions(EVENTS, ImplicitWeights(rating=0.5))
    assert _weights(interactions)[("u2", "P1")] == 4 * 0.5


def test_custom_weights_and_zero_weight_pairs_left_out():
    weights = ImplicitWeights(view=0, click=0, cart=10, purchase=1, rating=2)
    assert _weights(to_interactions(EVENTS, weights)) == {
        ("u1", "P1"): 0 + 10 + 1,
        ("u2", "P1"): 4 * 2,
    }


def test_weights_round_trip_through_json_and_ignore_unknown_keys():
    weights = ImplicitWeights(view=0.5, purchase=8)
    stored = json.loads(json.dumps(weights.to_dict()))
    assert ImplicitWeights.from_dict(stored) == weights
    assert ImplicitWeights.from_dict({"cart": "4", "wishlist": 9}) == ImplicitWeights(cart=4.0)
    assert ImplicitWeights.from_dict(None) == ImplicitWeights()


@pytest.mark.parametrize("weights, problems", [
    (ImplicitWeights(), []),
    (ImplicitWeights(view=-1), ["the weight of view must be zero or more, not -1"]),
    (ImplicitWeights(cart=float("nan")), ["the weight of cart must be zero or more, not nan"]),
])
def test_weights_must_not_be_negative(weights, problems):
    assert weights.validate() == problems


def test_stored_events_turn_into_interactions(db_url, catalog_file, events_file):
    from db import queries
    from db.engine import session_scope
    from recsys.data.ingest import IngestOptions, ingest_file
    from tests.conftest import pseudonym

    ingest_file(catalog_file, IngestOptions("catalog"), actor="test", url=db_url)
    version = ingest_file(events_file, IngestOptions("events"), actor="test", url=db_url).version_ids[0]
    with session_scope(db_url) as session:
        events = queries.events_frame(session, version)
    stored = {user: pseudonym(user) for user in ("u1", "u2", "u3")}
    assert _weights(to_interactions(events, ImplicitWeights())) == {
        (stored["u1"], "P1"): 1 + 5,   # a view and a purchase
        (stored["u2"], "P2"): 3,       # a cart
        (stored["u2"], "P3"): 5,       # a purchase
        (stored["u3"], "P4"): 4 * 1,   # a rating of 4
    }
