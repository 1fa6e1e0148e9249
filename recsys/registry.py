"""Registries of components by name: recommenders, retrievers (and later fusers).

A component class registers itself with the `register` decorator of its
family's registry; pages, the CLI and the contract tests list and look up the
registered classes, so adding a component is one new file.

>>> family = Registry("widget")
>>> @family.register
... class Knob:
...     name = "knob"
>>> family.lookup("knob") is Knob, family.names()
(True, ['knob'])
"""

from __future__ import annotations


class Registry(dict):
    """{name: class} for one family of components."""

    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind

    def register(self, cls: type) -> type:
        """Class decorator: make `cls` available under `cls.name`."""
        if cls.name in self and self[cls.name] is not cls:
            raise ValueError(f"two {self.kind}s are named {cls.name!r}")
        self[cls.name] = cls
        return cls

    def lookup(self, name: str) -> type:
        """The class registered as `name`; a KeyError that lists the choices otherwise."""
        if name not in self:
            raise KeyError(f"unknown {self.kind} {name!r}; choose one of {', '.join(self.names())}")
        return self[name]

    def names(self) -> list[str]:
        return sorted(self)
