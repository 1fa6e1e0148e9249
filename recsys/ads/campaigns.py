"""Sponsored-products campaigns, the ads served and the clicks charged, by database URL.

What the Ads page, the CLI and the REST service call. A function done for someone takes their
`Identity` and checks, on every call, that they may: operators and admins (permission "ads") manage
every advertiser's campaigns, an account of role advertiser ("advertise") only those of the
advertiser it acts for (`Identity.advertiser`); anything else is `NotYourCampaign`. Every change is
audited. A wrong field is a `CampaignError` that names it.

Budgets. Spend is kept in SQL and moved only by `charge_click`, in one transaction guarded by the
budgets (`db.ads.charge`), so that no campaign spends past its daily budget (per UTC day) or its
total budget, whatever number of threads and service processes charge clicks at once. A click is
charged the price the auction set for its impression (never above the campaign's current bid),
capped by what the budgets have left. A campaign whose spend today reached its daily budget shows
as "out_of_budget" until the next UTC day, when it is active again by itself (nothing is stored);
one whose total spend reached its total budget is stored as "out_of_budget" until the total budget
is raised. A campaign is "ended" from its `ends_at` on, or once ended by hand (for good).

>>> status_of("active", datetime(2026, 1, 2), spent=5.0, total_budget=5.0, spent_today=1.0,
...           daily_budget=2.0, now=datetime(2026, 1, 1))
'out_of_budget'
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from datetime import date, datetime, timezone

from sqlalchemy.exc import IntegrityError

from db import ads as store
from db import queries
from db.engine import session_scope
from db.models import AdCampaign, utc_now
from recsys.accounts import MAX_ADVERTISER_LENGTH, Identity

MAX_NAME = 128
MAX_ID = 128  # characters of a product id, a keyword, a category or an event id
MAX_REQUEST_ID = 64
MAX_TERMS = 1000  # products, keywords or categories of one campaign
EDITABLE = ("name", "products", "max_cpc", "daily_budget", "total_budget", "starts_at", "ends_at", "keywords",
            "categories")
CLICK_OUTCOMES = ("charged", "capped", "budget_exhausted", "replayed", "already_clicked", "unknown_request",
                  "not_an_ad")


class CampaignError(ValueError):
    """A campaign's field is wrong; the message names the field and what is expected."""


class NotYourCampaign(PermissionError):
    """The identity may not manage this campaign (another advertiser's), or no campaign at all."""


@dataclass(frozen=True)
class Campaign:
    """A campaign as it stands now: its status computed (`status_of`), with its spend."""

    campaign_id: int
    advertiser: str
    name: str
    products: list[str]
    max_cpc: float
    daily_budget: float
    total_budget: float | None
    starts_at: datetime
    ends_at: datetime | None
    keywords: list[str]
    categories: list[str]
    status: str  # active, paused, ended or out_of_budget
    started: bool  # `starts_at` has come
    spent: float  # in total
    spent_today: float  # this UTC day
    created_by: str
    created_at: datetime
    updated_at: datetime

    @property
    def automatic_targeting(self) -> bool:
        """No keywords and no categories: shown where its products are relevant to the request."""
        return not self.keywords and not self.categories

    @property
    def eligible(self) -> bool:
        """Whether its ads may be served now: active (with budget left today) and started."""
        return self.status == "active" and self.started

    def to_dict(self) -> dict:
        return {**asdict(self), "automatic_targeting": self.automatic_targeting, "eligible": self.eligible}


@dataclass(frozen=True)
class Spend:
    """A campaign's spend against its budgets, on `day` (UTC): what serving skips and paces by."""

    campaign_id: int
    day: date
    spent_today: float
    daily_budget: float
    total_spent: float
    total_budget: float | None

    @property
    def left_today(self) -> float:
        """What the campaign may still spend today (0 when a budget is spent)."""
        left = self.daily_budget - self.spent_today
        if self.total_budget is not None:
            left = min(left, self.total_budget - self.total_spent)
        return max(0.0, left)


