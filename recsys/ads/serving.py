"""Filling a served list's sponsored slots: who may bid, the auction, the page, and what is recorded.

One `AdServer` per service process (and one for the pages' previews). For a request of a scope
("search" or "recommendations") whose active preset names sponsored slots (`SponsoredSlots`):

1. `bidders`: the campaigns whose ads may be served now (active, started, budget left today and in
   total: `recsys.ads.campaigns.serving_campaigns`, read again from SQL every `refresh_s`), within
   their keyword targeting (a keyword, or phrase, among the query's words; search only: a campaign
   targeting keywords alone never shows in recommendations), under the preset's frequency cap (the
   unit's impressions of the campaign today, from SQL, so every process counts the same). The
   products they promote are what the engine then reads the relevance of, from the same candidate
   lists as the page (`recsys.fusion.relevance`);
2. `fill`: the eligible ads (in stock, relevance at or above the preset's floor, not on the page
   already, within category targeting: the request's category or the page's first product's is one
   of the campaign's) of the campaigns that take part after pacing (`recsys.ads.pacing`: a campaign
   spending ahead of a uniform plan for the day takes part in only a share of auctions, drawn from
   this server's random generator, and only when it has an eligible product), ranked and priced by
   the auction (`recsys.ads.auction`) with click-through predicted from the recorded impressions and
   clicks (`recsys.ads.ctr`, refitted every `ctr_refresh_s` on the last `ctr_window_days`; before
   any click is recorded every product gets `DEFAULT_CTR`, so ads rank by bid x relevance), put into
   the page at the preset's positions, and, with a request id, recorded as impressions (before the
   answer leaves, so a click that follows finds its ad).

Clicks are charged by `recsys.ads.campaigns.charge_click` from the events that name the request id
(`Service.take_events`). Nothing here stores or logs a customer's id: frequency caps count by the
service's pseudonymous unit.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd

from db import ads as store
from db.engine import session_scope
from recsys.ads import campaigns as campaign_store
from recsys.ads.auction import Candidate, Placement, SponsoredSlots, auction, eligible, place
from recsys.ads.campaigns import Campaign, Impression
from recsys.ads.ctr import CtrModel
from recsys.ads.pacing import affordable, pacing_rate, takes_part

logger = logging.getLogger(__name__)
DEFAULT_CTR = 0.02  # the predicted click-through of every ad before any click is recorded
_WORD = re.compile(r"[^\W_]+")


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def _words(text: str) -> str:
    return " " + " ".join(_WORD.findall(text.lower())) + " "


def targets_keywords(campaign: Campaign, words: str | None) -> bool:
    """Whether a query, as `_words` gives it (None: no query), holds one of the campaign's keywords
    (each a word or phrase, as whole words); True for a campaign without keywords."""
    if not campaign.keywords:
        return True
    return words is not None and any(_words(keyword) in words for keyword in campaign.keywords
                                     if keyword.strip())


@dataclass
class Bidders:
    """The campaigns that may bid in one request, and the products they promote (relevance is read
    for these)."""

    campaigns: list[Campaign]

    @property
    def products(self) -> list[str]:
        return list(dict.fromkeys(p for campaign in self.campaigns for p in campaign.products))


class AdServer:
    """See the module docstring. `rng`: the pacing draws (seed it for tests); `record`: store the
    impressions of the ads served (False for a preview)."""

    def __init__(self, url: str | None = None, *, refresh_s: float = 2.0, ctr_refresh_s: float = 600.0,
                 ctr_window_days: int = 30, rng: np.random.Generator | None = None):
        self.url = url
        self.refresh_s, self.ctr_refresh_s, self.ctr_window_days = refresh_s, ctr_refresh_s, ctr_window_days
        self.rng = rng or np.random.default_rng()
        self._lock = threading.Lock()
        self._campaigns: list[Campaign] = []
        self._read_at = -float("inf")
        self._ctr: CtrModel | None = None
        self._ctr_at = -float("inf")
        self._fitting = False

    # --- what SQL says, cached -----------------------------------------------------------------

    def campaigns(self) -> list[Campaign]:
        """The campaigns whose ads may be served now, as read at most `refresh_s` ago."""
        with self._lock:
            if time.monotonic() - self._read_at >= self.refresh_s:
                self._campaigns = campaign_store.serving_campaigns(url=self.url)
                self._read_at = time.monotonic()
            return self._campaigns

    def refresh(self) -> None:
        """Read the campaigns and refit the click-through at the next request (after a change)."""
        with self._lock:
            self._read_at = self._ctr_at = -float("inf")

    def ctr_model(self) -> CtrModel:
        """The click-through model, refitted in a thread of its own once `ctr_refresh_s` old (the
        requests meanwhile use the previous one); fitted here the first time."""
        with self._lock:
            stale = time.monotonic() - self._ctr_at >= self.ctr_refresh_s
            first = self._ctr is None
            start = stale and not self._fitting and not first
            if start:
                self._fitting = True
        if first:
            self._fit_ctr()
        elif start:
            threading.Thread(target=self._fit_ctr, name="ads-ctr", daemon=True).start()
        return self._ctr

    def _fit_ctr(self) -> None:
        since = _now() - timedelta(days=self.ctr_window_days)
        try:
            with session_scope(self.url) as session:
                log = store.impression_log(session, since)
            model = CtrModel().fit(pd.DataFrame(log, columns=["product_id", "position", "clicked"]))
        except Exception:  # a refit that fails keeps the previous model: ads go on being served
            logger.exception("could not refit the ads' click-through model; keeping the previous one")
            model = self._ctr or CtrModel().fit(pd.DataFrame(columns=["product_id", "position", "clicked"]))
        with self._lock:
            self._ctr, self._ctr_at, self._fitting = model, time.monotonic(), False

    def predicted_ctr(self, product_ids: Sequence[str]) -> np.ndarray:
        model = self.ctr_model()
        if model.prior_mean <= 0:  # no click recorded yet: every ad alike, ranked by bid x relevance
            return np.full(len(product_ids), DEFAULT_CTR)
        return model.predict(product_ids)

    # --- one request -----------------------------------------------------------------------------

    def bidders(self, scope: str, slots: SponsoredSlots, *, query: str | None = None,
                unit: str | None = None, now: datetime | None = None) -> Bidders:
        """The campaigns that may bid in a request of `scope` (see the module docstring), before
        relevance and pacing, which `fill` applies."""
        now = now or _now()
        words = None if query is None else _words(query)  # the query's words, once for every campaign
        found = [c for c in self.campaigns()
                 if (scope == "search" or not c.keywords or c.categories)
                 and (scope != "search" or targets_keywords(c, words))
                 and (c.ends_at is None or now < c.ends_at)
                 and affordable(c.max_cpc, c.spent_today, c.daily_budget, c.spent, c.total_budget)]
        if found and unit and slots.frequency_cap:
            day = datetime(now.year, now.month, now.day)
            with session_scope(self.url) as session:
                shown = store.shown_to(session, unit, day)
            found = [c for c in found if shown.get(c.campaign_id, 0) < slots.frequency_cap]
        return Bidders(found)

    def preview(self, scope: str, slots: SponsoredSlots, items: list[dict],
                relevance: Callable[[list[str]], np.ndarray], *, attributes: Mapping[str, Mapping],
                titles: Mapping[str, str], query: str | None = None,
                category: str | None = None) -> tuple[list[dict], list[Placement], dict[int, Campaign]]:
        """The page `items` would be served as, with ads, for the pages (the Search trial): not paced,
        no frequency cap, nothing recorded. `relevance(products)` reads their relevance to the request
        from the page's own candidate lists. Also the placements and the campaigns, by id."""
        bidders = self.bidders(scope, slots, query=query)
        if not bidders.campaigns:
            return items, [], {}
        products = bidders.products
        found = dict(zip(products, np.asarray(relevance(products), dtype=np.float64).tolist()))
        page, won = self.fill(items, bidders, found, slots, attributes=attributes, titles=titles,
                              category=category, paced=False)
        return page, won, {c.campaign_id: c for c in bidders.campaigns}

    def fill(self, items: list[dict], bidders: Bidders, relevance: Mapping[str, float], slots: SponsoredSlots,
             *, attributes: Mapping[str, Mapping], titles: Mapping[str, str], category: str | None = None,
             request_id: str | None = None, unit: str | None = None, paced: bool = True,
             now: datetime | None = None) -> tuple[list[dict], list[Placement]]:
        """The page: `items` (organic, best first) with the auction's winners among `bidders` at the
        slots' positions (see the module docstring), and the placements; recorded as impressions when
        `request_id` is given. Pacing draws only for the campaigns with an eligible product (`paced`
        False: none, for a preview)."""
        if not bidders.campaigns:
            return items, []
        first = attributes.get(items[0]["product_id"], {}).get("category") if items else None
        wanted = {str(c).strip().lower() for c in (category, first) if c is not None}
        on_page = {item["product_id"] for item in items}
        floor = slots.relevance_floor
        now = now or _now()
        elapsed = (now - datetime(now.year, now.month, now.day)).total_seconds() / 86400
        candidates = []
        for campaign in bidders.campaigns:
            if campaign.categories and not wanted & {c.strip().lower() for c in campaign.categories}:
                continue
            # Cheap checks first: most of a shop's promoted products are not relevant to one request.
            products = [product for product in campaign.products
                        if relevance.get(product, 0.0) >= floor and product not in on_page
                        and product in titles and attributes.get(product, {}).get("in_stock") is not False]
            if products and (not paced or takes_part(
                    pacing_rate(campaign.spent_today, campaign.daily_budget, elapsed), self.rng)):
                candidates += [(campaign, product) for product in products]
        if not candidates:
            return items, []
        products = list(dict.fromkeys(product for _, product in candidates))
        ctr = dict(zip(products, self.predicted_ctr(products).tolist()))
        bids = [Candidate(campaign.campaign_id, product, campaign.max_cpc,
                          float(relevance.get(product, 0.0)), ctr[product])
                for campaign, product in candidates]
        won = auction(eligible(bids, floor, exclude=on_page), slots)
        page = place(items, won)
        placements = {placement.product_id: placement for placement in won}
        shown = []
        for position, item in enumerate(page, 1):
            if item.get("sponsored"):
                placement = placements[item["product_id"]]
                item.update(title=titles.get(placement.product_id, ""), score=placement.relevance)
                shown.append(Impression(request_id or "", placement.campaign_id, placement.product_id,
                                        position, placement.price, unit))
        if request_id and shown:
            campaign_store.record_impressions(shown, url=self.url)
        return page, won
