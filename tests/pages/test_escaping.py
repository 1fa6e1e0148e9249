"""ui.text.md: shop data interpolated into Streamlit's Markdown shows as text and formats nothing."""

from __future__ import annotations

import doctest

import pandas as pd
import pytest

import ui.text
from recsys.accounts import create_account
from recsys.data import IngestOptions, ingest_file
from recsys.engines import fit_active
from tests.pages.conftest import PASSWORD, app_as, column, shown
from ui.text import md
from ui.trials import _product_card
from tests.conftest import pseudonym

EVIL = "![x](http://evil.example/x.png) :red[boom] $x$"
ESCAPED = r"\!\[x\]\(http\:\/\/evil\.example\/x\.png\) \:red\[boom\] \$x\$"


def test_the_docstring_examples_hold():
    assert doctest.testmod(ui.text).failed == 0


@pytest.mark.parametrize("value, escaped", [
    ("![x](http://evil.example/x.png)", r"\!\[x\]\(http\:\/\/evil\.example\/x\.png\)"),
    ("[click](http://evil.example)", r"\[click\]\(http\:\/\/evil\.example\)"),
    (":red[x] :material/home:", r"\:red\[x\] \:material\/home\:"),
    ("$x$", r"\$x\$"),
    ("<img src=x>", r"\<img src=x\>"),
    ("Mug\n# heading", r"Mug \# heading"),
    ("a\r\n\r\n- item", r"a    \- item"),
    ("**bold** _it_ ~~gone~~ `code`", r"\*\*bold\*\* \_it\_ \~\~gone\~\~ \`code\`"),
    ("| a | &amp; \\", r"\| a \| \&amp; \\"),
])
def test_markdown_punctuation_is_escaped_and_lines_are_joined(value, escaped):
    assert md(value) == escaped
    assert "\n" not in md(value) and "\r" not in md(value)


@pytest.mark.parametrize("value", ["Red mug", "Mug, red", "Tea for 2", "Café crème", "12347", 3])
def test_plain_text_is_unchanged(value):
    assert md(value) == str(value)


def test_escaping_changes_nothing_that_is_shown():
    for value in (EVIL, "Mug (red) - 50% off!", "a\\b"):
        assert shown(md(value)) == value


def test_the_judging_card_is_one_html_block_of_escaped_text():
    """Inside an HTML block Markdown is not read; a blank line would end the block, so none is left."""
    product = pd.Series({"title": "<img src=x onerror=alert(1)>", "description": "fine\n\n" + EVIL,
                         "category": "kitchen", "price": 3.5})
    card = _product_card(product, "P1")
    assert "\n" not in card and "<img" not in card and "&lt;img src=x onerror=alert(1)&gt;" in card
    missing = _product_card(None, "<b>P9</b>\n\n" + EVIL)
    assert missing.startswith("<div>") and "\n" not in missing and "&lt;b&gt;P9" in missing


@pytest.fixture
def evil_shop(db_url, write) -> str:
    """A catalog whose first product's title is Markdown that would load an external image."""
    catalog = pd.DataFrame({"product_id": ["P1", "P2", "P3"], "title": [EVIL, "Blue mug", "Green teapot"],
                            "category": ["kitchen"] * 3, "price": [3.5, 3.0, 12.0]})
    events = ("user_id,product_id,event_type,timestamp\n"
              "u1,P1,purchase,2024-01-01\nu1,P2,purchase,2024-01-01\n"
              "u2,P1,purchase,2024-01-02\nu2,P3,purchase,2024-01-02\n")
    ingest_file(write("catalog.csv", catalog), IngestOptions("catalog"), actor="test")
    ingest_file(write("events.csv", events), IngestOptions("events"), actor="test")
    create_account("viewer1", PASSWORD, "viewer", actor="test")
    fit_active(db_url)
    return db_url


def rendered(app) -> list[str]:
    """Every Markdown string the run sent: texts, captions, alerts and expander labels."""
    elements = [*app.markdown, *app.caption, *app.info, *app.warning, *app.error, *app.success]
    return [element.value for element in elements] + [expander.label for expander in app.expander]


def assert_escaped(app) -> None:
    assert not app.exception
    texts = rendered(app)
    assert any(ESCAPED in text for text in texts)
    for text in texts:
        assert "![" not in text and "](" not in text and ":red[" not in text, text


def test_a_title_in_a_customers_history_and_reasons_is_shown_as_text(evil_shop):
    app = app_as("viewer", "pages/recommendations.py")
    app.selectbox(key="recs_user").select(pseudonym("u1")).run()
    history = next(e for e in app.expander if e.label.startswith("What drives the lists"))
    assert f"- {ESCAPED} · kitchen · £3.50 (P1)" in [m.value for m in history.markdown]
    # Green teapot, bought with it by u2, is recommended "because you bought" it.
    cards = column(app, "Collaborative filtering (EASE)").expander
    reasons = [m.value for card in cards for m in card.markdown]
    assert any(ESCAPED in reason for reason in reasons)
    assert_escaped(app)


def test_a_title_on_a_search_results_card_is_shown_as_text(evil_shop):
    app = app_as("viewer", "pages/search_trial.py")
    app.text_input(key="search_query").input("boom").run()
    labels = [card.label for card in column(app, "BM25").expander]
    assert labels == [f"1. {ESCAPED} · kitchen · £3.50"]
    assert shown(labels[0]) == f"1. {EVIL} · kitchen · £3.50"
    assert_escaped(app)


def test_chart_labels_show_shop_data_as_text():
    """Plotly makes a link of <a href> in a label; a title or country is shown as it is written."""
    import pandas as pd

    from ui.charts import customers_by_country, top_products

    evil = '<a href="https://evil.example">Red mug</a>'
    popularity = pd.DataFrame({"product_id": ["P<1>"], "title": [evil], "events": [3], "users": [2]})
    figure = top_products(popularity)
    assert list(figure.data[0].y) == ['&lt;a href="https://evil.example"&gt;Red mug&lt;/a&gt;']
    countries = customers_by_country(pd.DataFrame({"country": ["<b>UK</b>"], "users": [5]}))
    assert list(countries.data[0].x) == ["&lt;b&gt;UK&lt;/b&gt;"]
