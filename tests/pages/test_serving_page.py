"""pages/serving.py: status, the keys list, issue (shown once) and revoke, by role."""

from __future__ import annotations

import hashlib

from sqlalchemy import select

from db.engine import session_scope
from db.models import ApiKey, AuditEntry
from tests.pages.conftest import app_as


def test_viewer_sees_status_and_keys_but_cannot_issue(shop):
    app = app_as("viewer", "pages/serving.py")
    assert not app.exception
    assert any("No service answers" in w.value for w in app.warning)
    assert any("No API key yet" in i.value for i in app.info)
    assert not [b for b in app.button if b.label in ("Issue a key", "Revoke")]


def test_operator_issues_a_key_shown_once_then_revokes_it(shop):
    app = app_as("operator", "pages/serving.py")
    app.text_input(key="issue_key_name").input("shop-frontend")
    next(b for b in app.button if b.label == "Issue a key").click().run()
    assert not app.exception
    [key] = [c.value for c in app.code]
    with session_scope() as session:
        stored = session.scalars(select(ApiKey)).one()
        assert stored.key_hash == hashlib.sha256(key.encode()).hexdigest()
        assert stored.created_by == "operator1"
    table = app.dataframe[0].value
    assert table["name"].tolist() == ["shop-frontend"] and table["status"].tolist() == ["active"]
    assert key not in table.to_string()

    app.run()  # any next run: the key is gone
    assert not app.code
    next(b for b in app.button if b.label == "Revoke").click().run()
    assert not app.exception
    assert app.dataframe[0].value["status"].tolist() == ["revoked"]
    with session_scope() as session:
        actions = session.scalars(select(AuditEntry.action).where(
            AuditEntry.actor == "operator1")).all()
    assert "issue_api_key" in actions and "revoke_api_key" in actions


def test_a_key_needs_a_name(shop):
    app = app_as("admin", "pages/serving.py")
    next(b for b in app.button if b.label == "Issue a key").click().run()
    assert any("needs a name" in w.value for w in app.warning)
