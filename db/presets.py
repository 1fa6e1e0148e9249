"""Reads and writes of fusion presets (versioned; one active per scope).

Functions take a Session and leave committing to the caller; every change is
written to the audit log.
"""

from __future__ import annotations

import pandas as pd
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from db.models import PRESET_SCOPES, Preset, utc_now
from db.queries import audit


def _check_scope(scope: str) -> None:
    if scope not in PRESET_SCOPES:
        raise ValueError(f"unknown preset scope {scope!r}; choose one of {', '.join(PRESET_SCOPES)}")


def save_preset(session: Session, scope: str, name: str, config: dict, actor: str,
                note: str = "") -> Preset:
    """Store `config` as the next version of preset `name` (version 1 if new)."""
    _check_scope(scope)
    name = " ".join(str(name).split())
    if not name:
        raise ValueError("a preset needs a name")
    latest = session.scalar(select(func.max(Preset.version)).where(Preset.scope == scope,
                                                                   Preset.name == name))
    preset = Preset(scope=scope, name=name, version=(latest or 0) + 1, config=config, note=note,
                    created_by=actor)
    session.add(preset)
    session.flush()
    audit(session, actor, "save preset", f"{scope}:{name} v{preset.version}", config=config, note=note)
    return preset


def activate_preset(session: Session, preset_id: int, actor: str, action: str = "activate preset") -> Preset:
    """Make the preset version `preset_id` the served one of its scope."""
    preset = session.get(Preset, preset_id)
    if preset is None:
        raise LookupError(f"there is no preset with id {preset_id}")
    session.execute(update(Preset).where(Preset.scope == preset.scope).values(is_active=False))
    preset.is_active = True
    preset.activated_at = utc_now()
    audit(session, actor, action, f"{preset.scope}:{preset.name} v{preset.version}")
    return preset


def rollback_preset(session: Session, scope: str, actor: str) -> Preset:
    """Activate the version before the active one of the active preset's name."""
    active = active_preset(session, scope)
    if active is None:
        raise LookupError(f"no {scope} preset is active, so there is nothing to roll back")
    previous = session.scalar(select(Preset).where(
        Preset.scope == scope, Preset.name == active.name, Preset.version < active.version)
        .order_by(Preset.version.desc()).limit(1))
    if previous is None:
        raise LookupError(f"{active.name} v{active.version} is the first version; there is "
                          "no earlier one to roll back to")
    return activate_preset(session, previous.id, actor, action="roll back preset")


def active_preset(session: Session, scope: str) -> Preset | None:
    _check_scope(scope)
    return session.scalar(select(Preset).where(Preset.scope == scope, Preset.is_active.is_(True)))


def find_preset(session: Session, scope: str, name: str, version: int | None = None) -> Preset | None:
    """Version `version` of preset `name` (its latest when None)."""
    query = select(Preset).where(Preset.scope == scope, Preset.name == name)
    if version is not None:
        query = query.where(Preset.version == version)
    return session.scalar(query.order_by(Preset.version.desc()).limit(1))


def list_presets(session: Session, scope: str | None = None) -> pd.DataFrame:
    """Every preset version, newest first."""
    query = select(Preset.id, Preset.scope, Preset.name, Preset.version, Preset.is_active,
                   Preset.created_by, Preset.created_at, Preset.activated_at, Preset.note,
                   Preset.config).order_by(Preset.id.desc())
    if scope is not None:
        query = query.where(Preset.scope == scope)
    rows = session.execute(query).all()
    return pd.DataFrame(rows, columns=["id", "scope", "name", "version", "active", "created_by",
                                       "created_at", "activated_at", "note", "config"])
