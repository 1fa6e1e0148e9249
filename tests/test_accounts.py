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


# --- throttling, lockout and account management (issue 17, part 5) -------------------------------

def test_wrong_passwords_in_a_row_lock_the_account_until_an_admin_unlocks_it(db_url):
    from recsys.accounts import MAX_FAILED_LOGINS, LoginRefused, unlock

    create_account("frank", "right-password", "viewer", actor="test")
    for _ in range(MAX_FAILED_LOGINS):
        assert authenticate("frank", "wrong-password") is None
    with pytest.raises(LoginRefused, match="too many wrong passwords for 'frank'"):
        authenticate("frank", "right-password")  # 22 wrong and the right one worked before
    assert accounts.list_accounts().set_index("username").loc["frank", "locked_until"] is not None
    unlock("frank", actor="admin")
    assert authenticate("frank", "right-password") == Identity("frank", "viewer")
    with session_scope() as session:
        actions = list(queries.audit_log(session)["action"])
    assert {"account_locked", "login_locked", "unlock_account"} <= set(actions)


def test_a_username_nobody_has_answers_like_one_that_exists(db_url, monkeypatch):
    from recsys.accounts import MAX_FAILED_LOGINS, LoginRefused

    calls = []
    real = accounts._hasher

    class Counting:  # PasswordHasher's methods cannot be patched (slots)
        def verify(self, *args):
            calls.append(1)
            return real.verify(*args)

        def __getattr__(self, name):
            return getattr(real, name)

    monkeypatch.setattr(accounts, "_hasher", Counting())
    assert authenticate("ghost", "some-password") is None
    assert calls == [1]  # the same Argon2 work as a wrong password
    for _ in range(MAX_FAILED_LOGINS - 1):
        authenticate("ghost", "some-password")
    with pytest.raises(LoginRefused, match="too many wrong passwords for 'ghost'"):
        authenticate("ghost", "some-password")


def test_one_client_gets_a_bounded_number_of_failures_whatever_the_usernames(db_url):
    from recsys.accounts import MAX_CLIENT_FAILURES, LoginRefused

    create_account("gina", "right-password", "viewer", actor="test")
    for number in range(MAX_CLIENT_FAILURES):
        assert authenticate(f"guess{number}", "wrong-password", client="203.0.113.9") is None
    with pytest.raises(LoginRefused, match="from this address"):
        authenticate("gina", "right-password", client="203.0.113.9")
    assert authenticate("gina", "right-password", client="198.51.100.7") == Identity("gina", "viewer")


def test_lengths_are_checked_before_anything_is_written(db_url):
    assert authenticate("u" * 10_000, "whatever-password") is None  # audited as "?", not a DataError
    assert authenticate("someone", "p" * 100_000) is None
    with pytest.raises(AccountError, match="at most 128"):
        create_account("n" * 129, "long-enough", "viewer", actor="test")
    with pytest.raises(AccountError, match="at most 1024"):
        create_account("nina", "p" * 1025, "viewer", actor="test")


def test_deactivating_ends_the_sessions_and_the_last_admin_stays(db_url):
    from recsys.accounts import session_identity, set_active, start_session

    create_account("root", "admin-password", "admin", actor="test")
    create_account("hank", "hank-password", "operator", actor="test")
    token = start_session(Identity("hank", "operator"))
    set_active("hank", False, actor="root")
    assert session_identity(token) is None and authenticate("hank", "hank-password") is None
    set_active("hank", True, actor="root")
    assert authenticate("hank", "hank-password") == Identity("hank", "operator")
    with pytest.raises(AccountError, match="your own account"):
        set_active("root", False, actor="root")
    with pytest.raises(AccountError, match="last active admin"):
        set_active("root", False, actor="hank")


