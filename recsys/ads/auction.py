"""The sponsored-products auction: which eligible ads take a page's slots, at what price, and where.

What it computes, for one request (a search or a recommendation page):

1. `eligible`: the candidates whose product is relevant enough to the request (relevance at or
   above the preset's floor; relevance in [0, 1] comes from the same engine that ranks the page)
   and not already among the page's organic results;
2. `auction`: candidates ranked by ``bid x ctr x relevance`` (the expected value of showing the ad,
   weighted towards relevant products), one ad per product (its best campaign), the first
   ``max_ads`` winning the slots in order; a campaign bidding under the reserve price takes no part.
   Each winner pays per click a generalized second price (Edelman, Ostrovsky and Schwarz, "Internet
   advertising and the generalized second-price auction", AER 2007; with quality scores as in
   Varian, "Position auctions", 2007): the least bid that keeps its rank,
   ``rank_score(next) / (ctr x relevance)``, where "next" is the best of the candidate ranked just
   below it (the first loser included) and another campaign's bid on the same product; never above
   its own bid, never below the reserve;
3. `place`: the winners put into the organic list at their positions, each marked
   ``"sponsored": True`` with its campaign id; organic items are only moved down, never dropped.

Ties in the rank score go to the smaller campaign id, so the outcome never depends on input order.

>>> slots = SponsoredSlots.from_dict({"positions": [1, 3], "reserve_price": 0.1})
>>> ads = [Candidate(1, "drill", bid=2.0, relevance=0.9, ctr=0.05),
...        Candidate(2, "saw", bid=1.0, relevance=0.8, ctr=0.05),
...        Candidate(3, "hammer", bid=1.0, relevance=0.5, ctr=0.04)]
>>> won = auction(eligible(ads, slots.relevance_floor), slots)
>>> [(p.campaign_id, p.position, round(p.price, 4)) for p in won]
[(1, 1, 0.8889), (2, 3, 0.5)]
>>> [item.get("campaign_id") for item in place([{"product_id": "a"}, {"product_id": "b"}], won)]
[1, None, 2, None]
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from recsys.fusion.sponsored import SponsoredSlots, check_sponsored

__all__ = ["Candidate", "Placement", "SponsoredSlots", "auction", "check_sponsored", "eligible", "place"]


def _check_share(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ValueError(f"an ad's {name} must be a number from 0 to 1, not {value!r}")


@dataclass(frozen=True)
class Candidate:
    """A campaign's bid to show one of its products for one request.

    `bid`: the most the campaign pays for a click (> 0); `relevance`: of the product to the request,
    in [0, 1]; `ctr`: its predicted click-through at the top of the page (`recsys.ads.ctr`), in [0, 1].
    `campaign_id` values must be comparable with each other (they break ties).
    """

    campaign_id: int | str
    product_id: str
    bid: float
    relevance: float
    ctr: float

    def __post_init__(self) -> None:
        if isinstance(self.bid, bool) or not isinstance(self.bid, (int, float)) or not self.bid > 0:
            raise ValueError(f"campaign {self.campaign_id}: a bid must be a number above 0, not {self.bid!r}")
        _check_share("relevance", self.relevance)
        _check_share("predicted click-through", self.ctr)

    @property
    def rank_score(self) -> float:
        """bid x ctr x relevance: what the auction ranks by."""
        return self.bid * self.ctr * self.relevance


@dataclass(frozen=True)
class Placement:
    """An ad that won a slot: where it goes (1-based `position` on the page) and its price per click."""

    campaign_id: int | str
    product_id: str
    position: int
    price: float
    rank_score: float
    relevance: float
    ctr: float


def eligible(candidates: Sequence[Candidate], floor: float,
             exclude: Collection[str] = ()) -> list[Candidate]:
    """The candidates whose relevance is at least `floor` and whose product is not in `exclude`
    (e.g. the products already on the page, which an ad would show twice)."""
    _check_share("relevance floor", floor)
    return [candidate for candidate in candidates
            if candidate.relevance >= floor and candidate.product_id not in exclude]


def auction(candidates: Sequence[Candidate], slots: SponsoredSlots) -> list[Placement]:
    """The winners of `candidates` (already `eligible`) for `slots`, best first; see the module docstring.

    Candidates bidding under `slots.reserve_price`, or with a rank score of 0 (no relevance or no
    predicted click), take no part.
    """
    reserve = slots.reserve_price
    bidding = sorted((c for c in candidates if c.bid >= reserve and c.rank_score > 0),
                     key=lambda c: (-c.rank_score, c.campaign_id))
    ranking: list[Candidate] = []  # each product's best campaign, best first
    rival: dict[str, float] = {}  # product: the rank score of its second-best campaign
    taken: set[str] = set()
    for candidate in bidding:
        if candidate.product_id not in taken:
            taken.add(candidate.product_id)
            ranking.append(candidate)
        else:
            rival.setdefault(candidate.product_id, candidate.rank_score)
    placements = []
    for rank, (winner, position) in enumerate(zip(ranking, slots.slot_positions)):
        following = ranking[rank + 1].rank_score if rank + 1 < len(ranking) else 0.0
        keeping = max(following, rival.get(winner.product_id, 0.0)) / (winner.ctr * winner.relevance)
        price = min(winner.bid, max(reserve, keeping))
        placements.append(Placement(winner.campaign_id, winner.product_id, position, price,
                                    winner.rank_score, winner.relevance, winner.ctr))
    return placements


def place(organic: Sequence[Mapping], placements: Sequence[Placement]) -> list[dict]:
    """The page: `organic` items (dicts, best first, left as they are) with each placement's ad,
    ``{"product_id", "sponsored": True, "campaign_id"}``, inserted at its position. Organic items are
    never dropped, only moved down; an ad whose position is past the end of the page goes last."""
    page = [item if isinstance(item, dict) else dict(item) for item in organic]
    for placement in sorted(placements, key=lambda p: p.position):
        ad = {"product_id": placement.product_id, "sponsored": True, "campaign_id": placement.campaign_id}
        page.insert(min(placement.position - 1, len(page)), ad)
    return page
