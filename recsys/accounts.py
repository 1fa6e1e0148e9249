"""Accounts, roles and the first admin.

Passwords are hashed with Argon2 (argon2-cffi). Roles decide which pages and
actions appear:

- admin: everything, including accounts and the audit log
- operator: upload data, activate and roll back versions, change settings, run evaluations
- merchandiser: search trials, fusion weights, business rules and presets, run evaluations
- viewer: look only
- grader: judge search trials' results (blind), and nothing else
- advertiser: the sponsored-products campaigns and reports of one advertiser (a supplier or brand),
  named on the account, and nothing else; operators and admins manage every advertiser's campaigns

The first admin's password comes from `WORKBENCH_ADMIN_PASSWORD`, or from
`[admin] password` in `.streamlit/secrets.toml`; without either, one is
generated and printed once. There is no default password.

Logging in is throttled. After `MAX_FAILED_LOGINS` wrong passwords in a row an account is locked
for `LOCK_MINUTES` (an admin can unlock it at once), and a username nobody has is treated the
same way, so the answers do not tell which usernames exist; one client (address) gets at most
`MAX_CLIENT_FAILURES` failed logins per `LOCK_MINUTES` whatever the usernames. A username nobody
has costs the same Argon2 work as a wrong password. Lengths are checked before anything is
written. Deactivating an account, resetting or changing a password and changing a role end the
account's login sessions, so they take effect at the next click.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import secrets
import threading
import time
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
                        "judge", "ads", "admin"}),
    "operator": frozenset({"view", "upload", "activate", "settings", "evaluate", "train", "judge", "ads"}),
    "merchandiser": frozenset({"view", "merchandise", "evaluate", "judge"}),
    "viewer": frozenset({"view"}),
    # Judges search trials' results, blind, and sees nothing else of the shop.
    "grader": frozenset({"judge"}),
    # Its own advertiser's campaigns and reports only (recsys.ads.campaigns checks each action).
    "advertiser": frozenset({"advertise"}),
}
MAX_ADVERTISER_LENGTH = 128  # accounts.advertiser, ad_campaigns.advertiser
ADMIN_USERNAME = "admin"
MIN_PASSWORD_LENGTH = 8
MAX_USERNAME_LENGTH = 128  # accounts.username
MAX_PASSWORD_LENGTH = 1024  # hashing a megabyte would be work for nothing
MAX_FAILED_LOGINS = 5
MAX_CLIENT_FAILURES = 20
LOCK_MINUTES = 15
_hasher = PasswordHasher()
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))  # what a username nobody has is checked against


@dataclass(frozen=True)
class Identity:
    """Who is logged in: enough to decide what they may see and do."""

    username: str
    role: str
    advertiser: str | None = None  # role "advertiser": the advertiser it acts for

    def can(self, permission: str) -> bool:
        return permission in PERMISSIONS.get(self.role, frozenset())


class AccountError(ValueError):
    pass


class LoginRefused(AccountError):
    """Too many failed logins: this one was not even checked."""


class _Failures:
    """Failed logins per client within a sliding window, in memory: `take` counts an attempt (False,
    counting nothing, when the client is at the limit), `release` forgets it when it succeeded."""

    def __init__(self) -> None:
        self._times: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def take(self, key: str, limit: int) -> bool:
        now = time.monotonic()
        with self._lock:
            if len(self._times) > 10_000:  # forget the clients whose failures are all old
                self._times = {k: v for k, v in self._times.items() if v and v[-1] > now - LOCK_MINUTES * 60}
            recent = [moment for moment in self._times.get(key, []) if moment > now - LOCK_MINUTES * 60]
            if len(recent) >= limit:
                self._times[key] = recent
                return False
            self._times[key] = [*recent, now]
            return True

    def release(self, key: str) -> None:
        with self._lock:
            if self._times.get(key):
                self._times[key].pop()


class _UnknownNames:
    """The lockout of usernames nobody has, kept in memory exactly as an account's is kept in SQL
    (`authenticate`), so that the answers never tell which usernames exist."""

    def __init__(self) -> None:
        self._state: dict[str, tuple[int, float | None]] = {}  # name -> (attempts, locked until)
        self._lock = threading.Lock()

    def attempt(self, name: str) -> bool:
        """Count an attempt; False when the name is locked (or this attempt goes past the limit)."""
        now = time.monotonic()
        with self._lock:
            if len(self._state) > 10_000:
                self._state = {k: v for k, v in self._state.items() if v[1] is not None and v[1] > now}
            count, until = self._state.get(name, (0, None))
            if until is not None and until <= now:
                count, until = 0, None  # the lock ran out: as many tries as a fresh account
            if until is not None or count >= MAX_FAILED_LOGINS:
                self._state[name] = (count, until)
                return False
            count += 1
            self._state[name] = (count, now + LOCK_MINUTES * 60 if count >= MAX_FAILED_LOGINS else None)
            return True

    def clear(self, name: str) -> None:
        with self._lock:
            self._state.pop(name, None)


_failures = _Failures()
_unknown = _UnknownNames()


TRUSTED_PROXIES_ENV = "WORKBENCH_TRUSTED_PROXIES"


def client_key(peer: str | None, forwarded_for: str | None = None) -> str | None:
    """The client a failed login is counted against: the address Streamlit saw (`peer`; None for a
    connection from the same machine), or, behind `$WORKBENCH_TRUSTED_PROXIES` reverse proxies
    that add themselves to ``X-Forwarded-For``, the address the nearest of them saw. IPv6
    addresses count by their /64 network (one household or host). None when unknown.

    >>> client_key("203.0.113.9"), client_key(None)
    ('203.0.113.9', None)
    >>> client_key("2001:db8::1:2")
    '2001:db8::/64'
    """
    address = peer
    hops = int(os.environ.get(TRUSTED_PROXIES_ENV, "0") or 0)
    if hops > 0 and forwarded_for:
        chain = [part.strip() for part in forwarded_for.split(",") if part.strip()]
        address = chain[-hops] if len(chain) >= hops else None
    if not address:
        return None
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return None  # not an address: nothing to count by
    if parsed.version == 6:
        return str(ipaddress.ip_network(f"{parsed}/64", strict=False))
    return str(parsed)


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def check_password_rules(username: str, password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise AccountError(f"the password must have at most {MAX_PASSWORD_LENGTH} characters")
    if password.lower() == username.lower():
        raise AccountError("the password must not be the username")


def _checked_role(role: str, advertiser: str | None) -> str | None:
    """The advertiser an account of `role` acts for: a name for the role "advertiser" (AccountError
    without one), None for every other role (AccountError when one is given)."""
    if role not in ROLES:
        raise AccountError(f"unknown role {role!r}; use one of {', '.join(ROLES)}")
    advertiser = (advertiser or "").strip() or None
    if role != "advertiser":
        if advertiser is not None:
            raise AccountError(f"only an account of role advertiser acts for an advertiser, not a {role}")
        return None
    if advertiser is None:
        raise AccountError("an account of role advertiser needs the advertiser it acts for "
                           "(a supplier or brand)")
    if len(advertiser) > MAX_ADVERTISER_LENGTH:
        raise AccountError(f"the advertiser's name must have at most {MAX_ADVERTISER_LENGTH} characters")
    return advertiser


def create_account(username: str, password: str, role: str, *, actor: str, advertiser: str | None = None,
                   url: str | None = None) -> Identity:
    """A new account; `advertiser`: for the role "advertiser", the advertiser it acts for (required)."""
    username = username.strip()
    if not username:
        raise AccountError("the username is empty")
    if len(username) > MAX_USERNAME_LENGTH:
        raise AccountError(f"the username must have at most {MAX_USERNAME_LENGTH} characters")
    advertiser = _checked_role(role, advertiser)
    check_password_rules(username, password)
    with session_scope(url) as session:
        if queries.account_by_name(session, username) is not None:
            raise AccountError(f"an account named {username!r} exists already")
        queries.add_account(session, username, hash_password(password), role, advertiser)
        queries.audit(session, actor, "create_account", username, role=role,
                      **({"advertiser": advertiser} if advertiser else {}))
    return Identity(username, role, advertiser)


def authenticate(username: str, password: str, *, client: str | None = None,
                 url: str | None = None) -> Identity | None:
    """The identity for these credentials, or None; every attempt is audited. LoginRefused when
    the account (or the username, or the client) has failed too often lately: then the password
    is not even checked.

    An attempt is counted before the password is checked, in one statement, so that many tries
    sent at once cannot slip past the limit; a success sets the count back to 0."""
    username = username.strip()
    client_key = f"client:{client}" if client else None
    if client_key and not _failures.take(client_key, MAX_CLIENT_FAILURES):
        raise LoginRefused(f"too many failed logins from this address; try again in {LOCK_MINUTES} minutes")
    if len(username) > MAX_USERNAME_LENGTH or len(password) > MAX_PASSWORD_LENGTH or not username:
        with session_scope(url) as session:  # lengths nobody can have: no hashing, no lookup
            queries.audit(session, "?", "login_failed", reason="username or password of an impossible length")
        return None
    refused = False
    with session_scope(url) as session:
        account = queries.account_by_name(session, username)
        attempts = None
        if account is None:
            refused = not _unknown.attempt(username)
            stored_hash, active = None, False
        else:
            attempts = queries.count_login_attempt(session, account.id, utc_now(), MAX_FAILED_LOGINS,
                                                   timedelta(minutes=LOCK_MINUTES))
            refused = attempts is None
            stored_hash, active = account.password_hash, account.is_active
        if refused:
            queries.audit(session, username, "login_locked")
    if refused:
        raise LoginRefused(f"too many wrong passwords for {username!r}: try again in {LOCK_MINUTES} minutes, "
                           "or ask an admin to unlock it")
    valid = False
    if stored_hash is not None and active:
        try:
            valid = _hasher.verify(stored_hash, password)
        except (VerificationError, InvalidHashError):
            valid = False
    else:
        _hasher_work(password)  # a username nobody has costs the same as a wrong password
    with session_scope(url) as session:
        if valid:
            account = queries.account_by_name(session, username)
            account.failed_logins, account.locked_until = 0, None
            if _hasher.check_needs_rehash(account.password_hash):
                account.password_hash = hash_password(password)
        queries.audit(session, username, "login" if valid else "login_failed")
        if not valid and attempts is not None and attempts >= MAX_FAILED_LOGINS:
            queries.audit(session, "system", "account_locked", username, failed_logins=attempts)
    if valid and client_key:
        _failures.release(client_key)
    return _identity(account) if valid else None


def _identity(account) -> Identity:
    return Identity(account.username, account.role, account.advertiser)


def _hasher_work(password: str = "") -> None:
    try:
        _hasher.verify(_DUMMY_HASH, password or "x")
    except (VerificationError, InvalidHashError):
        pass


def _account(session, username: str):
    account = queries.account_by_name(session, username)
    if account is None:
        raise AccountError(f"there is no account named {username!r}")
    return account


def _keep_an_admin(session, account, stays_admin: bool) -> None:
    """AccountError when the change would leave no active admin."""
    if stays_admin or account.role != "admin" or not account.is_active:
        return
    admins = [row for row in queries.list_accounts(session).itertuples()
              if row.role == "admin" and row.active]
    if len(admins) <= 1:
        raise AccountError(f"{account.username} is the last active admin: make another admin first")


def set_active(username: str, active: bool, *, actor: str, url: str | None = None) -> None:
    """Deactivate (its login sessions end at once) or reactivate an account. An admin cannot
    deactivate themselves, nor the last active admin."""
    with session_scope(url) as session:
        account = _account(session, username)
        if not active:
            if username == actor:
                raise AccountError("you cannot deactivate your own account")
            _keep_an_admin(session, account, False)
            queries.end_login_sessions(session, utc_now(), username=username)
        account.is_active = active
        queries.audit(session, actor, "activate_account" if active else "deactivate_account", username)


def reset_password(username: str, password: str, *, actor: str, url: str | None = None) -> None:
    """An admin sets a new password: the account's sessions end and any lockout is lifted."""
    check_password_rules(username, password)
    with session_scope(url) as session:
        account = _account(session, username)
        account.password_hash = hash_password(password)
        account.failed_logins, account.locked_until = 0, None
        queries.end_login_sessions(session, utc_now(), username=username)
        queries.audit(session, actor, "reset_password", username)