def test_reset_and_change_password(db_url):
    from recsys.accounts import change_password, reset_password, session_identity, start_session

    create_account("ivy", "first-password", "viewer", actor="test")
    here, elsewhere = (start_session(Identity("ivy", "viewer")) for _ in range(2))
    with pytest.raises(AccountError, match="current password is not right"):
        change_password("ivy", "not-it", "second-password", keep_token=here)
    change_password("ivy", "first-password", "second-password", keep_token=here)
    assert session_identity(here) == Identity("ivy", "viewer") and session_identity(elsewhere) is None
    assert authenticate("ivy", "second-password") is not None
    reset_password("ivy", "third-password", actor="admin")
    assert session_identity(here) is None and authenticate("ivy", "third-password") is not None


def test_the_accounts_cli(db_url, capsys, monkeypatch):
    import json

    from recsys.cli import main

    monkeypatch.setenv("WORKBENCH_NEW_PASSWORD", "jack-password")
    assert main(["accounts", "create", "--username", "jack", "--role", "viewer"]) == 0
    assert main(["accounts", "deactivate", "--username", "jack"]) == 0
    assert authenticate("jack", "jack-password") is None
    assert main(["accounts", "reactivate", "--username", "jack"]) == 0
    monkeypatch.setenv("WORKBENCH_NEW_PASSWORD", "jack-password-2")
    assert main(["accounts", "reset-password", "--username", "jack"]) == 0
    assert main(["accounts", "unlock", "--username", "jack"]) == 0
    capsys.readouterr()
    assert main(["accounts", "list"]) == 0
    listed = {row["username"]: row for row in json.loads(capsys.readouterr().out)}
    assert listed["jack"]["active"] is True and authenticate("jack", "jack-password-2") is not None
    assert main(["accounts", "deactivate", "--username", "nobody"]) != 0
    assert "there is no account named 'nobody'" in capsys.readouterr().err


def test_wrong_passwords_sent_at_once_cannot_slip_past_the_lock(db_url):
    from concurrent.futures import ThreadPoolExecutor

    from recsys.accounts import MAX_FAILED_LOGINS, LoginRefused

    create_account("kim", "right-password", "viewer", actor="test")

    def attempt(_):
        try:
            return authenticate("kim", "wrong-password")
        except LoginRefused:
            return "refused"

    with ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(attempt, range(12)))
    assert answers.count(None) == MAX_FAILED_LOGINS and answers.count("refused") == 12 - MAX_FAILED_LOGINS
    with pytest.raises(LoginRefused):
        authenticate("kim", "right-password")


def test_a_lock_that_ran_out_gives_as_many_tries_as_a_fresh_account(db_url):
    from datetime import timedelta

    from db.models import utc_now
    from recsys.accounts import MAX_FAILED_LOGINS, LoginRefused, set_role

    create_account("lee", "right-password", "viewer", actor="test")
    for _ in range(MAX_FAILED_LOGINS):
        authenticate("lee", "wrong-password")
    with session_scope() as session:  # fifteen minutes later
        queries.account_by_name(session, "lee").locked_until = utc_now() - timedelta(seconds=1)
    assert authenticate("lee", "wrong-password") is None  # one typo does not lock it again
    assert authenticate("lee", "right-password") == Identity("lee", "viewer")
    create_account("boss", "boss-password", "admin", actor="test")
    with pytest.raises(AccountError, match="last active admin"):
        set_role("boss", "viewer", actor="boss")
    with pytest.raises(LoginRefused):
        for _ in range(MAX_FAILED_LOGINS + 1):
            authenticate("nobody-here", "wrong-password")


def test_behind_trusted_proxies_the_client_is_the_forwarded_address(monkeypatch):
    from recsys.accounts import client_key

    assert client_key(None, "198.51.100.7") is None  # no proxy trusted: a header anyone can send
    monkeypatch.setenv("WORKBENCH_TRUSTED_PROXIES", "1")
    assert client_key(None, "10.0.0.1, 198.51.100.7") == "198.51.100.7"  # what the proxy saw
    monkeypatch.setenv("WORKBENCH_TRUSTED_PROXIES", "2")
    assert client_key(None, "10.0.0.1, 198.51.100.7, 192.0.2.3") == "198.51.100.7"
    assert client_key(None, "192.0.2.3") is None and client_key(None, "not-an-address, x") is None
    assert client_key(None, "2001:db8::5, 2001:db8::9") == "2001:db8::/64"
