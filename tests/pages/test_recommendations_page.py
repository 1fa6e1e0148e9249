"""pages/recommendations.py: a customer or a session, CF, semantic and hybrid columns, explained."""

from __future__ import annotations

import pytest

from recsys.accounts import create_account
from tests.conftest import pseudonym
from tests.pages.conftest import PASSWORD, app_as, column, titles, texts
from ui.text import md

PAGE = "pages/recommendations.py"
CF = "Collaborative filtering (EASE)"


def history(app):
    return next(e for e in app.expander if e.label.startswith("What drives the lists"))


def add(app, product_id: str):
    app.selectbox(key="recs_product").select(product_id).run()
    app.button(key="recs_add").click().run()
    assert not app.exception
    return app


def test_without_customer_or_session_every_list_is_the_most_popular(shop):
    app = app_as("viewer", PAGE)
    assert not app.exception
    assert any("every engine falls back to the most popular products" in i.value for i in app.info)
    for title in (CF, "Semantic", "Hybrid"):  # each list says it is the fallback
        assert column(app, title).caption[0].value == "Fallback: the most popular products."
    assert [len(column(app, t).expander) for t in (CF, "Semantic", "Hybrid")] == [4, 4, 4]
    assert any("the user is new" in t for t in texts(column(app, CF).expander[0]))


def test_a_customers_list_is_no_fallback(shop):
    app = app_as("viewer", PAGE)
    app.selectbox(key="recs_user").select(pseudonym("u1")).run()
    assert not [i for i in app.info if "falls back" in i.value]
    assert "Co-purchase" in column(app, CF).caption[0].value


def test_the_lists_follow_the_session_as_it_grows(shop):
    app = add(app_as("viewer", PAGE), "P2")
    assert app.session_state["recs_session"] == ["P2"]
    assert app.selectbox(key="recs_product").value is None  # ready for the next product
    cf, semantic, hybrid = column(app, CF), column(app, "Semantic"), column(app, "Hybrid")
    assert titles(cf)[0] == "Green teapot"  # bought with the Blue mug by u2
    assert texts(cf.expander[0]) == ["- because you bought Blue mug"]
    assert titles(semantic)[0] == "Red mug"
    assert texts(semantic.expander[0])[0].startswith("- similar to Blue mug you bought (cosine")
    assert titles(hybrid)[0] == "Green teapot" and "Blue mug" not in titles(hybrid)
    table = hybrid.expander[0].table[0].value
    assert sorted(table.columns) == ["ease", "semantic"]
    assert "- ease: because you bought Blue mug" in texts(hybrid.expander[0])
    assert "1 in the session" in history(app).label

    add(app, "P4")
    assert app.session_state["recs_session"] == ["P2", "P4"]
    for title in (CF, "Semantic", "Hybrid"):
        assert "Garden chair" not in titles(column(app, title))  # now in the session
    assert any("Garden chair" in t for t in texts(column(app, "Semantic").expander[0]))
    assert "2 in the session" in history(app).label


def test_products_leave_the_session_one_by_one_or_all_at_once(shop):
    app = add(add(app_as("merchandiser", PAGE), "P2"), "P4")
    app.button(key="recs_remove_P2").click().run()
    assert app.session_state["recs_session"] == ["P4"]
    assert "Blue mug" in titles(column(app, "Hybrid"))
    app.button(key="recs_clear").click().run()
    assert not app.exception
    assert app.session_state["recs_session"] == []
    assert "0 in the session" in history(app).label


@pytest.mark.parametrize("how", ["pseudonym", "shop id"])
def test_a_customer_shows_their_history_and_gets_new_products(shop, how):
    app = app_as("viewer", PAGE)
    if how == "pseudonym":  # as the workbench lists customers
        app.selectbox(key="recs_user").select(pseudonym("u2")).run()
    else:  # as the shop knows them: pseudonymised by the page with the workbench's key
        app.text_input(key="recs_customer_id").input(" u2 ").run()
    assert not app.exception
    shown = " ".join(m.value for m in history(app).markdown)
    assert f"Customer {md(pseudonym('u2'))}" in shown and "Blue mug" in shown and "Green teapot" in shown
    for title in (CF, "Semantic", "Hybrid"):
        assert not {"Blue mug", "Green teapot"} & set(titles(column(app, title)))
    assert titles(column(app, "Semantic"))[0] == "Red mug"
    assert any("you bought" in t for t in texts(column(app, "Semantic").expander[0]))


def test_a_shop_id_not_in_the_data_says_so(shop):
    app = app_as("viewer", PAGE)
    app.text_input(key="recs_customer_id").input("nobody-42").run()
    assert not app.exception
    assert any(caption.value.endswith(": not in the fitted data.") for caption in app.caption)
    assert not any("nobody" in caption.value for caption in app.caption)  # the pseudonym is shown


def test_without_behaviour_data_the_page_says_where_to_upload_it(db_url):
    create_account("viewer1", PASSWORD, "viewer", actor="test")
    app = app_as("viewer", PAGE)
    assert not app.exception
    assert any("upload both on the Data page" in i.value for i in app.info)


def test_a_hybrid_products_reasons_come_from_the_sources_in_its_table(db_url, write):
    from db.engine import session_scope
    from recsys.data import IngestOptions, ingest_file
    from recsys.engines import fit_active
    from recsys.fusion import FusionConfig, presets

    # Whoever bought the red mug bought a garden chair too (co-purchase); its text is nearest the blue mug.
    catalog = "product_id,title\nM1,Red ceramic mug\nM2,Blue ceramic mug\nC1,Oak garden chair\nT1,Steel kettle\n"
    events = "user_id,product_id,event_type,timestamp\n" + "".join(
        f"u{n},M1,purchase,2024-01-0{n}\nu{n},C1,purchase,2024-01-0{n}\n" for n in range(2, 6)) + (
        "u1,M1,purchase,2024-01-01\nu6,T1,purchase,2024-01-02\n")
    ingest_file(write("catalog.csv", catalog), IngestOptions("catalog"), actor="test")
    ingest_file(write("events.csv", events), IngestOptions("events"), actor="test")
    create_account("viewer1", PASSWORD, "viewer", actor="test")
    fit_active(db_url)
    # One candidate per source: each fused product comes from one source only.
    config = FusionConfig(weights={"ease": 0.85, "semantic": 0.15}, candidates=1)
    with session_scope() as session:
        presets.save_preset(session, "recommendations", "narrow", config, "test", activate=True)
    app = app_as("viewer", PAGE)
    app.selectbox(key="recs_user").select(pseudonym("u1")).run()
    found = {}
    for card in column(app, "Hybrid").expander:
        named = {text.removeprefix("- ").split(":")[0] for text in texts(card)}
        found[card.label.split(". ", 1)[1].split(" · ")[0]] = (set(card.table[0].value.columns), named)
    assert found == {"Oak garden chair": ({"ease"}, {"ease"}), "Blue ceramic mug": ({"semantic"}, {"semantic"})}
