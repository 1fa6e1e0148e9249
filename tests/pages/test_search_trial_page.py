"""pages/search_trial.py: one query, BM25, semantic and hybrid columns, each card explained."""

from __future__ import annotations

from db.engine import session_scope
from recsys.fusion import FusionConfig
from recsys.fusion import presets
from recsys.accounts import create_account
from tests.pages.conftest import PASSWORD, app_as, column, shown, titles, texts

PAGE = "pages/search_trial.py"


def search(app, query: str):
    app.text_input(key="search_query").input(query).run()
    assert not app.exception
    return app


def test_a_blank_query_gets_a_prompt_not_results(shop):
    app = app_as("viewer", PAGE)
    assert not app.exception
    assert any("Type a query" in i.value for i in app.info)
    assert not app.expander
    assert any("the active search preset, the shipped default" in c.value for c in app.caption)


def test_a_query_fills_three_columns_with_explained_products(shop):
    app = search(app_as("viewer", PAGE), "red mug")
    bm25, semantic, hybrid = column(app, "BM25"), column(app, "Semantic"), column(app, "Hybrid")
    # BM25 lists only products containing a query word, best match first.
    assert titles(bm25) == ["Red mug", "Blue mug"]
    # The default's semantic floor keeps the products whose text is near "red mug".
    assert titles(semantic) == ["Red mug", "Blue mug"]
    assert titles(hybrid)[:2] == ["Red mug", "Blue mug"]
    assert bm25.expander[0].label == "1. Red mug · kitchen · £3.50"

    assert texts(bm25.expander[0])[:2] == ["- 'red' in the text (+0.80)", "- 'mug' in the text (+0.46)"]
    assert any(t.startswith("- cosine similarity") for t in texts(semantic.expander[0]))
    card = hybrid.expander[0]
    table = card.table[0].value  # one column per source: narrow enough for a third of the page
    assert list(table.index) == ["rank", "raw score", "normalised", "contribution"]
    assert sorted(table.columns) == ["bm25", "semantic"] and list(table.loc["rank"]) == ["#1", "#1"]
    assert "'red' in the text" in " ".join(texts(card)) and "cosine similarity" in " ".join(texts(card))


def test_a_query_nothing_matches_finds_nothing_in_any_column(shop):
    app = search(app_as("viewer", PAGE), "xyzzy qqq")
    assert [len(column(app, title).expander) for title in ("BM25", "Semantic", "Hybrid")] == [0, 0, 0]
    assert any("0.475 or more" in c.value for c in column(app, "Semantic").caption)


def test_a_misspelled_query_is_searched_corrected_and_the_page_says_so(shop):
    app = search(app_as("viewer", PAGE), "red mugg")
    assert any("Showing results for **red mug**" in i.value and "'mugg' read as 'mug'" in i.value
               for i in app.info)
    assert titles(column(app, "BM25")) == ["Red mug", "Blue mug"]
    # The lexical column explains the corrected word it matched.
    assert "- 'mug' in the text (+0.46)" in texts(column(app, "BM25").expander[0])
    assert not [i for i in search(app, "red mug").info if "Showing results for" in i.value]


def test_k_bounds_every_column(shop):
    app = app_as("merchandiser", PAGE)
    app.number_input(key="search_k").set_value(1)
    search(app, "mug")
    assert [len(column(app, t).expander) for t in ("BM25", "Semantic", "Hybrid")] == [1, 1, 1]


def test_the_active_preset_and_its_category_rule_move_the_hybrid(shop):
    rule = {"kind": "boost", "field": "category", "value": "garden", "strength": 2.0,
            "when_category": "garden"}
    config = FusionConfig(weights={"bm25": 0.75, "semantic": 0.25}, rules=[rule], backend="onnx-int8")
    with session_scope() as session:
        presets.save_preset(session, "search", "garden-first", config, "test", activate=True)
    app = search(app_as("viewer", PAGE), "mug")
    assert any("garden-first v1" in shown(c.value) for c in app.caption)
    assert titles(column(app, "Hybrid"))[-1] == "Garden chair"

    app.selectbox(key="search_category").select("garden").run()
    assert not app.exception
    hybrid = column(app, "Hybrid")
    assert titles(hybrid)[0] == "Garden chair"
    assert sorted(titles(column(app, "BM25"))) == ["Blue mug", "Red mug"]  # rules touch only the hybrid
    effect = [t for t in texts(hybrid.expander[0]) if t.startswith("- rule")]
    assert effect == [effect[0]] and "boosted, #4 → #1" in effect[0]


def test_without_a_catalog_the_page_says_where_to_upload_one(db_url):
    create_account("viewer1", PASSWORD, "viewer", actor="test")
    app = app_as("viewer", PAGE)
    assert not app.exception
    assert any("upload one on the Data page" in i.value for i in app.info)
    assert not app.get("text_input")


def test_a_campaigns_ad_is_previewed_labelled_in_the_hybrid_column_for_relevant_queries_only(shop):
    from recsys.accounts import Identity
    from recsys.ads import campaigns

    campaigns.create_campaign(Identity("op", "operator"), advertiser="Acme", name="Blue mugs", products=["P2"],
                              max_cpc=0.4, daily_budget=5.0)
    app = app_as("viewer", PAGE)
    app.number_input(key="search_k").set_value(1)
    hybrid = column(search(app, "mug"), "Hybrid")
    # The red mug is the one result; the blue mug (relevance 0.75) takes the shipped preset's slot 1.
    assert [e.label.split(" · ")[0] for e in hybrid.expander] == ["1. Sponsored", "2. Red mug"]
    assert any("Sponsored by Acme, campaign 1 (Blue mugs)" in c.value for c in hybrid.expander[0].caption)
    assert any("a preview of the ads, not recorded" in c.value for c in hybrid.caption)
    assert titles(column(search(app, "garden chair"), "Hybrid")) == ["Garden chair"]  # unrelated: no ad
    assert campaigns.report(Identity("op", "operator"), url=shop).campaigns[0].impressions == 0
