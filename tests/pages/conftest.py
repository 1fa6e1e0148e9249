"""AppTest fixtures: a small shop in a fresh database and one account per role."""

from __future__ import annotations

import re

import pytest
from streamlit.testing.v1 import AppTest

from recsys.accounts import create_account
from recsys.data import IngestOptions, ingest_file
from recsys.data.clean import CleaningConfig
from recsys.engines import fit_active
from tests.conftest import ROOT

PASSWORD = "correct-horse-1"
ROLES = ("admin", "operator", "merchandiser", "viewer")


@pytest.fixture
def shop(db_url, catalog_file, events_file) -> str:
    """A database with a catalog (v1), events (v2), their fitted engines and one account per role."""
    ingest_file(catalog_file, IngestOptions("catalog"), actor="test")
    ingest_file(events_file, IngestOptions("events", cleaning=CleaningConfig()), actor="test")
    for role in ROLES:
        create_account(role + "1", PASSWORD, role, actor="test")
    fit_active(db_url)  # as the fit job does after an activation
    return db_url


def app_as(role: str | None, page: str | None = None) -> AppTest:
    """The app, logged in with `role` (None: logged out), on `page`, after one run."""
    app = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    if role:
        app.session_state["identity"] = {"username": role + "1", "role": role}
    app.run()
    if page:
        app.switch_page(page).run()
    return app


def column(app, title: str):
    """The result column headed `title` (AppTest does not expose a column's key)."""
    return next(c for c in app.columns if [s.value for s in c.subheader] == [title])


def shown(markdown: str) -> str:
    """The text a Markdown string shows, as far as `ui.text.md` escaped it: "Mug \\(red\\)" -> "Mug (red)"."""
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", markdown)


def titles(block) -> list[str]:
    """Product titles of a column's cards ("1. Red mug · kitchen · £3.50" -> "Red mug")."""
    return [shown(e.label.split(". ", 1)[1].split(" · ")[0]) for e in block.expander]


def texts(card) -> list[str]:
    """The texts of a card's Markdown elements, as shown."""
    return [shown(m.value) for m in card.markdown]
