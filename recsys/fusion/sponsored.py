"""A preset's sponsored slots: where ads may go on a page of results, and the rules of their auction.

A preset (`recsys.fusion.FusionConfig`) may hold a ``sponsored`` dict; without one its pages carry
no ads. Its keys:

- ``positions``: the 1-based places on the page an ad may take, e.g. ``[1, 4]``; distinct, >= 1;
- ``max_ads``: at most this many ads a page (default: one per position; at most len(positions));
- ``relevance_floor``: in [0, 1], the least relevance to the request an ad's product must have
  (for search, the hybrid's fused score relative to the best result: `recsys.search.hybrid`);
- ``reserve_price``: >= 0, the least price of a click; a bid below it takes no part;
- ``frequency_cap``: a campaign's ads shown at most this many times a session (None: no cap).

It lives with the fusion config rather than with the auction (`recsys.ads.auction`, which uses it)
because preset validation (`recsys.fusion.presets.validated`) must check it, and the library's layers
put fusion below the ads.

>>> SponsoredSlots.from_preset({"sponsored": {"positions": [4, 1], "max_ads": 1}})
SponsoredSlots(positions=(1, 4), max_ads=1, relevance_floor=0.5, reserve_price=0.05, frequency_cap=None)
>>> SponsoredSlots.from_preset({"weights": {"bm25": 1.0}}) is None
True
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

SPONSORED_KEY = "sponsored"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class SponsoredSlots:
    """The sponsored slots of a preset; see the module docstring. Build one with `from_dict`."""

    positions: tuple[int, ...]
    max_ads: int
    relevance_floor: float = 0.5
    reserve_price: float = 0.05
    frequency_cap: int | None = None

    def __post_init__(self) -> None:
        positions = self.positions
        if (isinstance(positions, (str, bytes)) or not hasattr(positions, "__iter__")
                or not all(_is_whole(p) for p in positions)):
            raise ValueError(f"sponsored positions must be a list of whole numbers, not {positions!r}")
        if not positions:
            raise ValueError("sponsored positions is empty: name at least one place, e.g. [1, 4], "
                             "or remove the sponsored entry to show no ads")
        if any(p < 1 for p in positions):
            raise ValueError(f"sponsored positions count from 1 (the top of the page), not {list(positions)}")
        if len(set(positions)) != len(positions):
            raise ValueError(f"sponsored positions must be distinct, not {list(positions)}")
        object.__setattr__(self, "positions", tuple(sorted(positions)))
        if not _is_whole(self.max_ads) or not 1 <= self.max_ads <= len(positions):
            raise ValueError(f"sponsored max_ads must be a whole number from 1 to the number of positions "
                             f"({len(positions)}), not {self.max_ads!r}")
        if not _is_number(self.relevance_floor) or not 0 <= self.relevance_floor <= 1:
            raise ValueError(f"sponsored relevance_floor must be a number from 0 to 1, "
                             f"not {self.relevance_floor!r}")
        if not _is_number(self.reserve_price) or self.reserve_price < 0:
            raise ValueError(f"sponsored reserve_price must be a number of 0 or more, "
                             f"not {self.reserve_price!r}")
        if self.frequency_cap is not None and (not _is_whole(self.frequency_cap) or self.frequency_cap < 1):
            raise ValueError(f"sponsored frequency_cap must be a whole number of 1 or more (null: no cap), "
                             f"not {self.frequency_cap!r}")
        object.__setattr__(self, "relevance_floor", float(self.relevance_floor))
        object.__setattr__(self, "reserve_price", float(self.reserve_price))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SponsoredSlots:
        """Slots from a preset's ``sponsored`` dict; ValueError naming an unknown or bad key."""
        if not isinstance(data, Mapping):
            raise ValueError(f"sponsored must be a dict such as {{\"positions\": [1, 4]}}, not {data!r}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"sponsored has no key(s) {unknown}; it has {sorted(known)}")
        if "positions" not in data:
            raise ValueError("sponsored needs positions, the places on the page ads may take, e.g. [1, 4]")
        positions = data["positions"]
        positions = tuple(positions) if isinstance(positions, (list, tuple)) else positions
        count = len(positions) if isinstance(positions, tuple) else 0
        return cls(**{**data, "positions": positions, "max_ads": data.get("max_ads", count)})

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "positions": list(self.positions)}

    @classmethod
    def from_preset(cls, config: Any) -> SponsoredSlots | None:
        """The slots of a preset `config` (a FusionConfig or its dict); None when it shows no ads."""
        if isinstance(config, Mapping):
            entry = config.get(SPONSORED_KEY)
        else:
            entry = getattr(config, SPONSORED_KEY, None)
        return None if entry is None else cls.from_dict(entry)

    @property
    def slot_positions(self) -> tuple[int, ...]:
        """The positions an auction fills, best ad first: the first `max_ads` of `positions`."""
        return self.positions[:self.max_ads]


def check_sponsored(config: Any) -> None:
    """ValueError (its message starting "sponsored") unless a preset's sponsored entry, if any, is valid."""
    SponsoredSlots.from_preset(config)
