"""An experiment's report from what the service served and the events that followed.

`served` holds the experiment's lists (request_id, unit, arm, teams, at), `events` the live
events that name those lists or come from their units (type, product_id, session, user_id,
request_id, position, received_at). A click counts when it names one of the experiment's lists,
whoever sent it; a purchase counts for A/B conversion when its session (or user) had seen the
experiment when the service received it, and before the experiment stopped.

Interleaving counts one vote per session: each clicked impression is won by a team or tied
(`assignment.credit`), and a session goes to the team that won more of its impressions (a tie
when neither did). A session's impressions are not independent, so counting them one by one
would overstate the evidence.
"""

from __future__ import annotations

from datetime import datetime

import pandas as pd

from recsys.experiments.analysis import ab_result, interleaving_result
from recsys.experiments.assignment import ARMS, credit

VOTES = {"control": -1, "treatment": 1, "tie": 0}


def _clicks(served: pd.DataFrame, events: pd.DataFrame) -> pd.DataFrame:
    clicks = events[(events["type"] == "click") & events["request_id"].isin(served["request_id"])]
    return clicks.drop_duplicates(["request_id", "position", "product_id"])


def _credits(served: pd.DataFrame, clicks: pd.DataFrame) -> pd.Series:
    """Per served list: "control", "treatment", "tie" or None (no click)."""
    positions = clicks.dropna(subset=["position"]).groupby("request_id")["position"].apply(
        lambda values: [int(value) for value in values])
    return pd.Series([credit(list(teams or []), positions.get(request_id, []))
                      for request_id, teams in zip(served["request_id"], served["teams"])],
                     index=served.index, dtype=object)


def _votes(served: pd.DataFrame, credits: pd.Series) -> pd.Series:
    """Per unit with a clicked impression: "control", "treatment" or "tie"."""
    scores = credits.map(VOTES).dropna()
    if scores.empty:
        return pd.Series(dtype=object)
    balance = scores.groupby(served.loc[scores.index, "unit"]).sum()
    return balance.map(lambda value: "treatment" if value > 0 else "control" if value < 0 else "tie")


def report(method: str, served: pd.DataFrame, events: pd.DataFrame, effect: float | None = None,
           stopped_at: datetime | None = None) -> dict:
    """impressions, clicks, sessions and the method's result (`recsys.experiments.analysis`)."""
    clicks = _clicks(served, events)
    base = {"impressions": int(len(served)), "clicks": int(len(clicks)),
            "sessions": int(served["unit"].nunique())}
    extra = {} if effect is None else {"effect": effect}
    if method == "interleaving":
        counts = _votes(served, _credits(served, clicks)).value_counts()
        result = interleaving_result(int(counts.get("control", 0)), int(counts.get("treatment", 0)),
                                     int(counts.get("tie", 0)), base["sessions"], **extra)
        return {**base, **result}
    arms = _ab_arms(served, events, clicks, stopped_at)
    result = ab_result(arms["control"], arms["treatment"], **extra)
    for name in ARMS:
        result["arms"][name] = {**arms[name], **result["arms"][name]}
    # Wins and ties are interleaving's; an A/B test compares the arms' rates.
    return {**base, "wins_control": None, "wins_treatment": None, "ties": None, **result}


def _ab_arms(served: pd.DataFrame, events: pd.DataFrame, clicks: pd.DataFrame,
             stopped_at: datetime | None) -> dict[str, dict]:
    units = served.groupby("unit").agg(arm=("arm", "first"), first=("at", "min"))
    clicked_units = set(served.loc[served["request_id"].isin(clicks["request_id"]), "unit"])
    purchases = events[events["type"] == "purchase"]
    bought_units = set()
    for column, prefix in (("session", "session:"), ("user_id", "user:")):
        unit = prefix + purchases[column].fillna("")
        first = unit.map(units["first"])
        after = purchases["received_at"] >= first
        if stopped_at is not None:
            after &= purchases["received_at"] <= stopped_at
        bought_units |= set(unit[after.fillna(False)])
    arms = {}
    for name in ARMS:
        members = set(units.index[units["arm"] == name])
        lists = served[served["arm"] == name]
        arms[name] = {"impressions": int(len(lists)),
                      "clicks": int(clicks["request_id"].isin(lists["request_id"]).sum()),
                      "sessions": len(members), "clicked": len(members & clicked_units),
                      "bought": len(members & bought_units)}
    return arms


def timeline(method: str, served: pd.DataFrame, events: pd.DataFrame) -> pd.DataFrame:
    """Cumulative figures per hour (per day past three days) since the experiment's first list:
    interleaving: impressions, sessions won by each arm, ties and the treatment's win rate; A/B:
    each arm's impressions, clicks and click-through."""
    if served.empty:
        return pd.DataFrame(columns=["at"])
    span = served["at"].max() - served["at"].min()
    freq = "D" if span > pd.Timedelta(days=3) else "h"
    served = served.assign(bucket=pd.to_datetime(served["at"]).dt.floor(freq))
    buckets = sorted(served["bucket"].unique())
    clicks = _clicks(served, events)
    if method == "interleaving":
        credits = _credits(served, clicks)
        rows = []
        for bucket in buckets:  # the votes of the sessions as they stood at the end of each bucket
            so_far = served["bucket"] <= bucket
            counts = _votes(served[so_far], credits[so_far]).value_counts()
            wins = {name: int(counts.get(name, 0)) for name in ("control", "treatment", "tie")}
            decided = wins["control"] + wins["treatment"]
            rows.append({"at": bucket, "wins_control": wins["control"], "wins_treatment": wins["treatment"],
                         "ties": wins["tie"], "impressions": int(so_far.sum()),
                         "win_rate_treatment": wins["treatment"] / decided if decided else None})
        return pd.DataFrame(rows)
    click_counts = clicks.groupby("request_id").size()
    served = served.assign(clicks=served["request_id"].map(click_counts).fillna(0))
    table = served.groupby(["bucket", "arm"]).agg(impressions=("request_id", "size"),
                                                  clicks=("clicks", "sum"))
    table = table.unstack("arm").reindex(buckets).fillna(0).cumsum()
    frame = pd.DataFrame(index=table.index)
    for name in ARMS:
        impressions = table[("impressions", name)] if ("impressions", name) in table else 0
        clicked = table[("clicks", name)] if ("clicks", name) in table else 0
        frame[f"impressions_{name}"] = impressions
        frame[f"ctr_{name}"] = clicked / impressions if isinstance(impressions, pd.Series) else None
    return frame.rename_axis("at").reset_index()
