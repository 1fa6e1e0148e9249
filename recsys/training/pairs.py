"""Training pairs for fine-tuning, from each kind of shop data, and leak-free splits.

A pair is (anchor, positive): a text and a product text that should embed close
together. Three sources:

- `pairs_from_judgments`: query -> each product graded at or above `min_grade`.
- `pairs_from_search_log`: query -> each product clicked after it (a click is a
  search-log row with a product id).
- `pairs_from_co_purchases`: product -> another product bought in the same basket
  (an order, i.e. session, or else the same customer on the same day), by the
  number of baskets they share.

Every frame has the columns `group` (what a split keeps together: the query,
lower-cased and trimmed, or the anchor product's id), `anchor`, `anchor_id`,
`positive`, `positive_id` and `grade` (the judgment's grade, the click count or
the number of shared baskets).

`split_pairs` assigns whole groups to train, validation and test by a seeded
hash of the group key, so no query (or anchor product) is in two parts, and a
group keeps its part when other groups are added or removed.

>>> import pandas as pd
>>> catalog = pd.DataFrame({"product_id": ["1", "2"], "title": ["Red mug", "Lawn mower"]})
>>> judgments = pd.DataFrame({"query": ["mug", "mug"], "product_id": ["1", "2"], "grade": [3, 1]})
>>> pairs_from_judgments(judgments, catalog, min_grade=2.5)[["anchor", "positive"]].values.tolist()
[['mug', 'Red mug']]
"""

from __future__ import annotations


import pandas as pd

from recsys.embedding_model import product_texts  # noqa: F401  (the texts pairs are made of)
# The split by query lives with the other evaluation splits; named here too, where pairs are split.
from recsys.evaluation.splits import (PARTS, SplitFractions, assign_parts, query_group,  # noqa: F401
                                      split_judgments)

PAIR_COLUMNS = ["group", "anchor", "anchor_id", "positive", "positive_id", "grade"]
SOURCES = ("judgments", "search_log", "co_purchases")


def _with_texts(frame: pd.DataFrame, texts: pd.Series) -> pd.DataFrame:
    frame = frame[frame["positive_id"].isin(texts.index)].copy()
    frame["positive"] = texts.reindex(frame["positive_id"]).to_numpy()
    frame = frame[frame["positive"].str.len() > 0]
    return frame[PAIR_COLUMNS].reset_index(drop=True)


def pairs_from_judgments(judgments: pd.DataFrame, catalog: pd.DataFrame, min_grade: float) -> pd.DataFrame:
    """Query -> product pairs for every judgment with grade >= `min_grade`.

    `judgments` has columns query, product_id, grade; repeated (query, product)
    judgments are averaged first. Products not in `catalog` are dropped.
    """
    frame = judgments.assign(query=judgments["query"].astype(str).str.strip(),
                             product_id=judgments["product_id"].astype(str),
                             grade=pd.to_numeric(judgments["grade"]).astype(float))
    frame = frame[frame["query"] != ""]
    frame = frame.groupby(["query", "product_id"], as_index=False, sort=False)["grade"].mean()
    frame = frame[frame["grade"] >= min_grade]
    pairs = pd.DataFrame({"group": frame["query"].map(query_group), "anchor": frame["query"],
                          "anchor_id": frame["query"], "positive_id": frame["product_id"],
                          "grade": frame["grade"]})
    return _with_texts(pairs, product_texts(catalog))


def pairs_from_search_log(search_log: pd.DataFrame, catalog: pd.DataFrame, min_clicks: int = 1) -> pd.DataFrame:
    """Query -> clicked product pairs; `grade` is the number of clicks, at least `min_clicks`.

    `search_log` has columns query and product_id (blank for a search without a click).
    """
    clicks = search_log[search_log["product_id"].notna() & (search_log["product_id"].astype(str) != "")]
    clicks = clicks.assign(query=clicks["query"].astype(str).str.strip(),
                           product_id=clicks["product_id"].astype(str))
    clicks = clicks[clicks["query"] != ""]
    counted = clicks.groupby(["query", "product_id"], as_index=False, sort=False).size()
    counted = counted[counted["size"] >= min_clicks]
    pairs = pd.DataFrame({"group": counted["query"].map(query_group), "anchor": counted["query"],
                          "anchor_id": counted["query"], "positive_id": counted["product_id"],
                          "grade": counted["size"].astype(float)})
    return _with_texts(pairs, product_texts(catalog))


def baskets(events: pd.DataFrame, event_types: tuple[str, ...] = ("purchase", "cart")) -> pd.Series:
    """The basket key of each event of `event_types`: its session, else customer and day."""
    chosen = events[events["event_type"].isin(event_types)]
    day = pd.to_datetime(chosen["timestamp"]).dt.strftime("%Y-%m-%d")
    fallback = chosen["user_id"].astype(str) + "@" + day
    if "session_id" in chosen.columns:
        session = chosen["session_id"].astype("string")
        return session.where(session.notna() & (session != ""), fallback).astype(str)
    return fallback


def pairs_from_co_purchases(events: pd.DataFrame, catalog: pd.DataFrame, min_baskets: int = 2,
                            max_per_anchor: int = 5, max_basket_size: int = 50) -> pd.DataFrame:
    """Product -> product pairs bought together in at least `min_baskets` baskets.

    Each anchor keeps its `max_per_anchor` most frequent partners; baskets
    larger than `max_basket_size` (wholesale orders of everything) are skipped.
    `events` has columns user_id, product_id, event_type, timestamp and
    optionally session_id.
    """
    keys = baskets(events)
    items = pd.DataFrame({"basket": keys.to_numpy(),
                          "product_id": events.loc[keys.index, "product_id"].astype(str).to_numpy()})
    items = items.drop_duplicates()
    sizes = items.groupby("basket")["product_id"].transform("size")
    items = items[(sizes >= 2) & (sizes <= max_basket_size)]
    together = items.merge(items, on="basket", suffixes=("_anchor", "_positive"))
    together = together[together["product_id_anchor"] != together["product_id_positive"]]
    counted = together.groupby(["product_id_anchor", "product_id_positive"], as_index=False).size()
    counted = counted[counted["size"] >= min_baskets]
    counted = counted.sort_values(["product_id_anchor", "size", "product_id_positive"],
                                  ascending=[True, False, True])
    counted = counted.groupby("product_id_anchor", sort=False).head(max_per_anchor)
    texts = product_texts(catalog)
    counted = counted[counted["product_id_anchor"].isin(texts.index)]
    pairs = pd.DataFrame({"group": counted["product_id_anchor"],
                          "anchor": texts.reindex(counted["product_id_anchor"]).to_numpy(),
                          "anchor_id": counted["product_id_anchor"],
                          "positive_id": counted["product_id_positive"],
                          "grade": counted["size"].astype(float)})
    return _with_texts(pairs, texts)


def split_pairs(pairs: pd.DataFrame, fractions: SplitFractions = SplitFractions(),
                both_products: bool = False) -> dict[str, pd.DataFrame]:
    """{"train", "validation", "test": pairs}, whole groups per part (no query in two parts).

    `both_products` (product -> product pairs): products, not anchors, get parts, and a pair
    is kept only when its two products share a part; otherwise the test pair B -> A would be
    the training pair A -> B turned round, which a symmetric similarity scores the same.
    """
    parts = assign_parts(pairs["group"], fractions)
    if both_products:
        partner = assign_parts(pairs["positive_id"], fractions)
        parts = parts.where(parts == partner, "dropped")
    return {part: pairs[parts == part].reset_index(drop=True) for part in PARTS}
