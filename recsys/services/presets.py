"""Fusion presets by database URL: list, save, activate and roll back, and their change log.

`recsys.fusion.presets` holds the presets' rules and works inside a session; this is what the
Fusion & rules page and the CLI call.
"""

from __future__ import annotations

import pandas as pd

from db import queries
from db.engine import session_scope
from recsys.fusion import FusionConfig
from recsys.fusion import presets as store
from recsys.fusion.presets import Preset


def list_presets(url: str, scope: str) -> pd.DataFrame:
    """Every version of every preset of `scope`, newest first."""
    with session_scope(url) as session:
        return store.list_presets(session, scope)


def save(url: str, scope: str, name: str, config: FusionConfig | dict, actor: str, note: str = "",
         activate: bool = False) -> Preset:
    """Store `config` as the next version of `name` (ValueError naming a bad field); with `activate`, serve it."""
    with session_scope(url) as session:
        return store.save_preset(session, scope, name, config, actor, note, activate)


def activate(url: str, preset_id: int, actor: str) -> Preset:
    with session_scope(url) as session:
        return store.activate(session, preset_id, actor)


def activate_named(url: str, scope: str, name: str, version: int | None, actor: str) -> Preset:
    """Serve version `version` (default: the latest) of preset `name`; LookupError listing the names."""
    with session_scope(url) as session:
        return store.activate(session, store.get_preset(session, scope, name, version).id, actor)


def roll_back(url: str, scope: str, actor: str) -> Preset:
    """Serve the version before the active one (LookupError when there is none)."""
    with session_scope(url) as session:
        return store.roll_back(session, scope, actor)


def changes(url: str, scope: str, limit: int = 10) -> pd.DataFrame:
    """The latest preset changes of `scope` from the audit log: at, actor, action, target."""
    with session_scope(url) as session:
        log = queries.audit_log(session, 500)
    chosen = log[log["action"].str.contains("preset") & log["target"].fillna("").str.startswith(f"{scope}:")]
    return chosen[["at", "actor", "action", "target"]].head(limit)
