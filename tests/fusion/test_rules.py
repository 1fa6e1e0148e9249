"""Business rules: each kind's effect, scoping, ordering, and visible effects."""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recsys.fusion import FusedItem, Rule, apply_rules, attributes_from

PRODUCTS = {
    "a": {"category": "Garden", "price": 40.0, "in_stock": True},
    "b": {"category": "Kitchen", "price": 5.0, "in_stock": True},
    "c": {"category": "Kitchen", "price": 12.0, "in_stock": False},
    "d": {"category": "Lighting", "price": None, "in_stock": True},
    "e": {"category": "Garden", "price": 3.0, "in_stock": True},
}


def fused():
    return [FusedItem(p, s) for p, s in [("a", 1.0), ("b", 0.8), ("c", 0.6), ("d", 0.4), ("e", 0.2)]]


def order(result):
    return [item.product_id for item in result.items]


def test_filter_keeps_only_matching_products_and_reports_the_removed():
    result = apply_rules(fused(), [Rule("filter", field="in_stock", value="true")], PRODUCTS)
    assert order(result) == ["a", "b", "d", "e"]
    assert [item.product_id for item in result.removed] == ["c"]
    (effect,) = result.effects
    assert (effect.product_id, effect.action, effect.before, effect.after) == ("c", "filtered out", 3, None)


def test_price_band_filter_drops_products_without_a_price():
    result = apply_rules(fused(), [Rule("filter", min_price=4, max_price=20)], PRODUCTS)
    assert order(result) == ["b", "c"]


def test_boost_and_bury_move_by_a_share_of_the_score_span():
    result = apply_rules(fused(), [Rule("boost", field="category", value="garden", strength=0.3)], PRODUCTS)
    # span 0.8: garden products gain 0.24; e goes from 0.2 to 0.44, above d (0.4)
    assert order(result) == ["a", "b", "c", "e", "d"]
    moved = {e.product_id: (e.before, e.after, round(e.score_change, 6)) for e in result.effects}
    assert moved == {"a": (1, 1, 0.24), "e": (5, 4, 0.24)}
    buried = apply_rules(fused(), [Rule("bury", field="category", value="Kitchen", strength=1.0)], PRODUCTS)
    assert order(buried) == ["a", "d", "e", "b", "c"]
    assert all(e.action == "buried" for e in buried.effects)


def test_pin_places_a_product_and_brings_in_one_not_found():
    result = apply_rules(fused(), [Rule("pin", product_id="e", position=1)], PRODUCTS)
    assert order(result) == ["e", "a", "b", "c", "d"]
    extra = {**PRODUCTS, "z": {"category": "Toys"}}
    result = apply_rules(fused(), [Rule("pin", product_id="z", position=2)], extra)
    assert order(result)[:3] == ["a", "z", "b"]
    assert result.effects[0].before is None and result.effects[0].after == 2
    # a pinned product the catalog does not have is not shown
    assert order(apply_rules(fused(), [Rule("pin", product_id="nope", position=1)], PRODUCTS)) == list("abcde")
    # a position past the end puts it last
    assert order(apply_rules(fused(), [Rule("pin", product_id="a", position=99)], PRODUCTS))[-1] == "a"


def test_rules_apply_only_within_their_scope():
    pin = Rule("pin", product_id="e", position=1, when_query="Garden  CHAIR")
    assert order(apply_rules(fused(), [pin], PRODUCTS, query="garden chair"))[0] == "e"
    assert order(apply_rules(fused(), [pin], PRODUCTS, query="garden"))[0] == "a"
    in_kitchen = Rule("pin", product_id="d", position=1, when_category="Kitchen")
    assert order(apply_rules(fused(), [in_kitchen], PRODUCTS, category="kitchen"))[0] == "d"
    assert order(apply_rules(fused(), [in_kitchen], PRODUCTS))[0] == "a"


def test_order_filters_then_boosts_then_pins():
    rules = [Rule("pin", product_id="c", position=1), Rule("filter", field="in_stock", value="true"),
             Rule("boost", field="category", value="Lighting", strength=2.0)]
    result = apply_rules(fused(), rules, PRODUCTS)
    # c is filtered out before the pin is applied, so the pin brings it back at the top
    assert order(result)[:2] == ["c", "d"]
    assert [e.action for e in result.effects if e.product_id == "c"] == ["filtered out", "pinned"]


def test_rules_are_validated_and_described():
    with pytest.raises(ValueError, match="unknown rule kind 'promote'"):
        Rule("promote")
    with pytest.raises(ValueError, match="needs the product id"):
        Rule("pin", position=1)
    with pytest.raises(ValueError, match="position of 1 or more"):
        Rule("pin", product_id="a", position=0)
    with pytest.raises(ValueError, match="needs a condition"):
        Rule("boost")
    with pytest.raises(ValueError, match="minimum 9 is above its maximum 3"):
        Rule("filter", min_price=9, max_price=3)
    with pytest.raises(ValueError, match="strength above 0"):
        Rule("bury", field="category", value="x", strength=0)
    assert Rule("boost", field="category", value="Garden", strength=0.2, when_query="chair").describe() \
        == "boost category = Garden (+0.2) for query 'chair'"
    assert Rule("filter", min_price=5).describe() == "keep only price 5.."
    assert Rule.from_dict(Rule("pin", product_id="a", position=2).to_dict()).position == 2


def test_input_items_are_not_modified_and_no_rules_is_a_no_op():
    items = fused()
    apply_rules(items, [Rule("boost", field="category", value="Garden")], PRODUCTS)
    assert [item.score for item in items] == [1.0, 0.8, 0.6, 0.4, 0.2] and not items[0].effects
    assert order(apply_rules(items, [], PRODUCTS)) == list("abcde")


def test_attributes_from_a_catalog_frame():
    catalog = pd.DataFrame({"product_id": [1, 2], "title": ["x", "y"], "price": [2.5, None],
                            "category": ["A", None]})
    assert attributes_from(catalog) == {"1": {"price": 2.5, "category": "A"},
                                        "2": {"price": None, "category": None}}


@given(st.lists(st.sampled_from(sorted(PRODUCTS)), unique=True, min_size=1),
       st.sampled_from(["Garden", "Kitchen", "Lighting"]), st.floats(0.01, 3))
@settings(max_examples=100, deadline=None)
def test_boost_never_lowers_a_matching_product(products, category, strength):
    items = [FusedItem(p, float(len(products) - i)) for i, p in enumerate(products)]
    result = apply_rules(items, [Rule("boost", field="category", value=category, strength=strength)], PRODUCTS)
    before = {p: i for i, p in enumerate(products)}
    for rank, item in enumerate(result.items):
        if PRODUCTS[item.product_id]["category"] == category:
            assert rank <= before[item.product_id]
