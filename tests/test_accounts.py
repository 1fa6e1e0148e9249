"""Accounts: hashing, login, roles, and the first admin without a default password."""

from __future__ import annotations

import pytest

from db import queries
from db.engine import session_scope
from recsys import accounts
from recsys.accounts import AccountError, Identity, authenticate, create_account, ensure_admin


def test_password_is_hashed_with_argon2_and_verifies(db_url):
    create_account("carol", "s3cret-pass", "operator", actor="test")
    with session_scope() as session:
        stored = queries.account_by_name(session, "carol").password_hash
    assert stored.startswith("$argon2") and "s3cret-pass" not in stored
    assert authenticate("carol", "s3cret-pass") == Identity("carol", "operator")
    assert authenticate("carol", "wrong-pass") is None
    assert authenticate("nobody", "s3cret-pass") is None


def test_logins_and_failures_are_audited(db_url):
    create_account("dave", "long-enough", "viewer", actor="admin")
    authenticate("dave", "long-enough")
    authenticate("dave", "not-it")
    with session_scope() as session:
        log = queries.audit_log(session)
    assert list(log["action"])[:3] == ["login_failed", "login", "create_account"]
    assert log.iloc[2]["actor"] == "admin"


@pytest.mark.parametrize("username,password,role,reason", [
    ("erin", "short", "viewer", "at least 8"),
    ("erin", "erin", "viewer", "at least 8"),
    ("longername", "longername", "viewer", "must not be the username"),
    ("erin", "long-enough", "superuser", "unknown role"),
    ("  ", "long-enough", "viewer", "username is empty"),
])
def test_bad_accounts_are_refused(db_url, username, password, role, reason):
    with pytest.raises(AccountError, match=reason):
        create_account(username, password, role, actor="test")


def test_duplicate_username_is_refused(db_url):
    create_account("frank", "long-enough", "viewer", actor="test")
    with pytest.raises(AccountError, match="exists already"):
        create_account("frank", "other-password", "admin", actor="test")


@pytest.mark.parametrize("role,allowed,denied", [
    ("admin", {"view", "upload", "activate", "merchandise", "admin"}, set()),
    ("operator", {"view", "upload", "activate", "settings"}, {"admin", "merchandise"}),
    ("merchandiser", {"view", "merchandise"}, {"upload", "activate", "admin"}),
    ("viewer", {"view"}, {"upload", "activate", "settings", "merchandise", "admin"}),
])
def test_roles_decide_permissions(role, allowed, denied):
    who = Identity("x", role)
    assert all(who.can(p) for p in allowed)
    assert not any(who.can(p) for p in denied)


def test_first_admin_from_environment(db_url, monkeypatch):
    monkeypatch.setenv("WORKBENCH_ADMIN_PASSWORD", "from-the-env-1")
    assert ensure_admin() is None  # nothing to print: the operator chose it
    assert authenticate("admin", "from-the-env-1").role == "admin"
    assert ensure_admin() is None  # only once


def test_first_admin_from_secrets_file(db_url, monkeypatch, tmp_path):
    monkeypatch.delenv("WORKBENCH_ADMIN_PASSWORD", raising=False)
    (tmp_path / ".streamlit").mkdir()
    (tmp_path / ".streamlit" / "secrets.toml").write_text('[admin]\npassword = "from-secrets-9"\n')
    monkeypatch.setattr(accounts, "PROJECT_ROOT", tmp_path)
    monkeypatch.setattr(accounts.configured_admin_password, "__defaults__", (tmp_path,))
    assert ensure_admin() is None
    assert authenticate("admin", "from-secrets-9") is not None


def test_first_admin_password_is_generated_when_not_configured(db_url, monkeypatch, tmp_path):
    monkeypatch.delenv("WORKBENCH_ADMIN_PASSWORD", raising=False)
    monkeypatch.setattr(accounts.configured_admin_password, "__defaults__", (tmp_path,))
    first = ensure_admin()
    assert first and len(first) >= 12
    assert authenticate("admin", first) is not None
    # A second database gets a different password: there is no default.
    other = f"sqlite:///{tmp_path / 'other.db'}"
    from db.engine import upgrade

    upgrade(other)
    assert ensure_admin(url=other) != first


def test_set_role_changes_permissions_and_is_audited(db_url):
    create_account("gina", "long-enough", "viewer", actor="admin")
    accounts.set_role("gina", "operator", actor="admin")
    assert authenticate("gina", "long-enough").can("upload")
    with pytest.raises(AccountError, match="no account"):
        accounts.set_role("nobody", "viewer", actor="admin")
