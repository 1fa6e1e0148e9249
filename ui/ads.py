"""Widgets of the Ads page: sponsored-products campaigns, their status, their edits and their reports.

Everything goes through `recsys.ads.campaigns`, which checks on every call that the logged-in identity
may manage the campaign (operators and admins: every advertiser's; an advertiser's account: its own)
and audits each change; the page offers an advertiser's account only its own campaigns, but the
library is what refuses the others. Dates are UTC days: a campaign starts at the start of its first
day (now, when that is today) and ends at the end of its last day.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone

import pandas as pd
import streamlit as st

from recsys.accounts import Identity
from recsys.ads import campaigns as ads
from recsys.ads.quality import MAX_QUERIES
from recsys.ads.quality import organic_cost as measure_cost
from recsys.fusion.sponsored import SponsoredSlots
from ui import charts, engines
from ui.text import md

FLASH = "ads_flash"
CHOSEN, CHOSEN_NEXT = "ads_chosen", "ads_chosen_next"  # the campaign shown; the one to show after a rerun
FIELD_LABELS = {"advertiser": "Advertiser", "name": "Name", "products": "Products",
                "max_cpc": "Max cost per click", "daily_budget": "Daily budget",
                "total_budget": "Total budget",
                "starts_at": "First day", "ends_at": "Last day", "keywords": "Keywords",
                "categories": "Categories", "status": "Status"}
PRODUCTS_SHOWN = 10  # of a campaign, named above its report
NOTHING_SERVED = ("No ads served yet: they appear in search and recommendations when a preset names "
                  "sponsored slots.")


def flash() -> None:
    """The message of the last action, once, after the rerun it caused."""
    kind, text = st.session_state.pop(FLASH, (None, ""))
    if kind:
        getattr(st, kind)(text)


def _done(text: str, chosen: int) -> None:
    """Keep a message (and the campaign to show) for the next run, then run the page again so that the
    table above shows the change."""
    st.session_state[FLASH] = ("success", text)
    st.session_state[CHOSEN_NEXT] = chosen
    st.rerun()


def _refused(what: str, error: Exception) -> None:
    """The library's refusal, its field named as the form labels it ("Max cost per click (max_cpc): ...")."""
    field, _, rest = str(error).partition(": ")
    text = f"{FIELD_LABELS[field]} ({field}): {rest}" if field in FIELD_LABELS and rest else str(error)
    st.error(f"{what}: {md(text)}")


def _amount(value: float | None) -> str:
    return "—" if value is None else f"{value:,.2f}"


