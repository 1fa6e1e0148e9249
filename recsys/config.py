"""The base of every component's typed config: a dataclass that round-trips through JSON.

Configs live in SQL (evaluation results, presets), in files next to saved
models and in forms, so each is plain data with `to_dict` and `from_dict`;
`from_dict` names any parameter the component does not have.

>>> from dataclasses import dataclass
>>> @dataclass
... class Example(JsonConfig):
...     size: int = 3
>>> Example.from_dict(Example(size=5).to_dict())
Example(size=5)
"""

from __future__ import annotations

import functools
import types
import typing
from dataclasses import asdict, dataclass, fields
from typing import Any, Self


@dataclass
class JsonConfig:
    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"{cls.__name__} has no parameter(s) {sorted(unknown)}; "
                             f"it has {sorted(known)}")
        return cls(**{name: _nested(hint, data[name]) for name, hint in _hints(cls).items() if name in data})

    @classmethod
    def resolve(cls, config: JsonConfig | dict | None = None, **params) -> Self:
        """A config from an instance, a dict or nothing (defaults), with `params` on top."""
        if isinstance(config, dict):
            config = cls.from_dict(config)
        config = config or cls()
        return cls.from_dict({**config.to_dict(), **params}) if params else config


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    """The declared types of `cls`'s fields (resolved from the strings of postponed annotations;
    Any where a name cannot be resolved, e.g. one imported only for type checkers)."""
    try:
        hints = typing.get_type_hints(cls)
    except NameError:
        hints = {}
    return {f.name: hints.get(f.name, Any) for f in fields(cls)}


def _nested(hint: Any, value: Any) -> Any:
    """`value` as a field declared `hint` holds it: a dict becomes the JsonConfig it declares
    (also under `| None`), so that configs nest (a job's spec holds its training config)."""
    if isinstance(value, dict):
        union = isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union
        options = typing.get_args(hint) if union else (hint,)
        for option in options:
            if isinstance(option, type) and issubclass(option, JsonConfig):
                return option.from_dict(value)
    return value
