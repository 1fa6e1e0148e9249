"""Merchandiser presets: a named, versioned `FusionConfig` (method, weights, rules) kept in SQL.

Two scopes: "search" fuses the retrievers (bm25, semantic), "recommendations"
the recommenders (ease, semantic). Saving under an existing name adds a
version; one version per scope is active and served; activating an earlier
version rolls back. Every change goes to the audit log (see `db.presets`).
`python -m recsys init` creates and activates the shipped defaults, named
"default", the configs chosen in docs/benchmarks.md.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from db import presets as store
from db.engine import session_scope
from db.models import PRESET_SCOPES
from db.models import Preset as PresetRow
from recsys.fusion import defaults
from recsys.fusion.base import FusionConfig
from recsys.fusion.rules import rules_from
from recsys.fusion.sponsored import check_sponsored

DEFAULT_NAME = "default"


@dataclass
class Preset:
    """One stored preset version."""

    id: int
    scope: str
    name: str
    version: int
    config: FusionConfig
    created_by: str
    created_at: datetime
    note: str = ""
    active: bool = False

    @property
    def label(self) -> str:
        return f"{self.name} v{self.version}"


def default_config(scope: str) -> FusionConfig:
    """The shipped default fusion of `scope`: the hybrid engines' own defaults."""
    shipped = {"search": defaults.SEARCH, "recommendations": defaults.RECOMMENDATIONS}
    if scope not in shipped:
        raise ValueError(f"unknown preset scope {scope!r}; choose one of {', '.join(PRESET_SCOPES)}")
    return FusionConfig.from_dict(json.loads(json.dumps(shipped[scope])))


def validated(config: FusionConfig | dict) -> FusionConfig:
    """`config` as a FusionConfig whose rules and sponsored slots are all valid (ValueError naming
    the bad rule or key)."""
    config = FusionConfig.resolve(config)
    for position, rule in enumerate(config.rules, 1):
        try:
            rules_from([rule])
        except (TypeError, ValueError) as error:
            raise ValueError(f"rule {position}: {error}") from None
    check_sponsored(config)
    return config


def _preset(row) -> Preset:
    return Preset(row.id, row.scope, row.name, row.version, FusionConfig.from_dict(row.config),
                  row.created_by, row.created_at, row.note or "", bool(row.is_active))


def save_preset(session: Session, scope: str, name: str, config: FusionConfig | dict, actor: str,
                note: str = "", activate: bool = False) -> Preset:
    """Store `config` as the next version of `name`; with `activate`, serve it."""
    row = store.save_preset(session, scope, name, validated(config).to_dict(), actor, note)
    if activate:
        store.activate_preset(session, row.id, actor)
    return _preset(row)


def activate(session: Session, preset_id: int, actor: str) -> Preset:
    return _preset(store.activate_preset(session, preset_id, actor))


def roll_back(session: Session, scope: str, actor: str) -> Preset:
    """Serve the version before the active one (LookupError when there is none)."""
    return _preset(store.rollback_preset(session, scope, actor))


def active_preset(session: Session, scope: str) -> Preset | None:
    row = store.active_preset(session, scope)
    return None if row is None else _preset(row)


def get_preset(session: Session, scope: str, name: str, version: int | None = None) -> Preset:
    """Version `version` (default: latest) of preset `name`; LookupError listing the names otherwise."""
    row = store.find_preset(session, scope, name, version)
    if row is None:
        names = sorted(set(store.list_presets(session, scope)["name"]))
        which = f"{name} v{version}" if version is not None else name
        raise LookupError(f"there is no {scope} preset {which!r}; the {scope} presets are: "
                          f"{', '.join(names) or 'none yet'}")
    return _preset(row)


def preset_by_id(session: Session, preset_id: int) -> Preset:
    row = session.get(PresetRow, preset_id)
    if row is None:
        raise LookupError(f"there is no preset with id {preset_id}")
    return _preset(row)


def list_presets(session: Session, scope: str):
    """Every version of every preset of `scope`, newest first, as a frame."""
    return store.list_presets(session, scope)


def ensure_default_presets(session: Session, actor: str = "system") -> list[Preset]:
    """Create and activate the "default" preset of each scope that has no preset yet."""
    created = []
    for scope in PRESET_SCOPES:
        if store.list_presets(session, scope).empty:
            created.append(save_preset(session, scope, DEFAULT_NAME, default_config(scope), actor,
                                       note="shipped default", activate=True))
    return created


def preset_config(scope: str, name: str, version: int | None = None, url: str | None = None) -> FusionConfig:
    """The config of a stored preset, opening its own session (for the CLI)."""
    with session_scope(url) as session:
        return get_preset(session, scope, name, version).config
