"""Business rules applied after fusion: pin, boost, bury and filter, each with a visible effect.

A `Rule` is plain data (it lives in a preset's JSON). It may be scoped to
requests for one query (`when_query`, compared without case and extra spaces)
or in one category (`when_category`: a category page, or a search restricted
to a category); unscoped rules apply to every request. Most rules test a
product's attributes with a condition: ``field`` equal to ``value`` (e.g.
category = Christmas, in_stock = false, brand = Acme; compared as text without
case) and/or a price band ``min_price`` <= price <= ``max_price``.

- **filter** keeps only the products that match its condition (e.g. in_stock =
  true, or a price range); the others are removed.
- **boost** / **bury** add / subtract ``strength`` times the span of the list's
  fused scores (best minus worst) to matching products, then the list is
  re-sorted. Expressing the change as a share of the span makes a strength mean
  the same under every fusion method, whose scores live on different scales.
- **pin** puts `product_id` at 1-based `position` (after everything else; a
  pinned product that the engines did not find is brought in).

Rules apply in that order: filters, then boosts and buries, then pins in the
order given. Every product whose rank or presence changed gets a `RuleEffect`
per rule that touched it: the rule, what it did, the rank before and after all
rules, and the change in score.

>>> from recsys.fusion.base import FusedItem
>>> items = [FusedItem("a", 0.9), FusedItem("b", 0.5), FusedItem("c", 0.1)]
>>> products = {"a": {"category": "Garden"}, "b": {"category": "Kitchen"}, "c": {"category": "Kitchen"}}
>>> rules = [Rule("boost", field="category", value="kitchen", strength=0.6), Rule("pin", product_id="c", position=1)]
>>> result = apply_rules(items, rules, products)
>>> [item.product_id for item in result.items]
['c', 'b', 'a']
>>> [(e.product_id, e.action, e.before, e.after) for e in result.effects]
[('b', 'boosted', 2, 2), ('c', 'boosted', 3, 1), ('c', 'pinned', 3, 1)]
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from recsys.config import JsonConfig
from recsys.fusion.base import FusedItem

RULE_KINDS = ("pin", "boost", "bury", "filter")
# Product columns a rule may test besides price; any other catalog column works too.
RULE_FIELDS = ("category", "in_stock", "brand")


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None or (isinstance(value, float) and value != value):
        return ""
    return " ".join(str(value).split()).lower()


@dataclass
class Rule(JsonConfig):
    """One business rule; see the module docstring for what each kind does."""

    kind: str
    product_id: str | None = None  # pin: the product
    position: int | None = None  # pin: 1-based
    field: str | None = None  # condition: a product attribute such as category
    value: str | None = None  # condition: the attribute's value
    min_price: float | None = None  # condition: price band
    max_price: float | None = None
    strength: float = 0.5  # boost / bury: share of the list's score span
    when_query: str | None = None  # scope: only for this query
    when_category: str | None = None  # scope: only in this category
    note: str = ""

    def __post_init__(self) -> None:
        if self.kind not in RULE_KINDS:
            raise ValueError(f"unknown rule kind {self.kind!r}; choose one of {', '.join(RULE_KINDS)}")
        if self.kind == "pin":
            if not self.product_id:
                raise ValueError("a pin rule needs the product id to pin")
            if self.position is None or int(self.position) < 1:
                raise ValueError(f"a pin rule needs a position of 1 or more, not {self.position!r}")
            self.position = int(self.position)
            self.product_id = str(self.product_id)
            return
        has_field = bool(self.field) and self.value is not None and str(self.value) != ""
        has_band = self.min_price is not None or self.max_price is not None
        if not (has_field or has_band):
            raise ValueError(f"a {self.kind} rule needs a condition: an attribute and its value, "
                             "or a price band")
        if self.min_price is not None and self.max_price is not None and self.min_price > self.max_price:
            raise ValueError(f"the price band's minimum {self.min_price} is above its maximum "
                             f"{self.max_price}")
        if self.kind in ("boost", "bury") and not self.strength > 0:
            raise ValueError(f"a {self.kind} needs a strength above 0, not {self.strength}")

    def applies(self, query: str | None, category: str | None) -> bool:
        """Whether the rule's scope covers a request for `query` in `category`."""
        if self.when_query and _text(self.when_query) != _text(query):
            return False
        return not (self.when_category and _text(self.when_category) != _text(category))

    def matches(self, attributes: Mapping[str, Any] | None) -> bool:
        """Whether a product with `attributes` meets the rule's condition."""
        attributes = attributes or {}
        if self.field and self.value is not None and str(self.value) != "":
            if _text(attributes.get(self.field)) != _text(self.value):
                return False
        if self.min_price is not None or self.max_price is not None:
            price = attributes.get("price")
            if price is None or pd.isna(price):
                return False
            if self.min_price is not None and price < self.min_price:
                return False
            if self.max_price is not None and price > self.max_price:
                return False
        return True

    def describe(self) -> str:
        """The rule in words, e.g. "boost category = Christmas (+0.5) for query 'lights'"."""
        if self.kind == "pin":
            text = f"pin {self.product_id} at position {self.position}"
        else:
            parts = []
            if self.field and self.value is not None and str(self.value) != "":
                parts.append(f"{self.field} = {self.value}")
            if self.min_price is not None or self.max_price is not None:
                low = "" if self.min_price is None else f"{self.min_price:g}"
                high = "" if self.max_price is None else f"{self.max_price:g}"
                parts.append(f"price {low}..{high}")
            condition = " and ".join(parts)
            text = {"filter": f"keep only {condition}",
                    "boost": f"boost {condition} (+{self.strength:g})",
                    "bury": f"bury {condition} (-{self.strength:g})"}[self.kind]
        if self.when_query:
            text += f" for query '{self.when_query}'"
        if self.when_category:
            text += f" in category '{self.when_category}'"
        return text


