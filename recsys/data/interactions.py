"""Implicit feedback: events turned into one weighted interaction per user and product.

A purchase says more than a view. `ImplicitWeights` gives each event type a
weight (by default view 1, click 2, cart 3, purchase 5); a rating counts its
value times the rating weight. The weights are a setting operators change on
the Data page; they are stored in SQL under the key ``implicit_weights``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import pandas as pd

from db import queries
from db.engine import session_scope

SETTING_KEY = "implicit_weights"


@dataclass
class ImplicitWeights:
    view: float = 1.0
    click: float = 2.0
    cart: float = 3.0
    purchase: float = 5.0
    rating: float = 1.0  # multiplies the rating's value

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict | None) -> ImplicitWeights:
        return cls(**{k: float(v) for k, v in (data or {}).items() if k in cls.__dataclass_fields__})

    def validate(self) -> list[str]:
        return [f"the weight of {name} must be zero or more, not {value}"
                for name, value in self.to_dict().items() if not value >= 0]


def to_interactions(events: pd.DataFrame, weights: ImplicitWeights) -> pd.DataFrame:
    """Sum event weights per (user_id, product_id).

    `events` has columns user_id, product_id, event_type, value and timestamp.
    Returns user_id, product_id, weight, events (count) and last_timestamp, with
    zero-weight pairs left out.

    >>> events = pd.DataFrame({"user_id": ["u", "u"], "product_id": ["p", "p"],
    ...     "event_type": ["view", "purchase"], "value": [1.0, 2.0],
    ...     "timestamp": pd.to_datetime(["2024-01-01", "2024-01-02"])})
    >>> to_interactions(events, ImplicitWeights())["weight"].tolist()
    [6.0]
    """
    per_type = weights.to_dict()
    weight = events["event_type"].map(per_type).astype("float64")
    is_rating = events["event_type"] == "rating"
    weight = weight.where(~is_rating, weight * events["value"])
    grouped = events.assign(weight=weight).groupby(["user_id", "product_id"], as_index=False).agg(
        weight=("weight", "sum"), events=("weight", "size"), last_timestamp=("timestamp", "max"))
    return grouped[grouped["weight"] > 0].reset_index(drop=True)


def load_active(url: str | None = None) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, int]]:
    """The active events as interactions (weighted by the stored setting) and the active catalog.

    Returns (interactions with user_id, product_id, weight, events, timestamp;
    catalog with product_id, title, category, price; {kind: version id}).
    Raises LookupError when no events or no catalog are active.
    """
    with session_scope(url) as session:
        events_version = queries.active_version(session, "events")
        catalog_version = queries.active_version(session, "catalog")
        if events_version is None or catalog_version is None:
            raise LookupError("no active catalog and events: upload them on the Data page first")
        weights = ImplicitWeights.from_dict(queries.get_setting(session, SETTING_KEY))
        versions = {"events": events_version.id, "catalog": catalog_version.id}
    interactions, catalog = load_versions(url, versions["catalog"], versions["events"], weights)
    return interactions, catalog, versions


def load_versions(url: str | None, catalog_version: int, events_version: int,
                  weights: ImplicitWeights) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Events version `events_version` as interactions weighted by `weights`, and catalog version
    `catalog_version`: (interactions with user_id, product_id, weight, events, timestamp; catalog)."""
    with session_scope(url) as session:
        events = queries.events_frame(session, events_version)
        catalog = queries.products_frame(session, catalog_version)
    interactions = to_interactions(events, weights).rename(columns={"last_timestamp": "timestamp"})
    return interactions, catalog
