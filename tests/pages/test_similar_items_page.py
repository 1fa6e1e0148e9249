"""pages/similar_items.py: co-purchase against embedding neighbours of a product, explained."""

from __future__ import annotations

from tests.pages.conftest import app_as, column, titles, texts

PAGE = "pages/similar_items.py"
CF = "Collaborative filtering (EASE)"


def pick(app, product_id: str):
    app.selectbox(key="similar_product").select(product_id).run()
    assert not app.exception
    return app


def test_before_a_product_is_picked_the_page_asks_for_one(shop):
    app = app_as("viewer", PAGE)
    assert not app.exception
    assert any("Pick a product" in i.value for i in app.info)
    assert not app.expander


def test_a_product_shows_co_purchase_and_embedding_neighbours(shop):
    app = pick(app_as("viewer", PAGE), "P2")
    cf, semantic, hybrid = column(app, CF), column(app, "Semantic"), column(app, "Hybrid")
    # u2 bought the Blue mug with the Green teapot; nobody bought it with anything else.
    assert titles(cf) == ["Green teapot"]
    assert texts(cf.expander[0]) == ["- bought together by 1 customer"]
    assert titles(semantic) == ["Red mug", "Green teapot", "Garden chair"]
    assert texts(semantic.expander[0])[0].startswith("- cosine similarity of the product texts 0.")
    assert titles(hybrid)[0] == "Green teapot" and "Blue mug" not in titles(hybrid)
    card = hybrid.expander[0]
    assert sorted(card.table[0].value.columns) == ["ease", "semantic"]
    assert f"- {CF}: bought together by 1 customer" in texts(card)


def test_a_product_bought_with_nothing_else_has_only_embedding_neighbours(shop):
    app = app_as("viewer", PAGE)
    app.number_input(key="similar_k").set_value(2)
    pick(app, "P4")
    assert not column(app, CF).expander
    assert any("No co-purchase neighbours" in c.value for c in column(app, CF).caption)
    assert len(column(app, "Semantic").expander) == 2 and len(column(app, "Hybrid").expander) == 2