@dataclass(frozen=True)
class Impression:
    """An ad served: a campaign's product at `position` (1-based) of the list answering `request_id`.

    `price`: the cost per click the auction set (charged only on a click); `unit`: the service's
    pseudonymous unit ("session:S" or "user:<pseudonym>"), never a customer's raw id."""

    request_id: str
    campaign_id: int
    product_id: str
    position: int
    price: float
    unit: str | None = None
    at: datetime | None = None  # default: when it is recorded


@dataclass(frozen=True)
class ClickCharge:
    """What a click on an ad was charged, and why (`CLICK_OUTCOMES`): "charged" its price,
    "capped" at what a budget had left, "budget_exhausted" nothing (a budget is spent), or nothing
    because it is a "replayed" event id, an "already_clicked" impression, an "unknown_request" or
    "not_an_ad" (the request showed no ad of that product)."""

    outcome: str
    charged: float = 0.0
    campaign_id: int | None = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class CampaignReport:
    campaign_id: int
    advertiser: str
    name: str
    status: str
    impressions: int
    clicks: int
    click_through: float | None  # clicks per impression
    spend: float
    cost_per_click: float | None
    spent_today: float
    daily_budget: float
    daily_budget_used: float  # share of today's budget spent
    total_budget: float | None
    total_budget_used: float | None  # share of the total budget spent


@dataclass(frozen=True)
class ReportDay:
    campaign_id: int
    day: date
    impressions: int
    clicks: int
    spend: float


@dataclass(frozen=True)
class AdsReport:
    """Per campaign, the totals; per campaign and UTC day, the series to chart."""

    campaigns: list[CampaignReport]
    days: list[ReportDay]

    def to_dict(self) -> dict:
        return {"campaigns": [asdict(row) for row in self.campaigns],
                "days": [asdict(row) for row in self.days]}


# --- who may do what ------------------------------------------------------------------------------

def _own_advertiser(who: Identity) -> str | None:
    """None when `who` manages every advertiser's campaigns, else the one advertiser they act for."""
    if who.can("ads"):
        return None
    if who.can("advertise") and who.advertiser:
        return who.advertiser
    raise NotYourCampaign(f"{who.username} ({who.role}) may not manage sponsored-products campaigns")


def _check_owner(who: Identity, advertiser: str, what: str) -> None:
    own = _own_advertiser(who)
    if own is not None and advertiser != own:
        raise NotYourCampaign(f"{what} is not one of {own}'s campaigns: {who.username} manages only those")


def _owned(session, who: Identity, campaign_id: int, lock: bool = False) -> AdCampaign:
    _own_advertiser(who)  # someone who may manage no campaign learns nothing of this one
    row = store.campaign(session, campaign_id, lock=lock)
    if row is None:
        raise LookupError(f"there is no campaign {campaign_id}")
    _check_owner(who, row.advertiser, f"campaign {campaign_id}")
    return row


# --- checking fields --------------------------------------------------------------------------------

def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo is None else moment.astimezone(timezone.utc).replace(tzinfo=None)