def change_password(username: str, current: str, new: str, *, keep_token: str | None = None,
                    url: str | None = None) -> None:
    """Someone changes their own password, giving the current one; their other sessions end. A
    wrong current password counts as a wrong login (and locks the account as wrong logins do)."""
    check_password_rules(username, new)
    with session_scope(url) as session:
        account = _account(session, username)
        if queries.count_login_attempt(session, account.id, utc_now(), MAX_FAILED_LOGINS,
                                       timedelta(minutes=LOCK_MINUTES)) is None:
            raise LoginRefused(f"too many wrong passwords: try again in {LOCK_MINUTES} minutes, "
                               "or ask an admin")
        stored = account.password_hash
    try:
        valid = len(current) <= MAX_PASSWORD_LENGTH and _hasher.verify(stored, current)
    except (VerificationError, InvalidHashError):
        valid = False
    with session_scope(url) as session:
        account = _account(session, username)
        if not valid:
            queries.audit(session, username, "change_password_failed")
        else:
            account.password_hash = hash_password(new)
            account.failed_logins, account.locked_until = 0, None
            ended = queries.end_login_sessions(session, utc_now(), username=username,
                                               keep_sha256=_token_hash(keep_token) if keep_token else None)
            queries.audit(session, username, "change_password", username, other_sessions_ended=ended)
    if not valid:
        raise AccountError("the current password is not right")


