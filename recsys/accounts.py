"""Accounts, roles and the first admin.

Passwords are hashed with Argon2 (argon2-cffi). Roles decide which pages and
actions appear:

- admin: everything, including accounts and the audit log
- operator: upload data, activate and roll back versions, change settings, run evaluations
- merchandiser: search trials, fusion weights, business rules and presets, run evaluations
- viewer: look only
- grader: judge search trials' results (blind), and nothing else

The first admin's password comes from `WORKBENCH_ADMIN_PASSWORD`, or from
`[admin] password` in `.streamlit/secrets.toml`; without either, one is
generated and printed once. There is no default password.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import tomllib
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from db import queries
from db.engine import PROJECT_ROOT, session_scope
from db.models import ROLES, utc_now

PERMISSIONS: dict[str, frozenset[str]] = {
    "admin": frozenset({"view", "upload", "activate", "settings", "merchandise", "evaluate", "train",
                        "judge", "admin"}),
    "operator": frozenset({"view", "upload", "activate", "settings", "evaluate", "train", "judge"}),
    "merchandiser": frozenset({"view", "merchandise", "evaluate", "judge"}),
    "viewer": frozenset({"view"}),
    # Judges search trials' results, blind, and sees nothing else of the shop.
    "grader": frozenset({"judge"}),
}
ADMIN_USERNAME = "admin"
MIN_PASSWORD_LENGTH = 8
_hasher = PasswordHasher()


@dataclass(frozen=True)
class Identity:
    """Who is logged in: enough to decide what they may see and do."""

    username: str
    role: str

    def can(self, permission: str) -> bool:
        return permission in PERMISSIONS.get(self.role, frozenset())


class AccountError(ValueError):
    pass


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def check_password_rules(username: str, password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")
    if password.lower() == username.lower():
        raise AccountError("the password must not be the username")


def create_account(username: str, password: str, role: str, *, actor: str, url: str | None = None) -> Identity:
    username = username.strip()
    if not username:
        raise AccountError("the username is empty")
    if role not in ROLES:
        raise AccountError(f"unknown role {role!r}; use one of {', '.join(ROLES)}")
    check_password_rules(username, password)
    with session_scope(url) as session:
        if queries.account_by_name(session, username) is not None:
            raise AccountError(f"an account named {username!r} exists already")
        queries.add_account(session, username, hash_password(password), role)
        queries.audit(session, actor, "create_account", username, role=role)
    return Identity(username, role)


def authenticate(username: str, password: str, *, url: str | None = None) -> Identity | None:
    """The identity for these credentials, or None; every attempt is audited."""
    with session_scope(url) as session:
        account = queries.account_by_name(session, username.strip())
        valid = False
        if account is not None and account.is_active:
            try:
                valid = _hasher.verify(account.password_hash, password)
            except (VerificationError, InvalidHashError):
                valid = False
            if valid and _hasher.check_needs_rehash(account.password_hash):
                account.password_hash = hash_password(password)
        queries.audit(session, username.strip() or "?", "login" if valid else "login_failed")
        return Identity(account.username, account.role) if valid else None


def set_role(username: str, role: str, *, actor: str, url: str | None = None) -> None:
    """Give the account another role; its login sessions end, so it logs in again under the new one."""
    if role not in ROLES:
        raise AccountError(f"unknown role {role!r}; use one of {', '.join(ROLES)}")
    with session_scope(url) as session:
        account = queries.account_by_name(session, username)
        if account is None:
            raise AccountError(f"there is no account named {username!r}")
        account.role = role
        queries.end_login_sessions(session, utc_now(), username=username)
        queries.audit(session, actor, "set_role", username, role=role)


def list_accounts(*, url: str | None = None):
    """Every account: username, role, active, created_at (no password hashes)."""
    with session_scope(url) as session:
        return queries.list_accounts(session)


def audit_log(limit: int = 200, *, url: str | None = None):
    """The latest audited actions, newest first: at, actor, action, target, details."""
    with session_scope(url) as session:
        return queries.audit_log(session, limit)


# --- login sessions: what lets a login survive a page reload ------------------------------

def session_hours() -> float:
    """How long a login lasts without logging in again: ``$WORKBENCH_SESSION_HOURS``, default 12."""
    return float(os.environ.get("WORKBENCH_SESSION_HOURS", 12))


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start_session(who: Identity, *, url: str | None = None) -> str:
    """A new login session of `who`; returns its token (for the browser's cookie; only its hash is stored)."""
    token = secrets.token_urlsafe(32)
    with session_scope(url) as session:
        queries.add_login_session(session, _token_hash(token), who.username,
                                  utc_now() + timedelta(hours=session_hours()))
    return token


def session_identity(token: str, *, url: str | None = None) -> Identity | None:
    """Who a session token belongs to, with the account's current role; None when the token is
    unknown, expired or ended, or the account is gone or deactivated."""
    if not token:
        return None
    with session_scope(url) as session:
        account = queries.login_session_account(session, _token_hash(token), utc_now())
        if account is None or not account.is_active:
            return None
        return Identity(account.username, account.role)


def current_identity(username: str, *, url: str | None = None) -> Identity | None:
    """The account `username` with its current role; None when it is gone or deactivated."""
    with session_scope(url) as session:
        account = queries.account_by_name(session, username)
        return Identity(account.username, account.role) if account is not None and account.is_active else None


def end_session(token: str, *, actor: str, url: str | None = None) -> None:
    """Log out: the session's token no longer logs anyone in."""
    with session_scope(url) as session:
        queries.end_login_sessions(session, utc_now(), token_sha256=_token_hash(token))
        queries.audit(session, actor, "logout")


def configured_admin_password(project_root: Path = PROJECT_ROOT) -> str | None:
    """The first admin's password from the environment or secrets.toml, if set."""
    password = os.environ.get("WORKBENCH_ADMIN_PASSWORD")
    if password:
        return password
    secrets_file = project_root / ".streamlit" / "secrets.toml"
    if secrets_file.exists():
        with secrets_file.open("rb") as handle:
            return tomllib.load(handle).get("admin", {}).get("password")
    return None


def ensure_admin(*, url: str | None = None) -> str | None:
    """Create the first admin when there are no accounts.

    Returns the password when it was generated here (the caller prints it once),
    otherwise None.
    """
    with session_scope(url) as session:
        if queries.account_count(session) > 0:
            return None
    password = configured_admin_password()
    generated = password is None
    if generated:
        password = secrets.token_urlsafe(12)
    create_account(ADMIN_USERNAME, password, "admin", actor="system", url=url)
    return password if generated else None
