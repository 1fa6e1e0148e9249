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
        return cls(**data)

    @classmethod
    def resolve(cls, config: JsonConfig | dict | None = None, **params) -> Self:
        """A config from an instance, a dict or nothing (defaults), with `params` on top."""
        if isinstance(config, dict):
            config = cls.from_dict(config)
        config = config or cls()
        return cls.from_dict({**config.to_dict(), **params}) if params else config