def unlock(username: str, *, actor: str, url: str | None = None) -> None:
    """Lift a lockout after wrong passwords."""
    with session_scope(url) as session:
        account = _account(session, username)
        account.failed_logins, account.locked_until = 0, None
        queries.audit(session, actor, "unlock_account", username)


def set_role(username: str, role: str, *, actor: str, advertiser: str | None = None,
             url: str | None = None) -> None:
    """Give the account another role (`advertiser`: for the role "advertiser", the advertiser it acts
    for); its login sessions end, so it logs in again under the new one."""
    advertiser = _checked_role(role, advertiser)
    with session_scope(url) as session:
        account = queries.account_by_name(session, username)
        if account is None:
            raise AccountError(f"there is no account named {username!r}")
        _keep_an_admin(session, account, role == "admin")
        account.role, account.advertiser = role, advertiser
        queries.end_login_sessions(session, utc_now(), username=username)
        queries.audit(session, actor, "set_role", username, role=role,
                      **({"advertiser": advertiser} if advertiser else {}))


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
        return _identity(account)


def current_identity(username: str, *, url: str | None = None) -> Identity | None:
    """The account `username` with its current role; None when it is gone or deactivated."""
    with session_scope(url) as session:
        account = queries.account_by_name(session, username)
        return _identity(account) if account is not None and account.is_active else None


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
