"""What each kind of upload holds: its canonical columns, their types, and the
source column names we recognise for them.

A mapping takes the uploaded file's column names to these canonical names,
e.g. ``{"StockCode": "product_id", "Description": "title"}``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class ColumnSpec:
    name: str
    type: str  # "id", "text", "number", "datetime", "bool" or "event_type"
    required: bool
    help: str
    synonyms: tuple[str, ...] = ()


@dataclass(frozen=True)
class KindSpec:
    name: str
    label: str
    columns: tuple[ColumnSpec, ...]

    @property
    def required(self) -> list[str]:
        return [c.name for c in self.columns if c.required]

    def column(self, name: str) -> ColumnSpec:
        return next(c for c in self.columns if c.name == name)


_PRODUCT_ID = ColumnSpec(
    "product_id", "id", True, "The product's id, as the catalog has it.",
    ("product_id", "productid", "item_id", "itemid", "item", "sku", "stockcode",
     "product_uid", "asin", "article_id", "product"),
)
_USER_ID = ColumnSpec(
    "user_id", "id", True, "The customer's id.",
    ("user_id", "userid", "customer_id", "customerid", "customer", "visitorid",
     "visitor_id", "client_id", "user"),
)
_TIMESTAMP = ColumnSpec(
    "timestamp", "datetime", True, "When it happened (ISO date-time or Unix seconds).",
    ("timestamp", "time", "datetime", "date", "invoicedate", "event_time", "ts",
     "created_at", "order_date"),
)
_SESSION = ColumnSpec(
    "session_id", "id", False, "A session, basket or invoice that groups events.",
    ("session_id", "sessionid", "session", "invoiceno", "invoice", "order_id",
     "orderid", "basket_id", "transactionid", "transaction_id"),
)
_QUERY = ColumnSpec(
    "query", "text", True, "The search query as typed.",
    ("query", "search_term", "search_query", "q", "keywords", "term"),
)

KINDS: dict[str, KindSpec] = {
    "catalog": KindSpec("catalog", "Catalog (products)", (
        _PRODUCT_ID,
        ColumnSpec("title", "text", True, "The product's name.",
                   ("title", "name", "product_title", "product_name", "item_name")),
        ColumnSpec("description", "text", False, "A longer description.",
                   ("description", "desc", "long_description", "product_description")),
        ColumnSpec("category", "text", False, "Category or department.",
                   ("category", "department", "category_name", "product_type")),
        ColumnSpec("price", "number", False, "Unit price.",
                   ("price", "unitprice", "unit_price", "list_price")),
        ColumnSpec("in_stock", "bool", False, "Whether it can be bought now.",
                   ("in_stock", "instock", "available", "availability", "stock")),
    )),
    "events": KindSpec("events", "Behaviour (views, clicks, carts, purchases, ratings)", (
        _USER_ID,
        _PRODUCT_ID,
        ColumnSpec("event_type", "event_type", False,
                   "view, click, cart, purchase or rating; when absent, the default event type.",
                   ("event_type", "event", "type", "action", "behavior", "behaviour",
                    "interaction")),
        ColumnSpec("value", "number", False,
                   "Quantity for carts and purchases, the rating for ratings.",
                   ("value", "quantity", "qty", "rating", "score", "amount")),
        _TIMESTAMP,
        _SESSION,
        ColumnSpec("price", "number", False, "Price paid; used only to drop zero-price lines.",
                   ("price", "unitprice", "unit_price")),
        ColumnSpec("country", "text", False, "The customer's country.",
                   ("country", "country_code", "region")),
        ColumnSpec("is_cancellation", "bool", False,
                   "Marks a cancelled line; such lines are dropped.",
                   ("is_cancellation", "cancelled", "canceled", "is_return", "returned")),
    )),
    "search_log": KindSpec("search_log", "Search log (queries and clicks)", (
        _QUERY,
        ColumnSpec(**{**_USER_ID.__dict__, "required": False}),
        ColumnSpec("product_id", "id", False, "The product clicked after the search, if any.",
                   _PRODUCT_ID.synonyms + ("clicked_product_id", "clicked_item")),
        ColumnSpec(**{**_TIMESTAMP.__dict__, "required": False}),
        _SESSION,
    )),
    "judgments": KindSpec("judgments", "Relevance judgments", (
        _QUERY,
        _PRODUCT_ID,
        ColumnSpec("grade", "number", True, "Relevance grade; higher is more relevant.",
                   ("grade", "relevance", "label", "score", "rating", "judgment")),
    )),
}

EVENT_TYPE_SYNONYMS = {
    "view": "view", "views": "view", "detail": "view", "pageview": "view",
    "page_view": "view", "impression": "view", "viewed": "view",
    "click": "click", "clicks": "click", "clicked": "click",
    "cart": "cart", "addtocart": "cart", "add_to_cart": "cart", "add-to-cart": "cart",
    "basket": "cart", "carted": "cart",
    "purchase": "purchase", "purchases": "purchase", "buy": "purchase", "order": "purchase",
    "transaction": "purchase", "purchased": "purchase", "sale": "purchase",
    "rating": "rating", "rate": "rating", "rated": "rating", "review": "rating",
}


def normalise_name(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", str(name).strip().lower()).strip("_")


def guess_mapping(columns: list[str], kind: str) -> dict[str, str]:
    """Guess ``{source column: canonical column}`` from the file's column names.

    >>> guess_mapping(["StockCode", "Description", "UnitPrice"], "catalog")
    {'StockCode': 'product_id', 'Description': 'title', 'UnitPrice': 'price'}
    """
    spec = KINDS[kind]
    by_normal = {normalise_name(c): c for c in columns}
    by_squashed = {normalise_name(c).replace("_", ""): c for c in columns}
    mapping: dict[str, str] = {}
    for column in spec.columns:
        for synonym in column.synonyms:
            source = by_normal.get(synonym) or by_squashed.get(synonym.replace("_", ""))
            if source is not None and source not in mapping:
                mapping[source] = column.name
                break
    # A catalog with one text column called "description" uses it as the title.
    if kind == "catalog" and "title" not in mapping.values():
        described = [s for s, c in mapping.items() if c == "description"]
        if described:
            mapping[described[0]] = "title"
    return mapping
