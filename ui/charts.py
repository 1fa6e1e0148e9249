"""Plotly figures of the shop data overview and of the Ads page's reports."""

from __future__ import annotations

import math

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from ui.text import plotly_text


def events_over_time(per_day: pd.DataFrame) -> go.Figure:
    weekly = (per_day.set_index("day").groupby("event_type")["events"]
              .resample("W").sum().reset_index())
    figure = px.line(weekly, x="day", y="events", color="event_type",
                     title="Events per week", labels={"day": "week", "event_type": "event type"})
    return figure


def top_products(popularity: pd.DataFrame, n: int = 20) -> go.Figure:
    top = popularity.head(n).copy()
    # Shop data in labels and hover text is escaped: Plotly reads a few HTML tags (links) in them.
    top["label"] = top.get("title", top["product_id"]).fillna(top["product_id"]).map(plotly_text)
    top["product_id"] = top["product_id"].map(plotly_text)
    figure = px.bar(top.iloc[::-1], x="events", y="label", orientation="h",
                    hover_data=["product_id", "users"], title=f"Top {n} products by events",
                    labels={"label": ""})
    figure.update_layout(height=max(400, 22 * n))
    return figure


def long_tail(popularity: pd.DataFrame) -> go.Figure:
    ranked = popularity.reset_index(drop=True)
    ranked["rank"] = ranked.index + 1
    ranked["share"] = ranked["events"].cumsum() / ranked["events"].sum()
    head = int((ranked["share"] <= 0.8).sum()) + 1
    figure = px.area(ranked, x="rank", y="events", log_y=True,
                     title=f"Long tail: {head:,} of {len(ranked):,} products "
                           f"({head / max(len(ranked), 1):.0%}) make 80% of events",
                     labels={"rank": "product rank by popularity"})
    figure.add_vline(x=head, line_dash="dash")
    return figure


def customers_by_country(countries: pd.DataFrame, n: int = 15) -> go.Figure:
    top = countries.head(n)
    rest = countries.iloc[n:]["users"].sum()
    if rest:
        top = pd.concat([top, pd.DataFrame({"country": ["other"], "users": [rest]})])
    top = top.assign(country=top["country"].map(plotly_text))
    return px.bar(top, x="country", y="users", title="Customers by country", log_y=True)


def ad_traffic(days: pd.DataFrame) -> go.Figure:
    """A campaign's impressions and clicks per UTC day (`days`: day, impressions, clicks), clicks on
    their own axis: they are a small share of the impressions."""
    clicks_step = max(1, math.ceil(days["clicks"].max() / 5))  # whole clicks on their axis
    figure = go.Figure()
    figure.add_trace(go.Bar(x=days["day"], y=days["impressions"], name="impressions", marker_color="#90caf9"))
    figure.add_trace(go.Scatter(x=days["day"], y=days["clicks"], name="clicks", mode="lines+markers",
                                yaxis="y2", line={"color": "#ff7f0e"}))
    figure.update_layout(title="Impressions and clicks per day (UTC)", xaxis={"type": "date"},
                         yaxis={"title": "impressions", "rangemode": "tozero"},
                         yaxis2={"title": "clicks", "overlaying": "y", "side": "right",
                                 "rangemode": "tozero", "dtick": clicks_step, "showgrid": False},
                         legend={"orientation": "h", "y": -0.2}, margin={"t": 40, "b": 10})
    return figure


def ad_spend(days: pd.DataFrame, daily_budget: float) -> go.Figure:
    """A campaign's spend per UTC day (`days`: day, spend) against its daily budget as it is now."""
    figure = go.Figure(go.Bar(x=days["day"], y=days["spend"], name="spend", marker_color="#1f77b4"))
    figure.add_hline(y=daily_budget, line_dash="dash",
                     annotation_text=f"daily budget now: {daily_budget:,.2f}")
    figure.update_layout(title="Spend per day (UTC) against the daily budget", xaxis={"type": "date"},
                         yaxis={"title": "spend", "rangemode": "tozero"}, margin={"t": 40, "b": 10})
    return figure
