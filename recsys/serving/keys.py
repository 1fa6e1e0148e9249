"""API keys of the REST service: issue, list, revoke and verify.

A key is ``rk_`` plus 43 URL-safe characters from `secrets.token_urlsafe` (256
random bits). SQL keeps only its SHA-256 (hex) and its first 8 characters, so
a leaked database gives no usable key; the key itself is returned once by
`issue_key`. A fast unsalted hash is enough here, unlike for passwords: the key
is random, not something a person chose, so there is nothing to guess.

The service checks keys with a `KeyVerifier`: the active keys' hashes are read
from SQL into memory and read again every `refresh_s` seconds, so a request
costs one SHA-256 and no query, and a revoked key stops working within
`refresh_s`. An unknown key makes it read them again, at most once a second, so a key issued a
moment ago works at once. Hashes are compared with `hmac.compare_digest` (constant time).

>>> key = "rk_" + "a" * 43
>>> len(hash_key(key)), key_prefix(key)
(64, 'rk_aaaaa')
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import threading
import time
from dataclasses import dataclass

import pandas as pd
from sqlalchemy.exc import SQLAlchemyError

from db import api_keys, queries
from db.engine import session_scope

KEY_PREFIX = "rk_"
PREFIX_LENGTH = 8
MAX_KEY_LENGTH = 256  # longer input is rejected before hashing
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class IssuedKey:
    """A key just issued: `key` is the only copy of the secret."""

    id: int
    name: str
    prefix: str
    key: str


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def key_prefix(key: str) -> str:
    return key[:PREFIX_LENGTH]


def issue_key(name: str, *, actor: str, url: str | None = None) -> IssuedKey:
    """Create a key named `name`, store its hash, audit it; the key is in the result only."""
    name = name.strip()
    if not name:
        raise ValueError("the key needs a name, e.g. the client that will use it")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    with session_scope(url) as session:
        stored = api_keys.add_api_key(session, name[:128], hash_key(key), key_prefix(key), actor)
        queries.audit(session, actor, "issue_api_key", f"api key {stored.id}", name=stored.name,
                      prefix=stored.prefix)
        return IssuedKey(stored.id, stored.name, stored.prefix, key)


def revoke_key(key_id: int, *, actor: str, url: str | None = None) -> None:
    """Revoke key `key_id` and audit it; LookupError when there is no such key."""
    with session_scope(url) as session:
        stored = api_keys.revoke_api_key(session, key_id)
        queries.audit(session, actor, "revoke_api_key", f"api key {key_id}", name=stored.name,
                      prefix=stored.prefix)


def list_keys(url: str | None = None) -> pd.DataFrame:
    with session_scope(url) as session:
        return api_keys.list_api_keys(session)


class KeyVerifier:
    """Checks presented keys against the active keys in SQL, cached for `refresh_s` seconds."""

    # An unknown key may be one issued since the last read: it reads again at once, at most this often
    # (so random keys sent in a loop cost one query a second, not one each).
    MISS_REFRESH_S = 1.0

    def __init__(self, url: str | None = None, refresh_s: float = 5.0):
        self.url = url
        self.refresh_s = refresh_s
        self._by_prefix: dict[str, list[tuple[int, str]]] = {}
        self._loaded_at = float("-inf")
        self._lock = threading.Lock()

    def refresh(self) -> None:
        with session_scope(self.url) as session:
            rows = api_keys.active_api_keys(session)
        by_prefix: dict[str, list[tuple[int, str]]] = {}
        for key_id, prefix, key_hash in rows:
            by_prefix.setdefault(prefix, []).append((key_id, key_hash))
        self._by_prefix = by_prefix
        self._loaded_at = time.monotonic()

    def _maybe_refresh(self, every_s: float | None = None) -> None:
        every_s = self.refresh_s if every_s is None else every_s
        if time.monotonic() - self._loaded_at < every_s:
            return
        # One request reloads; the others go on with the keys they have.
        if self._lock.acquire(blocking=self._loaded_at == float("-inf")):
            try:
                if time.monotonic() - self._loaded_at >= every_s:
                    self.refresh()
            except SQLAlchemyError:
                # The database is down: keep serving the keys read last, try again later.
                logger.exception("could not read the API keys; using the ones read before")
                self._loaded_at = time.monotonic()
            finally:
                self._lock.release()

    def verify(self, key: str | None) -> int | None:
        """The id of the active key `key`, or None."""
        if not key or len(key) > MAX_KEY_LENGTH:
            return None
        self._maybe_refresh()
        presented = hash_key(key)
        found = self._find(key, presented)
        if found is None and key.startswith(KEY_PREFIX):  # issued since the last read?
            self._maybe_refresh(self.MISS_REFRESH_S)
            found = self._find(key, presented)
        return found

    def _find(self, key: str, presented: str) -> int | None:
        found = None
        for key_id, key_hash in self._by_prefix.get(key_prefix(key), []):
            if hmac.compare_digest(presented, key_hash):
                found = key_id
        return found