def _share(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


def _today() -> date:
    return datetime.now(timezone.utc).date()


def _terms(text: str) -> list[str]:
    """The comma-separated terms of a text field, blanks left out."""
    return [term.strip() for term in text.split(",") if term.strip()]


def _start(day: date | None) -> datetime | None:
    """A campaign's `starts_at` from its first day: now (None) when that is today or unset."""
    return None if day is None or day <= _today() else datetime.combine(day, time())


def _end(day: date | None) -> datetime | None:
    """A campaign's `ends_at` from its last day: the start of the next one."""
    return None if day is None else datetime.combine(day + timedelta(days=1), time())


def _last_day(ends_at: datetime | None) -> date | None:
    return None if ends_at is None else (ends_at - timedelta(microseconds=1)).date()


def targeting(campaign: ads.Campaign) -> str:
    """What decides where its ads are shown: "keywords: mug, cup; categories: kitchen", or automatic."""
    if campaign.automatic_targeting:
        return "automatic by relevance"
    named = (("keywords", campaign.keywords), ("categories", campaign.categories))
    parts = [f"{label}: {', '.join(terms)}" for label, terms in named if terms]
    return "; ".join(parts)


# --- the list and the choice -------------------------------------------------------------------------

def campaigns_table(campaigns: list[ads.Campaign]) -> None:
    """Every campaign shown, newest first (plain cells: nothing in them is read as Markdown)."""
    table = pd.DataFrame([{
        "id": c.campaign_id, "name": c.name, "advertiser": c.advertiser, "status": c.status,
        "max CPC": c.max_cpc, "daily budget": c.daily_budget, "total budget": c.total_budget,
        "spent today": c.spent_today, "spent in total": c.spent, "starts": c.starts_at, "ends": c.ends_at,
        "products": len(c.products), "targeting": targeting(c)} for c in campaigns])
    money = st.column_config.NumberColumn(format="%.2f")
    st.dataframe(table, hide_index=True, key="ads_table", column_config={
        **{column: money for column in ("max CPC", "daily budget", "total budget", "spent today",
                                        "spent in total")},
        "starts": st.column_config.DatetimeColumn("starts (UTC)", format="YYYY-MM-DD HH:mm"),
        "ends": st.column_config.DatetimeColumn("ends (UTC)", format="YYYY-MM-DD HH:mm")})


def choose(campaigns: list[ads.Campaign]) -> ads.Campaign:
    """The campaign whose report, actions and edit form are shown (the newest unless another was chosen)."""
    by_id = {campaign.campaign_id: campaign for campaign in campaigns}
    if CHOSEN_NEXT in st.session_state:
        st.session_state[CHOSEN] = st.session_state.pop(CHOSEN_NEXT)
    if st.session_state.get(CHOSEN) not in by_id:
        st.session_state[CHOSEN] = next(iter(by_id))
    chosen = st.selectbox("Campaign", list(by_id), key=CHOSEN,  # options are plain text: not escaped
                          format_func=lambda key: f"{key}: {by_id[key].name} ({by_id[key].advertiser})")
    return by_id[chosen]


# --- creating one --------------------------------------------------------------------------------------

def _product_picker(catalog: pd.DataFrame, key: str, default: list[str] | None = None) -> list[str]:
    titles = dict(zip(catalog["product_id"].astype(str), catalog["title"].fillna("")))
    return st.multiselect("Products", list(titles), default=default, key=key,
                          format_func=lambda product: f"{product} · {titles[product]}" if titles[product]
                          else product, placeholder="Choose the products to promote")


def _categories(catalog: pd.DataFrame | None) -> list[str]:
    if catalog is None or "category" not in catalog:
        return []
    names = (str(category) for category in catalog["category"].dropna().unique())
    return sorted(name for name in names if name.strip())


def create_form(url: str, who: Identity, campaigns: list[ads.Campaign]) -> None:
    """A new campaign; the library's refusal names the field, and the form keeps what was typed."""
    catalog = engines.catalog(url)
    if catalog is None or catalog.empty:
        st.info("No catalog is active, so there are no products to promote yet: an operator uploads one on "
                "the Data page.")
        return
    categories = _categories(catalog)
    own = None if who.can("ads") else who.advertiser
    known = sorted({campaign.advertiser for campaign in campaigns})
    with st.form("ads_create"):
        top = st.columns(2)
        if own is None:
            advertiser = top[0].text_input("Advertiser", key="ads_new_advertiser", max_chars=128,
                                           placeholder="the supplier or brand that pays",
                                           help="Known: " + ", ".join(md(name) for name in known) if known
                                           else None)
        else:  # an advertiser's account creates its own advertiser's campaigns only
            top[0].text_input("Advertiser", value=own, key="ads_new_advertiser", disabled=True)
            advertiser = None
        name = top[1].text_input("Name", key="ads_new_name", max_chars=ads.MAX_NAME)
        products = _product_picker(catalog, "ads_new_products")
        money = st.columns(3)
        max_cpc = money[0].number_input("Max cost per click", min_value=0.0, value=0.50, step=0.05,
                                        format="%.2f", key="ads_new_max_cpc",
                                        help="the most a click costs; the auction may charge less")
        daily = money[1].number_input("Daily budget", min_value=0.0, value=20.0, step=1.0, format="%.2f",
                                      key="ads_new_daily_budget", help="spend per UTC day, at most")
        total = money[2].number_input("Total budget (optional)", min_value=0.0, value=None, step=10.0,
                                      format="%.2f", key="ads_new_total_budget",
                                      help="spend over the campaign's life, at most; empty: no limit")
        days = st.columns(2)
        first = days[0].date_input("First day (UTC)", value=_today(), key="ads_new_starts")
        last = days[1].date_input("Last day (UTC, optional)", value=None, key="ads_new_ends",
                                  help="empty: runs until ended")
        keywords = st.text_input("Keywords (comma-separated, optional)", key="ads_new_keywords",
                                 placeholder="e.g. mug, cup")
        chosen_categories = (st.multiselect("Categories (optional)", categories, key="ads_new_categories")
                             if categories else [])
        st.caption("With neither keywords nor categories, the ads are shown where their products are "
                   "relevant to the search or the recommendation (automatic targeting).")
        submitted = st.form_submit_button("Create the campaign", type="primary")
    if not submitted:
        return
    try:
        created = ads.create_campaign(
            who, advertiser=advertiser if own is None else None, name=name, products=products,
            max_cpc=max_cpc, daily_budget=daily, total_budget=total, starts_at=_start(first),
            ends_at=_end(last), keywords=_terms(keywords), categories=chosen_categories, url=url)
    except (ads.CampaignError, ads.NotYourCampaign) as error:
        _refused("The campaign was not created", error)
        return
    _done(f"Created campaign {created.campaign_id}, {md(created.name)}, of {md(created.advertiser)}: "
          f"{len(created.products)} products, {targeting(created)}.", created.campaign_id)


# --- one campaign: status, edits, report ------------------------------------------------------------------

def status_buttons(url: str, who: Identity, campaign: ads.Campaign) -> None:
    """Pause, resume and end, each offered when it applies (the library refuses the others)."""
    ended, paused = campaign.status == "ended", campaign.status == "paused"
    key = campaign.campaign_id
    pause, resume, end = st.columns(3)
    action = None
    if pause.button("Pause", key=f"ads_pause_{key}", disabled=ended or paused, width="stretch",
                    help="stop serving its ads until resumed"):
        action = ads.pause_campaign, "Paused"
    if resume.button("Resume", key=f"ads_resume_{key}", disabled=not paused, width="stretch",
                     help="serve its ads again"):
        action = ads.resume_campaign, "Resumed"
    if end.button("End", key=f"ads_end_{key}", disabled=ended, width="stretch",
                  help="for good: its ads are never served again"):
        action = ads.end_campaign, "Ended"
    if action is None:
        return
    change, done = action
    try:
        changed = change(who, campaign.campaign_id, url=url)
    except (ads.CampaignError, ads.NotYourCampaign, LookupError) as error:
        _refused("Not changed", error)
        return
    _done(f"{done} campaign {changed.campaign_id}, {md(changed.name)}: it is {changed.status} now.",
          changed.campaign_id)


def edit_form(url: str, who: Identity, campaign: ads.Campaign) -> None:
    """Change its bid, budgets, days and targeting; only what changed is sent (and audited)."""
    key = campaign.campaign_id
    categories = sorted(set(_categories(engines.catalog(url))) | set(campaign.categories))
    with st.form(f"ads_edit_{key}"):
        money = st.columns(3)
        max_cpc = money[0].number_input("Max cost per click", min_value=0.0, value=campaign.max_cpc,
                                        step=0.05, format="%.2f", key=f"ads_edit_max_cpc_{key}")
        daily = money[1].number_input("Daily budget", min_value=0.0, value=campaign.daily_budget, step=1.0,
                                      format="%.2f", key=f"ads_edit_daily_budget_{key}")
        total = money[2].number_input("Total budget (optional)", min_value=0.0, value=campaign.total_budget,
                                      step=10.0, format="%.2f", key=f"ads_edit_total_budget_{key}",
                                      help="empty: no limit")
        days = st.columns(2)
        first = days[0].date_input("First day (UTC)", value=campaign.starts_at.date(),
                                   key=f"ads_edit_starts_{key}")
        last = days[1].date_input("Last day (UTC, optional)", value=_last_day(campaign.ends_at),
                                  key=f"ads_edit_ends_{key}", help="empty: runs until ended")
        keywords = st.text_input("Keywords (comma-separated)", value=", ".join(campaign.keywords),
                                 key=f"ads_edit_keywords_{key}")
        chosen_categories = (st.multiselect("Categories", categories, default=campaign.categories,
                                            key=f"ads_edit_categories_{key}") if categories else [])
        submitted = st.form_submit_button("Save the changes")
    if not submitted:
        return
    form = {"max_cpc": max_cpc, "daily_budget": daily, "total_budget": total, "keywords": _terms(keywords),
            "categories": chosen_categories}
    changes = {field: value for field, value in form.items() if value != getattr(campaign, field)}
    if first != campaign.starts_at.date():  # an unchanged day keeps the hour it started at
        changes["starts_at"] = datetime.combine(first, time())
    if last != _last_day(campaign.ends_at):
        changes["ends_at"] = _end(last)
    if not changes:
        st.info("Nothing changed.")
        return
    try:
        changed = ads.update_campaign(who, campaign.campaign_id, changes, url=url)
    except (ads.CampaignError, ads.NotYourCampaign, LookupError) as error:
        _refused("Not saved", error)
        return
    _done(f"Saved campaign {changed.campaign_id}, {md(changed.name)}: "
          f"{', '.join(FIELD_LABELS[field].lower() for field in changes)} changed; it is {changed.status}.",
          changed.campaign_id)


def report(url: str, who: Identity, campaign: ads.Campaign) -> None:
    """Its impressions, clicks, click-through, spend, cost per click and budget use, and per UTC day
    charts of impressions and clicks and of spend against the daily budget."""
    result = ads.report(who, campaign.campaign_id, url=url)
    figures = result.campaigns[0]
    products = ", ".join(md(product) for product in campaign.products[:PRODUCTS_SHOWN])
    if len(campaign.products) > PRODUCTS_SHOWN:
        products += f" and {len(campaign.products) - PRODUCTS_SHOWN:,} more"
    st.markdown(f"**{md(figures.name)}** of **{md(figures.advertiser)}**: {figures.status}; "
                f"targeting {md(targeting(campaign))}; promotes {products}.")
    if not figures.impressions:
        st.info(NOTHING_SERVED)
        return
    top, bottom = st.columns(5), st.columns(2)
    top[0].metric("Impressions", f"{figures.impressions:,}")
    top[1].metric("Clicks", f"{figures.clicks:,}")
    top[2].metric("Click-through", _share(figures.click_through), help="clicks per impression")
    top[3].metric("Spend", _amount(figures.spend))
    top[4].metric("Cost per click", _amount(figures.cost_per_click), help="spend per click")
    bottom[0].metric("Today's budget used", _share(figures.daily_budget_used),
                     help=f"spent today {_amount(figures.spent_today)} of {_amount(figures.daily_budget)} "
                          "(UTC day)")
    bottom[1].metric("Total budget used", _share(figures.total_budget_used),
                     help=(f"spent {_amount(campaign.spent)} of {_amount(figures.total_budget)}"
                           if figures.total_budget is not None else "no total budget: no limit"))
    days = pd.DataFrame([{"day": day.day, "impressions": day.impressions, "clicks": day.clicks,
                          "spend": day.spend}
                         for day in result.days if day.campaign_id == campaign.campaign_id])
    left, right = st.columns(2)
    left.plotly_chart(charts.ad_traffic(days), key=f"ads_traffic_{campaign.campaign_id}")
    right.plotly_chart(charts.ad_spend(days, figures.daily_budget), key=f"ads_spend_{campaign.campaign_id}")


def organic_cost(url: str) -> None:
    """What the ads cost organic quality: nDCG@10 of the judged queries' search pages with the ads
    the current campaigns would win, against the same pages without (`recsys.ads.quality`)."""
    st.subheader("What the ads cost organic quality")
    served, _ = engines.active_fusion(url, "search")
    slots = SponsoredSlots.from_preset(served.config)
    judged = engines.versions(url).get("judgments")
    if slots is None:
        st.info("The active search preset names no sponsored slots: its pages carry no ads. Name them on "
                "the Fusion & rules page.")
        return
    if judged is None:
        st.info("Upload relevance judgments (query, product, grade) on the Data page to measure what the ads "
                "cost the search pages' nDCG@10.")
        return
    st.caption(f"Each judged query's page (the top 10 of the active search preset), without ads and with the "
               f"ads the campaigns would win now at positions {', '.join(map(str, slots.positions))} "
               f"(relevance {slots.relevance_floor:g} or more), scored against the judgments; an ad counts "
               f"with its product's judged grade. At most {MAX_QUERIES} queries; nothing is recorded.")
    if not st.button("Measure", key="ads_measure_quality"):
        return
    catalog = engines.catalog(url)
    titles = dict(zip(catalog["product_id"].astype(str), catalog["title"].astype(str)))
    with st.spinner("Searching the judged queries..."):
        found = measure_cost(engines.search_engine(url), engines.judgments(url, judged),
                             engines.ad_server(url), slots, titles=titles)
    left, middle, right = st.columns(3)
    left.metric("nDCG@10 without ads", f"{found['ndcg@10_without']:.4f}")
    middle.metric("nDCG@10 with ads", f"{found['ndcg@10_with']:.4f}", delta=f"{found['change']:+.4f}")
    right.metric("Pages with an ad", f"{found['pages_with_ads']:,} of {found['queries']:,}")
