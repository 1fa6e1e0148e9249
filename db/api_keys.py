"""Reads and writes of the REST service's API keys.

Only a key's SHA-256 (hex) and its first characters (`prefix`, to recognise it
in a list) are stored; the key itself is shown once when it is issued
(`recsys.serving.keys`). Like `db.queries`, functions take a Session and leave
committing to the caller.
"""

from __future__ import annotations

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import ApiKey, utc_now


def add_api_key(session: Session, name: str, key_hash: str, prefix: str, created_by: str) -> ApiKey:
    key = ApiKey(name=name, key_hash=key_hash, prefix=prefix, created_by=created_by)
    session.add(key)
    session.flush()
    return key


def active_api_keys(session: Session) -> list[tuple[int, str, str]]:
    """(id, prefix, key_hash) of every key that is not revoked."""
    rows = session.execute(select(ApiKey.id, ApiKey.prefix, ApiKey.key_hash)
                           .where(ApiKey.revoked_at.is_(None))).all()
    return [tuple(row) for row in rows]


def list_api_keys(session: Session) -> pd.DataFrame:
    """Every key, newest first: id, name, prefix, created_by, created_at, revoked_at (no hashes)."""
    rows = session.execute(select(ApiKey.id, ApiKey.name, ApiKey.prefix, ApiKey.created_by,
                                  ApiKey.created_at, ApiKey.revoked_at)
                           .order_by(ApiKey.id.desc())).all()
    return pd.DataFrame(rows, columns=["id", "name", "prefix", "created_by", "created_at",
                                       "revoked_at"])


def revoke_api_key(session: Session, key_id: int) -> ApiKey:
    """Mark the key revoked (kept, for the metrics that name it). LookupError if there is none."""
    key = session.get(ApiKey, key_id)
    if key is None:
        raise LookupError(f"there is no API key with id {key_id}")
    if key.revoked_at is None:
        key.revoked_at = utc_now()
    return key
