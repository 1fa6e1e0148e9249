"""Cleaning rules for validated frames, each counted with example rows.

Every rule returns what it did as a `RuleResult`: how many rows it dropped,
changed or merged, and up to five of those rows as they were, with their row
number in the uploaded file. The rules, in the order they run:

- whitespace_and_case: trim and collapse spaces; optionally upper-case ids
- missing_ids: rows without a product id (or user id, or query)
- non_product_codes: postage, fees, manual adjustments and the like
- cancellations_and_returns: cancelled invoice lines and negative quantities
- zero_or_negative_prices
- absurd_values: quantities, prices, ratings or dates outside plausible ranges
- duplicates: repeated rows (for a catalog: repeated product ids, merged)
- several_titles: one product id with several names, resolved to the most frequent
- unknown_products: events, judgments or clicks on a product not in the catalog
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from recsys.data.report import MAX_EXAMPLES, RuleResult
from recsys.data.validate import ROW

# Codes that name a charge, not a product, in any shop. Short codes that are
# charges in one shop can be products in another ('M' is a manual entry in
# Online Retail); the adapter of such a shop adds them.
DEFAULT_NON_PRODUCT_CODES = (
    "POST", "POSTAGE", "DOT", "CARRIAGE", "SHIPPING", "DELIVERY", "FEE", "DISCOUNT",
    "BANK CHARGES", "AMAZONFEE", "CRUK", "ADJUST", "ADJUST2",
)


@dataclass
class CleaningConfig:
    """Settings of the cleaning rules; round-trips through JSON."""

    non_product_codes: tuple[str, ...] = DEFAULT_NON_PRODUCT_CODES
    # Gift vouchers and test codes are not products either (matched without case).
    non_product_pattern: str = r"^(gift_\d+_\d+|test\d*)$"
    id_case: str = "keep"  # "keep" or "upper"
    max_value: float = 10_000.0  # largest plausible quantity of one event
    max_price: float = 100_000.0
    rating_min: float = 0.0
    rating_max: float = 10.0
    earliest: str = "1990-01-01"
    default_event_type: str | None = None
    drop_unknown_products: bool = True

    def to_dict(self) -> dict:
        data = asdict(self)
        data["non_product_codes"] = list(self.non_product_codes)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> CleaningConfig:
        data = dict(data)
        if "non_product_codes" in data:
            data["non_product_codes"] = tuple(data["non_product_codes"])
        return cls(**data)


@dataclass
class Cleaner:
    """Applies rules to one frame and records what each did."""

    frame: pd.DataFrame
    results: list[RuleResult] = field(default_factory=list)

    def examples(self, mask: pd.Series, frame: pd.DataFrame | None = None) -> list[dict]:
        rows = (self.frame if frame is None else frame)[mask].head(MAX_EXAMPLES)
        return [
            {k: (None if _missing(v) else v.isoformat(sep=" ") if isinstance(v, datetime)
                 else v.item() if isinstance(v, np.generic) else v)
             for k, v in record.items()}
            for record in rows.astype(object).to_dict("records")
        ]

    def drop(self, rule: str, description: str, mask: pd.Series) -> None:
        mask = mask.fillna(False).astype(bool)
        count = int(mask.sum())
        if count:
            self.results.append(RuleResult(rule, description, "dropped", count, self.examples(mask)))
            self.frame = self.frame[~mask.to_numpy()]

    def record(self, rule: str, description: str, action: str, rows: int, examples: list[dict]) -> None:
        if rows:
            self.results.append(RuleResult(rule, description, action, rows, examples))


def _missing(value) -> bool:
    return value is None or value is pd.NA or value is pd.NaT or (
        isinstance(value, float) and np.isnan(value))


def _normalise_text(cleaner: Cleaner, columns: list[str], id_columns: list[str], id_case: str) -> None:
    frame = cleaner.frame
    changed = pd.Series(False, index=frame.index)
    before = frame.copy()
    for column in columns + id_columns:
        if column not in frame.columns:
            continue
        values = frame[column].astype("string")
        cleaned = values.str.strip().str.replace(r"\s+", " ", regex=True)
        if column in id_columns and id_case == "upper":
            cleaned = cleaned.str.upper()
        cleaned = cleaned.mask(cleaned == "")
        changed |= (cleaned.fillna("\x00") != values.fillna("\x00")).to_numpy()
        frame[column] = cleaned
    cleaner.record("whitespace_and_case",
                   "Spaces trimmed and collapsed" + (", ids upper-cased" if id_case == "upper" else ""),
                   "changed", int(changed.sum()), cleaner.examples(changed, before))


def _non_product(ids: pd.Series, config: CleaningConfig) -> pd.Series:
    codes = {c.upper() for c in config.non_product_codes}
    upper = ids.str.upper()
    mask = upper.isin(codes)
    if config.non_product_pattern:
        mask |= ids.str.match(re.compile(config.non_product_pattern, re.IGNORECASE))
    return mask.fillna(False)


def _drop_non_product_codes(cleaner: Cleaner, config: CleaningConfig) -> None:
    cleaner.drop("non_product_codes",
                 "Postage, fees, discounts, manual adjustments and vouchers, which are not products",
                 _non_product(cleaner.frame["product_id"], config))


def _mode(frame: pd.DataFrame, key: str, column: str) -> pd.Series:
    """The most frequent value of `column` per `key`; ties go to the first seen."""
    present = frame[[key, column, ROW]].dropna(subset=[column])
    counts = present.groupby([key, column], sort=False, observed=True).agg(
        n=(ROW, "size"), first=(ROW, "min")).reset_index()
    counts = counts.sort_values([key, "n", "first"], ascending=[True, False, True])
    return counts.drop_duplicates(key).set_index(key)[column]


def clean_catalog(frame: pd.DataFrame, config: CleaningConfig) -> tuple[pd.DataFrame, list[RuleResult]]:
    """One row per product id: title, description and category by majority, price by median."""
    cleaner = Cleaner(frame.copy())
    _normalise_text(cleaner, ["title", "description", "category"], ["product_id"], config.id_case)
    cleaner.drop("missing_ids", "Rows without a product id", cleaner.frame["product_id"].isna())
    _drop_non_product_codes(cleaner, config)
    cleaner.drop("missing_titles", "Rows without a title", cleaner.frame["title"].isna())
    if "price" in cleaner.frame:
        price = cleaner.frame["price"]
        cleaner.drop("zero_or_negative_prices", "Prices of zero or less", price <= 0)
        price = cleaner.frame["price"]
        cleaner.drop("absurd_values", f"Prices above {config.max_price:,.0f} or not finite",
                     (price > config.max_price) | np.isinf(price))

    data = cleaner.frame
    ids = data["product_id"]
    repeated = ids.duplicated(keep=False)
    products = pd.DataFrame({"product_id": ids.drop_duplicates()}).set_index("product_id", drop=False)
    products[ROW] = data.groupby("product_id", sort=False)[ROW].min()
    if repeated.any():
        products["title"] = _mode(data, "product_id", "title")
        distinct = data[repeated].groupby("product_id", sort=False)["title"].nunique()
        several = distinct[distinct > 1].index
        examples = []
        for product_id in several[:MAX_EXAMPLES]:
            titles = data.loc[data["product_id"] == product_id, "title"].value_counts()
            examples.append({"product_id": product_id, "chosen": titles.index[0],
                             "others": " | ".join(titles.index[1:4])})
        cleaner.record("several_titles",
                       "Product ids with several titles; the most frequent title was kept",
                       "changed", len(several), examples)
        merged = int(repeated.sum() - data.loc[repeated, "product_id"].nunique())
        cleaner.record("duplicates", "Rows repeating a product id, merged into one product",
                       "merged", merged, cleaner.examples(ids.duplicated(keep="first")))
        for column in ("description", "category"):
            if column in data:
                products[column] = _mode(data, "product_id", column)
        if "price" in data:
            products["price"] = data.groupby("product_id", sort=False)["price"].median()
        if "in_stock" in data:
            # The last row of a product says whether it is in stock now.
            products["in_stock"] = data.groupby("product_id", sort=False)["in_stock"].last()
    else:
        products = data.set_index("product_id", drop=False)
    return products.reset_index(drop=True), cleaner.results


def _finish_events_common(cleaner: Cleaner, config: CleaningConfig, known_products: set[str] | None) -> None:
    data = cleaner.frame
    cleaner.drop("duplicates", "Repeated rows (same user, product, type, value, time and session)",
                 data.drop(columns=[ROW]).duplicated())
    if known_products is not None and config.drop_unknown_products:
        cleaner.drop("unknown_products", "Rows whose product is not in the active catalog",
                     ~cleaner.frame["product_id"].isin(known_products))


def clean_events(
    frame: pd.DataFrame, config: CleaningConfig, known_products: set[str] | None
) -> tuple[pd.DataFrame, pd.DataFrame, list[RuleResult]]:
    """Clean behaviour events; returns (events, users, rule results)."""
    cleaner = Cleaner(frame.copy())
    _normalise_text(cleaner, ["country"], ["product_id", "user_id", "session_id"], config.id_case)
    data = cleaner.frame
    cleaner.drop("missing_ids", "Rows without a user id (anonymous customers) or a product id",
                 data["user_id"].isna() | data["product_id"].isna())
    if "event_type" not in cleaner.frame:
        cleaner.frame["event_type"] = config.default_event_type
    elif config.default_event_type:
        cleaner.frame["event_type"] = cleaner.frame["event_type"].fillna(config.default_event_type)
    cleaner.drop("missing_values", "Rows without an event type or a time",
                 cleaner.frame["event_type"].isna() | cleaner.frame["timestamp"].isna())
    if "value" not in cleaner.frame:
        cleaner.frame["value"] = 1.0
    data = cleaner.frame
    is_rating = data["event_type"] == "rating"
    cleaner.drop("missing_values", "Ratings without a value", is_rating & data["value"].isna())
    cleaner.frame["value"] = cleaner.frame["value"].fillna(1.0)
    _drop_non_product_codes(cleaner, config)

    data = cleaner.frame
    cancelled = data["is_cancellation"].fillna(False) if "is_cancellation" in data else False
    negative = data["event_type"].isin(["cart", "purchase"]) & (data["value"] < 0)
    cleaner.drop("cancellations_and_returns",
                 "Cancelled lines and returns (negative quantities)", negative | cancelled)
    if "price" in cleaner.frame:
        cleaner.drop("zero_or_negative_prices", "Lines with a price of zero or less",
                     cleaner.frame["price"] <= 0)

    data = cleaner.frame
    is_rating = data["event_type"] == "rating"
    value = data["value"]
    latest = datetime.now() + timedelta(days=1)
    absurd = (~np.isfinite(value)
              | (~is_rating & (value.abs() > config.max_value))
              | (is_rating & ((value < config.rating_min) | (value > config.rating_max)))
              | (data["timestamp"] < pd.Timestamp(config.earliest))
              | (data["timestamp"] > pd.Timestamp(latest)))
    cleaner.drop("absurd_values",
                 f"Quantities above {config.max_value:,.0f}, ratings outside "
                 f"{config.rating_min:g}-{config.rating_max:g}, or times before "
                 f"{config.earliest} or in the future", absurd)
    for column in ("is_cancellation", "price"):
        if column in cleaner.frame:
            cleaner.frame = cleaner.frame.drop(columns=column)
    _finish_events_common(cleaner, config, known_products)

    events = cleaner.frame
    users = pd.DataFrame({"user_id": events["user_id"].unique()})
    if "country" in events:
        users = users.merge(_mode(events, "user_id", "country").rename("country"),
                            left_on="user_id", right_index=True, how="left")
        events = events.drop(columns="country")
    return events.reset_index(drop=True), users, cleaner.results


def clean_judgments(
    frame: pd.DataFrame, config: CleaningConfig, known_products: set[str] | None
) -> tuple[pd.DataFrame, list[RuleResult]]:
    """Clean relevance judgments; a (query, product) judged twice keeps the mean grade."""
    cleaner = Cleaner(frame.copy())
    _normalise_text(cleaner, ["query"], ["product_id"], config.id_case)
    data = cleaner.frame
    cleaner.drop("missing_ids", "Rows without a query, a product id or a grade",
                 data["query"].isna() | data["product_id"].isna() | data["grade"].isna())
    cleaner.drop("absurd_values", "Grades that are not finite numbers", ~np.isfinite(cleaner.frame["grade"]))
    if known_products is not None and config.drop_unknown_products:
        cleaner.drop("unknown_products", "Judgments of products not in the active catalog",
                     ~cleaner.frame["product_id"].isin(known_products))
    data = cleaner.frame
    repeated = data.duplicated(["query", "product_id"])
    cleaner.record("duplicates", "Query and product judged more than once; the mean grade was kept",
                   "merged", int(repeated.sum()), cleaner.examples(repeated))
    judged = data.groupby(["query", "product_id"], sort=False, as_index=False).agg(
        grade=("grade", "mean"), **{ROW: (ROW, "min")})
    return judged, cleaner.results


def clean_search_log(
    frame: pd.DataFrame, config: CleaningConfig, known_products: set[str] | None
) -> tuple[pd.DataFrame, list[RuleResult]]:
    """Clean a search log; clicks on unknown products are cleared, the query is kept."""
    cleaner = Cleaner(frame.copy())
    _normalise_text(cleaner, ["query"], ["product_id", "user_id", "session_id"], config.id_case)
    cleaner.drop("missing_ids", "Rows without a query", cleaner.frame["query"].isna())
    for column in ("user_id", "product_id", "timestamp", "session_id"):
        if column not in cleaner.frame:
            cleaner.frame[column] = None
    cleaner.drop("duplicates", "Repeated rows", cleaner.frame.drop(columns=[ROW]).duplicated())
    if known_products is not None and config.drop_unknown_products:
        clicks = cleaner.frame["product_id"]
        unknown = clicks.notna() & ~clicks.isin(known_products)
        cleaner.record("unknown_products", "Clicks on products not in the active catalog; the "
                       "click was cleared and the query kept", "changed", int(unknown.sum()),
                       cleaner.examples(unknown))
        cleaner.frame.loc[unknown.to_numpy(), "product_id"] = None
    return cleaner.frame.reset_index(drop=True), cleaner.results
