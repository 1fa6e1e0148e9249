"""SQL of sponsored products: campaigns, the ads served (impressions), clicks and spend per day.

Each function works inside the caller's session; `recsys.ads.campaigns` holds the rules. Charging a
click (`charge`) is the one place money moves: it runs in one transaction that inserts the click
first (its unique event id and impression make a replay or a second click fail there), then locks
the campaign's row, and moves spend with UPDATEs guarded by the budgets, so two clicks charged at
once, by threads or by service processes, on SQLite or PostgreSQL, never spend past a budget.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import date, datetime

from sqlalchemy import and_, case, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from db.models import AdCampaign, AdClick, AdImpression, AdSpendDay, Product, ServedList, utc_now
from db.queries import audit

# Money is kept in floats: a charge capped to what a budget has left may land a few ulps above it
# once added, so the guards allow this much (a billionth of the currency unit).
MONEY_TOLERANCE = 1e-9


def known_products(session: Session, catalog_version_id: int, product_ids: Iterable[str]) -> set[str]:
    """Those of `product_ids` that catalog version `catalog_version_id` holds."""
    wanted = list(dict.fromkeys(product_ids))
    found: set[str] = set()
    for start in range(0, len(wanted), 500):  # bounded IN lists
        found.update(session.scalars(select(Product.product_id).where(
            Product.dataset_version_id == catalog_version_id,
            Product.product_id.in_(wanted[start:start + 500]))))
    return found


# --- campaigns -----------------------------------------------------------------------------------

def add_campaign(session: Session, actor: str, **fields) -> AdCampaign:
    now = utc_now()
    row = AdCampaign(**fields, spent=0.0, status="active", created_by=actor, created_at=now, updated_at=now)
    session.add(row)
    session.flush()
    audit(session, actor, "ad_campaign_create", f"campaign {row.id} {row.name}", advertiser=row.advertiser,
          products=list(row.products), max_cpc=row.max_cpc, daily_budget=row.daily_budget,
          total_budget=row.total_budget)
    return row


def campaign(session: Session, campaign_id: int, lock: bool = False) -> AdCampaign | None:
    """The campaign, its row locked until the transaction ends when `lock` (PostgreSQL; a SQLite
    writer holds the whole database already). The lock is FOR NO KEY UPDATE: impressions inserted
    meanwhile (whose foreign key shares the row's key) do not wait for it."""
    query = select(AdCampaign).where(AdCampaign.id == campaign_id)
    return session.scalar(query.with_for_update(key_share=True) if lock else query)


def campaigns(session: Session, advertiser: str | None = None,
              ids: list[int] | None = None) -> list[AdCampaign]:
    """Every campaign (of `advertiser`, of `ids`, when given), newest first."""
    query = select(AdCampaign).order_by(AdCampaign.id.desc())
    if advertiser is not None:
        query = query.where(AdCampaign.advertiser == advertiser)
    if ids is not None:
        query = query.where(AdCampaign.id.in_(ids))
    return list(session.scalars(query))


def spent_on(session: Session, campaign_ids: list[int], day: date) -> dict[int, float]:
    """What each campaign spent on `day` (campaigns without spend that day are left out)."""
    if not campaign_ids:
        return {}
    return dict(session.execute(select(AdSpendDay.campaign_id, AdSpendDay.spent).where(
        AdSpendDay.campaign_id.in_(campaign_ids), AdSpendDay.day == day)).all())


def spend_days(session: Session, campaign_ids: list[int]) -> list[AdSpendDay]:
    """The campaigns' days with impressions or clicks, by campaign, oldest first."""
    if not campaign_ids:
        return []
    return list(session.scalars(select(AdSpendDay).where(AdSpendDay.campaign_id.in_(campaign_ids))
                                .order_by(AdSpendDay.campaign_id, AdSpendDay.day)))


# --- impressions and clicks ----------------------------------------------------------------------

def _insert(session: Session, model):
    """An INSERT of `model` that can say ON CONFLICT, in the session's dialect."""
    dialect = session.get_bind().dialect.name
    if dialect not in ("sqlite", "postgresql"):
        raise NotImplementedError(f"sponsored products keep spend on SQLite or PostgreSQL, not {dialect}")
    return (postgresql if dialect == "postgresql" else sqlite).insert(model)


def _ensure_day(session: Session, campaign_id: int, day: date, impressions: int = 0) -> None:
    """The campaign's row of `day` exists, with `impressions` more."""
    statement = _insert(session, AdSpendDay).values(campaign_id=campaign_id, day=day, spent=0.0, clicks=0,
                                                    impressions=impressions)
    excluded = statement.excluded
    session.execute(statement.on_conflict_do_update(
        index_elements=["campaign_id", "day"],
        set_={"impressions": AdSpendDay.impressions + excluded.impressions}) if impressions
        else statement.on_conflict_do_nothing(index_elements=["campaign_id", "day"]))


def insert_impressions(session: Session, rows: list[dict]) -> int:
    """Insert impressions (dicts keyed by `AdImpression` columns) and count them in their campaigns'
    days; an impression of a (request id, product) stored already is left out. How many were new."""
    requests = list({row["request_id"] for row in rows})
    stored = set(session.execute(select(AdImpression.request_id, AdImpression.product_id)
                                 .where(AdImpression.request_id.in_(requests))).all()) if requests else set()
    new, seen = [], set()
    for row in rows:
        key = (row["request_id"], row["product_id"])
        if key not in stored and key not in seen:
            seen.add(key)
            new.append(row)
    if new:
        session.execute(_insert(session, AdImpression), new)
    # Always in the same order, so that two writers of several campaigns never wait on each other.
    counts = Counter((row["campaign_id"], row["at"].date()) for row in new)
    for (campaign_id, day), count in sorted(counts.items()):
        _ensure_day(session, campaign_id, day, count)
    return len(new)


def impression(session: Session, request_id: str, product_id: str) -> AdImpression | None:
    return session.scalar(select(AdImpression).where(AdImpression.request_id == request_id,
                                                     AdImpression.product_id == product_id))


def request_known(session: Session, request_id: str) -> bool:
    """Whether the service answered `request_id` (with ads or without)."""
    return (session.scalar(select(AdImpression.id).where(AdImpression.request_id == request_id).limit(1))
            is not None or session.scalar(select(ServedList.id).where(ServedList.request_id == request_id))
            is not None)


def shown_to(session: Session, unit: str, since: datetime) -> dict[int, int]:
    """How many ads of each campaign `unit` (a session or user) was shown from `since` on: what a
    frequency cap counts."""
    rows = session.execute(select(AdImpression.campaign_id, func.count())
                           .where(AdImpression.unit == unit, AdImpression.at >= since)
                           .group_by(AdImpression.campaign_id)).all()
    return {campaign_id: count for campaign_id, count in rows}


def impression_log(session: Session, since: datetime) -> list[tuple[str, int, bool]]:
    """(product_id, position, clicked) of every ad shown from `since` on: what click-through is
    predicted from (`recsys.ads.ctr`)."""
    clicked = select(AdClick.impression_id).where(AdClick.at >= since)
    return [(product, position, bool(was_clicked)) for product, position, was_clicked in session.execute(
        select(AdImpression.product_id, AdImpression.position, AdImpression.id.in_(clicked))
        .where(AdImpression.at >= since))]


def click_of_event(session: Session, event_id: str) -> AdClick | None:
    return session.scalar(select(AdClick).where(AdClick.event_id == event_id))


def charge(session: Session, shown: AdImpression, event_id: str, at: datetime) -> float:
    """Record a click on `shown` and charge its price (at most the campaign's bid), capped by what
    the campaign's daily budget (on `at`'s day) and total budget have left; the amount.
    IntegrityError when the event id or the impression was clicked already (the caller's
    transaction is then rolled back: nothing is charged)."""
    click = AdClick(event_id=event_id, impression_id=shown.id, campaign_id=shown.campaign_id,
                    price_charged=0.0, at=at)
    session.add(click)
    session.flush()  # the unique keys decide here; on SQLite this write takes the database's lock
    row = campaign(session, shown.campaign_id, lock=True)  # clicks of one campaign are charged in turn
    day = at.date()
    _ensure_day(session, row.id, day)
    today = session.scalar(select(AdSpendDay.spent).where(AdSpendDay.campaign_id == row.id,
                                                          AdSpendDay.day == day))
    room = row.daily_budget - today
    if row.total_budget is not None:
        room = min(room, row.total_budget - row.spent)
    amount = min(shown.price, row.max_cpc, room)
    amount = amount if amount > MONEY_TOLERANCE else 0.0  # what floats leave of a spent budget is no money
    # The guards below hold the budgets even if the locks above were ever not what they seem.
    day_row = (update(AdSpendDay).where(AdSpendDay.campaign_id == row.id, AdSpendDay.day == day,
                                        AdSpendDay.spent + amount <= row.daily_budget + MONEY_TOLERANCE)
               .values(spent=AdSpendDay.spent + amount, clicks=AdSpendDay.clicks + 1))
    total_row = (update(AdCampaign).where(
        AdCampaign.id == row.id, or_(AdCampaign.total_budget.is_(None),
                                     AdCampaign.spent + amount <= AdCampaign.total_budget + MONEY_TOLERANCE))
                 .values(spent=AdCampaign.spent + amount, status=case(
                     (and_(AdCampaign.status == "active",
                           AdCampaign.spent + amount >= AdCampaign.total_budget - MONEY_TOLERANCE),
                      "out_of_budget"),
                     else_=AdCampaign.status))
                 .execution_options(synchronize_session=False))
    if session.execute(day_row).rowcount != 1 or session.execute(total_row).rowcount != 1:
        raise RuntimeError(f"campaign {row.id}: a budget guard refused a charge of {amount}; "
                           "nothing was charged")
    click.price_charged = amount
    spent_total = row.total_budget is not None and row.spent + amount >= row.total_budget - MONEY_TOLERANCE
    if spent_total and row.status == "active":  # the UPDATE above stored "out_of_budget"
        audit(session, "system", "ad_campaign_out_of_budget", f"campaign {row.id} {row.name}",
              total_budget=row.total_budget)
    return amount