@dataclass
class RuleEffect:
    """What one rule did to one product: ranks are 1-based, None when absent."""

    rule: str
    product_id: str
    action: str  # "pinned", "boosted", "buried" or "filtered out"
    before: int | None
    after: int | None
    score_change: float = 0.0


@dataclass
class RulesResult:
    items: list[FusedItem]
    effects: list[RuleEffect] = field(default_factory=list)
    removed: list[FusedItem] = field(default_factory=list)  # filtered out, with their effects


def rules_from(config_rules: Sequence[Rule | Mapping]) -> list[Rule]:
    """`Rule`s from rules or their dicts (as stored in a preset)."""
    return [rule if isinstance(rule, Rule) else Rule.from_dict(dict(rule)) for rule in config_rules]


def attributes_from(catalog: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """{product_id: {column: value}} of a catalog frame, for `apply_rules`."""
    columns = [c for c in catalog.columns if c not in ("product_id", "title", "description")]
    frame = catalog.drop_duplicates("product_id")
    values = frame[columns].astype(object).where(frame[columns].notna(), None)
    return dict(zip(frame["product_id"].astype(str), values.to_dict("records")))


def save_attributes(attributes: Mapping[str, Mapping[str, Any]], folder: Path) -> None:
    """Write `attributes` (as made by `attributes_from`) to folder/attributes.json."""
    (folder / "attributes.json").write_text(json.dumps(
        attributes, default=lambda v: v.item() if hasattr(v, "item") else str(v)))


def load_attributes(folder: Path) -> dict[str, dict[str, Any]]:
    """What `save_attributes` wrote into `folder`; {} when it wrote nothing."""
    path = folder / "attributes.json"
    return json.loads(path.read_text()) if path.exists() else {}


def apply_rules(items: Sequence[FusedItem], rules: Sequence[Rule | Mapping],
                products: Mapping[str, Mapping[str, Any]] | None = None, *,
                query: str | None = None, category: str | None = None) -> RulesResult:
    """Apply `rules` to the fused `items` (best first) for a request for `query` in `category`.

    `products` gives each product's attributes ({product_id: {"category": ..., "price": ...}}).
    The items are not modified; the result holds new ones.
    """
    products = products or {}
    active = [rule for rule in rules_from(rules) if rule.applies(query, category)]
    items = [FusedItem(item.product_id, item.score, item.sources, list(item.effects)) for item in items]
    if not active:
        return RulesResult(items)
    before = {item.product_id: rank for rank, item in enumerate(items, 1)}
    touched: list[tuple[Rule, str, FusedItem, float]] = []
    removed: list[FusedItem] = []

    for rule in (r for r in active if r.kind == "filter"):
        kept = []
        for item in items:
            if rule.matches(products.get(item.product_id)):
                kept.append(item)
            else:
                removed.append(item)
                touched.append((rule, "filtered out", item, 0.0))
        items = kept

    adjusting = [r for r in active if r.kind in ("boost", "bury")]
    if adjusting and items:
        scores = [item.score for item in items]
        span = (max(scores) - min(scores)) or max(abs(max(scores)), 1.0)
        for rule in adjusting:
            change = rule.strength * span * (1 if rule.kind == "boost" else -1)
            for item in items:
                if rule.matches(products.get(item.product_id)):
                    item.score += change
                    touched.append((rule, "boosted" if rule.kind == "boost" else "buried", item, change))
        items.sort(key=lambda item: (-item.score, item.product_id))

    for rule in (r for r in active if r.kind == "pin"):
        if products and rule.product_id not in products:
            continue  # a product the catalog does not have cannot be shown
        found = next((item for item in items if item.product_id == rule.product_id), None)
        if found is None:
            found = FusedItem(rule.product_id, 0.0)
        else:
            items.remove(found)
        items.insert(min(rule.position - 1, len(items)), found)
        touched.append((rule, "pinned", found, 0.0))

    after = {item.product_id: rank for rank, item in enumerate(items, 1)}
    effects = []
    for rule, action, item, change in touched:
        effect = RuleEffect(rule.describe(), item.product_id, action, before.get(item.product_id),
                            after.get(item.product_id), change)
        item.effects.append(effect)
        effects.append(effect)
    return RulesResult(items, effects, removed)