def _text(field: str, value, longest: int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise CampaignError(f"{field}: is empty; give it a name")
    if len(value.strip()) > longest:
        raise CampaignError(f"{field}: has {len(value.strip())} characters, at most {longest} are kept")
    return value.strip()


def _money(field: str, value, required: bool = True) -> float | None:
    if value is None:
        if required:
            raise CampaignError(f"{field}: is required")
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise CampaignError(f"{field}: must be a number, not {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise CampaignError(f"{field}: must be a finite amount above 0, not {value}")
    return float(value)


def _moment(field: str, value) -> datetime | None:
    """A naive UTC datetime of a datetime or an ISO 8601 text (naive ones are read as UTC)."""
    if value is None or isinstance(value, datetime):
        return None if value is None else _utc(value)
    try:
        return _utc(datetime.fromisoformat(str(value).strip()))
    except ValueError:
        raise CampaignError(f"{field}: {value!r} is not a date and time like 2026-12-01 or "
                            "2026-12-01T08:00:00+00:00") from None


def _terms(field: str, values) -> list[str]:
    """Distinct non-blank strings, in their order."""
    if isinstance(values, str) or not isinstance(values, (list, tuple)):
        raise CampaignError(f"{field}: must be a list of strings, not {values!r}")
    kept = []
    for value in values:
        if not isinstance(value, str) or not value.strip():
            raise CampaignError(f"{field}: {value!r} is blank or not a string")
        if len(value.strip()) > MAX_ID:
            raise CampaignError(f"{field}: {value[:40]!r}... is longer than {MAX_ID} characters")
        kept.append(value.strip())
    kept = list(dict.fromkeys(kept))
    if len(kept) > MAX_TERMS:
        raise CampaignError(f"{field}: {len(kept):,} of them; a campaign has at most {MAX_TERMS:,}")
    return kept


def _fields(values: dict) -> dict:
    """The editable fields, each checked; CampaignError naming the first wrong one."""
    checked = {"name": _text("name", values.get("name"), MAX_NAME),
               "products": _terms("products", values.get("products")),
               "max_cpc": _money("max_cpc", values.get("max_cpc")),
               "daily_budget": _money("daily_budget", values.get("daily_budget")),
               "total_budget": _money("total_budget", values.get("total_budget"), required=False),
               "starts_at": _moment("starts_at", values.get("starts_at")),
               "ends_at": _moment("ends_at", values.get("ends_at")),
               "keywords": _terms("keywords", values.get("keywords", [])),
               "categories": _terms("categories", values.get("categories", []))}
    if not checked["products"]:
        raise CampaignError("products: a campaign promotes at least one product of the catalog")
    daily, total = checked["daily_budget"], checked["total_budget"]
    if total is not None and total < daily:
        raise CampaignError(f"total_budget: {total} is less than the daily budget {daily}; raise it, "
                            "or lower daily_budget")
    if checked["max_cpc"] > daily:
        raise CampaignError(f"max_cpc: {checked['max_cpc']} is above the daily budget {daily}, so no click "
                            "could be paid in full; lower it, or raise daily_budget")
    if checked["starts_at"] is None:
        raise CampaignError("starts_at: is required")
    if checked["ends_at"] is not None and checked["ends_at"] <= checked["starts_at"]:
        raise CampaignError(f"ends_at: {checked['ends_at']:%Y-%m-%d %H:%M} is not after starts_at "
                            f"{checked['starts_at']:%Y-%m-%d %H:%M}")
    return checked


def _check_products(session, products: list[str]) -> None:
    catalog = queries.active_version(session, "catalog")
    if catalog is None:
        raise CampaignError("products: no catalog is active, so no product can be promoted; upload one first")
    known = store.known_products(session, catalog.id, products)
    unknown = [product for product in products if product not in known]
    if unknown:
        more = f" and {len(unknown) - 10} more" if len(unknown) > 10 else ""
        raise CampaignError(f"products: {', '.join(map(repr, unknown[:10]))}{more} not in the active catalog "
                            f"(v{catalog.id}); check the ids on the Data page")


# --- status ----------------------------------------------------------------------------------------

def status_of(stored: str, ends_at: datetime | None, *, spent: float, total_budget: float | None,
              spent_today: float, daily_budget: float, now: datetime) -> str:
    """The status shown: paused or ended as stored; ended from `ends_at` on; out_of_budget when the
    total or today's budget is spent; otherwise active."""
    if stored in ("paused", "ended"):
        return stored
    if ends_at is not None and now >= ends_at:
        return "ended"
    tolerance = store.MONEY_TOLERANCE
    if total_budget is not None and spent >= total_budget - tolerance:
        return "out_of_budget"
    if spent_today >= daily_budget - tolerance:
        return "out_of_budget"
    return "active"


def _total_spent(row: AdCampaign) -> bool:
    return row.total_budget is not None and row.spent >= row.total_budget - store.MONEY_TOLERANCE


def _campaign(row: AdCampaign, spent_today: float, now: datetime) -> Campaign:
    return Campaign(row.id, row.advertiser, row.name, list(row.products), row.max_cpc, row.daily_budget,
                    row.total_budget, row.starts_at, row.ends_at, list(row.keywords), list(row.categories),
                    status_of(row.status, row.ends_at, spent=row.spent, total_budget=row.total_budget,
                              spent_today=spent_today, daily_budget=row.daily_budget, now=now),
                    row.starts_at <= now, row.spent, spent_today, row.created_by, row.created_at,
                    row.updated_at)


def _campaigns(session, rows: list[AdCampaign], now: datetime) -> list[Campaign]:
    today = store.spent_on(session, [row.id for row in rows], now.date())
    return [_campaign(row, today.get(row.id, 0.0), now) for row in rows]


def _now(now: datetime | None) -> datetime:
    return utc_now() if now is None else _utc(now)


# --- managing campaigns ----------------------------------------------------------------------------

def create_campaign(who: Identity, *, name: str, products: list[str], max_cpc: float, daily_budget: float,
                    advertiser: str | None = None, total_budget: float | None = None,
                    starts_at: datetime | str | None = None, ends_at: datetime | str | None = None,
                    keywords: list[str] = (), categories: list[str] = (), url: str | None = None) -> Campaign:
    """A new active campaign of `advertiser` (an advertiser's account: its own, the default) promoting
    `products` of the active catalog; no keywords and no categories: automatic targeting by relevance.
    Starts now unless `starts_at` says otherwise."""
    own = _own_advertiser(who)
    advertiser = _text("advertiser", advertiser if advertiser is not None else own, MAX_ADVERTISER_LENGTH)
    _check_owner(who, advertiser, f"a campaign of {advertiser}")
    fields = _fields({"name": name, "products": products, "max_cpc": max_cpc, "daily_budget": daily_budget,
                      "total_budget": total_budget, "ends_at": ends_at, "keywords": keywords,
                      "categories": categories, "starts_at": utc_now() if starts_at is None else starts_at})
    with session_scope(url) as session:
        _check_products(session, fields["products"])
        row = store.add_campaign(session, who.username, advertiser=advertiser, **fields)
        return _campaign(row, 0.0, utc_now())


def list_campaigns(who: Identity, advertiser: str | None = None, *, url: str | None = None,
                   now: datetime | None = None) -> list[Campaign]:
    """The campaigns `who` may see (of `advertiser`, when given), newest first."""
    own = _own_advertiser(who)
    if advertiser is not None:
        _check_owner(who, advertiser, f"a campaign of {advertiser}")
    with session_scope(url) as session:
        return _campaigns(session, store.campaigns(session, advertiser or own), _now(now))


def get_campaign(who: Identity, campaign_id: int, *, url: str | None = None,
                 now: datetime | None = None) -> Campaign:
    with session_scope(url) as session:
        return _campaigns(session, [_owned(session, who, campaign_id)], _now(now))[0]


def _as_json(value):
    return value.isoformat() if isinstance(value, datetime) else value


def update_campaign(who: Identity, campaign_id: int, changes: dict, *, url: str | None = None) -> Campaign:
    """Change a campaign's `EDITABLE` fields (e.g. {"max_cpc": 0.5, "total_budget": None}); the
    whole campaign is checked again, and what changed is audited with its old and new values."""
    unknown = sorted(set(changes) - set(EDITABLE))
    if unknown:
        raise CampaignError(f"{', '.join(unknown)}: not a field that can be changed; change "
                            f"{', '.join(EDITABLE)}")
    with session_scope(url) as session:
        row = _owned(session, who, campaign_id, lock=True)
        before = {field: getattr(row, field) for field in EDITABLE}
        fields = _fields({**before, **changes})
        changed = {field: [_as_json(before[field]), _as_json(value)] for field, value in fields.items()
                   if value != before[field]}
        if "products" in changed:
            _check_products(session, fields["products"])
        for field, value in fields.items():
            setattr(row, field, value)
        if row.status in ("active", "out_of_budget"):  # a raised (or lowered) total budget
            row.status = "out_of_budget" if _total_spent(row) else "active"
        row.updated_at = utc_now()
        queries.audit(session, who.username, "ad_campaign_update", f"campaign {row.id} {row.name}",
                      advertiser=row.advertiser, changes=changed)
        return _campaigns(session, [row], utc_now())[0]


def _set_status(who: Identity, campaign_id: int, action: str, url: str | None) -> Campaign:
    now = utc_now()
    with session_scope(url) as session:
        row = _owned(session, who, campaign_id, lock=True)
        shown = _campaigns(session, [row], now)[0].status
        if row.status == "ended" or (shown == "ended" and action != "end"):
            hint = ("" if row.status == "ended"
                    else f" ({row.ends_at:%Y-%m-%d %H:%M} UTC): set a later ends_at first")
            raise CampaignError(f"status: campaign {campaign_id} has ended{hint}")
        if action == "pause":
            if row.status == "paused":
                raise CampaignError(f"status: campaign {campaign_id} is paused already")
            row.status = "paused"
        elif action == "resume":
            if row.status != "paused":
                raise CampaignError(f"status: campaign {campaign_id} is not paused, it is {shown}")
            row.status = "out_of_budget" if _total_spent(row) else "active"
        else:
            row.status = "ended"
        row.updated_at = now
        queries.audit(session, who.username, f"ad_campaign_{action}", f"campaign {row.id} {row.name}",
                      advertiser=row.advertiser)
        return _campaigns(session, [row], now)[0]


def pause_campaign(who: Identity, campaign_id: int, *, url: str | None = None) -> Campaign:
    """Stop serving the campaign's ads until it is resumed."""
    return _set_status(who, campaign_id, "pause", url)


def resume_campaign(who: Identity, campaign_id: int, *, url: str | None = None) -> Campaign:
    """Serve a paused campaign's ads again (unless its total budget is spent: then raise it)."""
    return _set_status(who, campaign_id, "resume", url)


def end_campaign(who: Identity, campaign_id: int, *, url: str | None = None) -> Campaign:
    """End the campaign for good: its ads are never served again."""
    return _set_status(who, campaign_id, "end", url)


# --- what serving calls ----------------------------------------------------------------------------

def serving_campaigns(*, url: str | None = None, now: datetime | None = None) -> list[Campaign]:
    """Every campaign whose ads may be served now (`Campaign.eligible`), of every advertiser."""
    moment = _now(now)
    with session_scope(url) as session:
        return [found for found in _campaigns(session, store.campaigns(session), moment) if found.eligible]


def spend_today(campaign_ids: list[int], *, url: str | None = None,
                now: datetime | None = None) -> dict[int, Spend]:
    """Each campaign's spend today (UTC) and in total against its budgets; unknown ids are left out."""
    moment = _now(now)
    with session_scope(url) as session:
        rows = store.campaigns(session, ids=list(campaign_ids))
        today = store.spent_on(session, [row.id for row in rows], moment.date())
        return {row.id: Spend(row.id, moment.date(), today.get(row.id, 0.0), row.daily_budget, row.spent,
                              row.total_budget) for row in rows}


def record_impressions(impressions: list[Impression], *, url: str | None = None) -> int:
    """Store the ads served (in one transaction) and count them in their campaigns' days; an ad of a
    request stored already is left out. How many were new. ValueError naming a bad one."""
    rows, now = [], utc_now()
    for number, shown in enumerate(impressions, start=1):
        where = f"impression {number} ({shown.request_id!r}, {shown.product_id!r})"
        if not shown.request_id or len(shown.request_id) > MAX_REQUEST_ID:
            raise ValueError(f"{where}: request_id must have 1 to {MAX_REQUEST_ID} characters")
        if not shown.product_id or len(shown.product_id) > MAX_ID:
            raise ValueError(f"{where}: product_id must have 1 to {MAX_ID} characters")
        if isinstance(shown.position, bool) or not isinstance(shown.position, int) or shown.position < 1:
            raise ValueError(f"{where}: position counts from 1, not {shown.position!r}")
        if not isinstance(shown.price, (int, float)) or not math.isfinite(shown.price) or shown.price < 0:
            raise ValueError(f"{where}: price must be a finite amount of 0 or more, not {shown.price!r}")
        rows.append({**asdict(shown), "price": float(shown.price),
                     "at": now if shown.at is None else _utc(shown.at)})
    if not rows:
        return 0
    with session_scope(url) as session:
        return store.insert_impressions(session, rows)


def charge_click(event_id: str, request_id: str, product_id: str, at: datetime | None = None, *,
                 url: str | None = None) -> ClickCharge:
    """Charge a click on the ad of `product_id` served in the list of `request_id` (`at`: when, by
    the server's clock; its UTC day is the budget's day). Idempotent: a replayed `event_id`, or a
    second click on the same ad, charges nothing. See the module's note on budgets."""
    for field, value, longest in (("event_id", event_id, MAX_ID), ("request_id", request_id, MAX_REQUEST_ID),
                                  ("product_id", product_id, MAX_ID)):
        if not isinstance(value, str) or not value.strip() or len(value) > longest:
            raise ValueError(f"{field}: must be a string of 1 to {longest} characters, not {value!r}")
    moment = _now(at)
    with session_scope(url) as session:
        earlier = store.click_of_event(session, event_id)
        if earlier is not None:
            return ClickCharge("replayed", 0.0, earlier.campaign_id)
        shown = store.impression(session, request_id, product_id)
        if shown is None:
            return ClickCharge("not_an_ad" if store.request_known(session, request_id) else "unknown_request")
    try:
        with session_scope(url) as session:
            amount = store.charge(session, shown, event_id, moment)
    except IntegrityError:  # the same event or impression, charged by another thread or process just now
        with session_scope(url) as session:
            earlier = store.click_of_event(session, event_id)
        return ClickCharge("replayed" if earlier is not None else "already_clicked", 0.0, shown.campaign_id)
    if amount <= 0:
        return ClickCharge("budget_exhausted", 0.0, shown.campaign_id)
    outcome = "capped" if amount < shown.price - store.MONEY_TOLERANCE else "charged"
    return ClickCharge(outcome, amount, shown.campaign_id)


# --- reports ---------------------------------------------------------------------------------------

def report(who: Identity, campaign_id: int | None = None, *, url: str | None = None,
           now: datetime | None = None) -> AdsReport:
    """Impressions, clicks, click-through, spend, cost per click and budget use of each campaign `who`
    may see (or of `campaign_id`), and the same per UTC day, for charts."""
    moment = _now(now)
    with session_scope(url) as session:
        if campaign_id is None:
            rows = store.campaigns(session, _own_advertiser(who))
        else:
            rows = [_owned(session, who, campaign_id)]
        found = _campaigns(session, rows, moment)
        days = [ReportDay(day.campaign_id, day.day, day.impressions, day.clicks, day.spent)
                for day in store.spend_days(session, [row.id for row in rows])]
    totals = {campaign.campaign_id: [0, 0, 0.0] for campaign in found}
    for day in days:
        total = totals[day.campaign_id]
        total[0], total[1], total[2] = total[0] + day.impressions, total[1] + day.clicks, total[2] + day.spend
    reports = []
    for campaign in found:
        impressions, clicks, spend = totals[campaign.campaign_id]
        reports.append(CampaignReport(
            campaign.campaign_id, campaign.advertiser, campaign.name, campaign.status, impressions, clicks,
            clicks / impressions if impressions else None, spend, spend / clicks if clicks else None,
            campaign.spent_today, campaign.daily_budget, campaign.spent_today / campaign.daily_budget,
            campaign.total_budget,
            None if campaign.total_budget is None else campaign.spent / campaign.total_budget))
    return AdsReport(reports, days)
