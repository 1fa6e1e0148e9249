"""Campaigns: checked fields, an advertiser confined to its own campaigns, audited changes, honest status."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from recsys import accounts
from recsys.accounts import AccountError, Identity
from recsys.ads import campaigns
from recsys.ads.campaigns import CampaignError, Impression, NotYourCampaign
from tests.ads.conftest import ACME, GLOBEX, OPERATOR

GOOD = {"name": "Mugs", "products": ["P1", "P2"], "max_cpc": 0.5, "daily_budget": 10.0}


def create(who=OPERATOR, **changes):
    fields = {"advertiser": "Acme", **GOOD, **changes}
    return campaigns.create_campaign(who, **fields)


def test_a_campaign_is_created_active_with_automatic_targeting(shop):
    made = create(total_budget=100.0)
    assert (made.advertiser, made.products, made.status, made.spent, made.eligible) == (
        "Acme", ["P1", "P2"], "active", 0.0, True)
    assert made.automatic_targeting
    targeted = create(keywords=[" mug ", "cup", "mug"], categories=["kitchen"])
    assert (targeted.keywords, targeted.categories, targeted.automatic_targeting) == (["mug", "cup"],
                                                                                        ["kitchen"], False)
    assert campaigns.get_campaign(OPERATOR, made.campaign_id).to_dict()["campaign_id"] == made.campaign_id


@pytest.mark.parametrize("changes,message", [
    ({"max_cpc": 0}, "max_cpc: must be a finite amount above 0"),
    ({"max_cpc": -1.0}, "max_cpc: must be a finite amount above 0"),
    ({"max_cpc": float("nan")}, "max_cpc: must be a finite amount above 0"),
    ({"max_cpc": "1"}, "max_cpc: must be a number"),
    ({"daily_budget": float("inf")}, "daily_budget: must be a finite amount above 0"),
    ({"total_budget": 0.0}, "total_budget: must be a finite amount above 0"),
    ({"total_budget": 5.0}, "total_budget: 5.0 is less than the daily budget 10.0"),
    ({"max_cpc": 11.0}, "max_cpc: 11.0 is above the daily budget 10.0"),
    ({"products": ["P1", "NOPE", "P9"]}, "products: 'NOPE', 'P9' not in the active catalog"),
    ({"products": []}, "products: a campaign promotes at least one product"),
    ({"products": "P1"}, "products: must be a list of strings"),
    ({"name": "  "}, "name: is empty"),
    ({"starts_at": "2026-12-02", "ends_at": "2026-12-01T23:00"}, "ends_at: 2026-12-01 23:00 is not after"),
    ({"ends_at": "next week"}, "ends_at: 'next week' is not a date and time"),
    ({"keywords": ["mug", ""]}, "keywords: '' is blank"),
])
def test_bad_fields_are_refused_naming_the_field(shop, changes, message):
    with pytest.raises(CampaignError, match=message):
        create(**changes)
    assert campaigns.list_campaigns(OPERATOR) == []


def test_products_are_checked_against_the_active_catalog(db_url):
    with pytest.raises(CampaignError, match="products: no catalog is active"):
        create()


def test_an_advertiser_sees_and_changes_only_its_own_campaigns(shop):
    own = create(ACME, advertiser=None)  # an advertiser's campaign is its own by default
    other = create(OPERATOR, advertiser="Globex")
    assert own.advertiser == "Acme"
    assert [found.campaign_id for found in campaigns.list_campaigns(ACME)] == [own.campaign_id]
    assert {found.advertiser for found in campaigns.list_campaigns(OPERATOR)} == {"Acme", "Globex"}
    refused = [lambda: campaigns.get_campaign(ACME, other.campaign_id),
               lambda: campaigns.pause_campaign(ACME, other.campaign_id),
               lambda: campaigns.resume_campaign(ACME, other.campaign_id),
               lambda: campaigns.end_campaign(ACME, other.campaign_id),
               lambda: campaigns.update_campaign(ACME, other.campaign_id, {"max_cpc": 0.1}),
               lambda: campaigns.report(ACME, other.campaign_id),
               lambda: campaigns.list_campaigns(ACME, "Globex"),
               lambda: create(ACME, advertiser="Globex")]
    for action in refused:
        with pytest.raises(NotYourCampaign, match="is not one of Acme's campaigns"):
            action()
    assert campaigns.get_campaign(GLOBEX, other.campaign_id).status == "active"  # nothing changed
    assert [row.campaign_id for row in campaigns.report(ACME).campaigns] == [own.campaign_id]
    for who in (Identity("vic", "viewer"), Identity("max", "merchandiser"), Identity("nobody", "advertiser")):
        with pytest.raises(NotYourCampaign, match="may not manage sponsored-products campaigns"):
            campaigns.list_campaigns(who)
    with pytest.raises(LookupError, match="there is no campaign 999"):
        campaigns.get_campaign(ACME, 999)


def test_every_change_is_audited(shop):
    made = create(ACME, advertiser=None)
    campaigns.update_campaign(ACME, made.campaign_id, {"max_cpc": 0.75, "keywords": ["mug"]})
    campaigns.pause_campaign(OPERATOR, made.campaign_id)
    campaigns.resume_campaign(ACME, made.campaign_id)
    campaigns.end_campaign(ACME, made.campaign_id)
    log = accounts.audit_log().iloc[::-1]
    rows = log[log["action"].str.startswith("ad_campaign")]
    assert list(zip(rows["actor"], rows["action"])) == [
        ("ann", "ad_campaign_create"), ("ann", "ad_campaign_update"), ("olga", "ad_campaign_pause"),
        ("ann", "ad_campaign_resume"), ("ann", "ad_campaign_end")]
    assert rows.iloc[1]["details"]["changes"] == {"max_cpc": [0.5, 0.75], "keywords": [[], ["mug"]]}
    assert set(rows["target"]) == {f"campaign {made.campaign_id} Mugs"}


def test_updates_are_checked_whole(shop):
    made = create(total_budget=50.0)
    with pytest.raises(CampaignError, match="total_budget: 50.0 is less than the daily budget 60"):
        campaigns.update_campaign(OPERATOR, made.campaign_id, {"daily_budget": 60.0})
    with pytest.raises(CampaignError, match="status: not a field that can be changed"):
        campaigns.update_campaign(OPERATOR, made.campaign_id, {"status": "active"})
    with pytest.raises(CampaignError, match="products: 'P9' not in the active catalog"):
        campaigns.update_campaign(OPERATOR, made.campaign_id, {"products": ["P9"]})
    changed = campaigns.update_campaign(OPERATOR, made.campaign_id,
                                        {"total_budget": None, "daily_budget": 60.0})
    assert (changed.total_budget, changed.daily_budget) == (None, 60.0)


def test_status_follows_dates_and_hand_changes(shop):
    now = datetime(2026, 12, 1, 12)
    made = create(starts_at=now + timedelta(days=1), ends_at=now + timedelta(days=2))
    ahead = campaigns.get_campaign(OPERATOR, made.campaign_id, now=now)
    assert (ahead.status, ahead.started, ahead.eligible) == ("active", False, False)
    assert campaigns.get_campaign(OPERATOR, made.campaign_id, now=now + timedelta(days=1, hours=1)).eligible
    assert campaigns.get_campaign(OPERATOR, made.campaign_id, now=now + timedelta(days=2)).status == "ended"
    [serving] = campaigns.serving_campaigns(now=now + timedelta(days=1, hours=1))
    assert serving.campaign_id == made.campaign_id
    assert campaigns.serving_campaigns(now=now + timedelta(days=3)) == []

    paused = campaigns.pause_campaign(OPERATOR, made.campaign_id)
    assert paused.status == "paused"
    with pytest.raises(CampaignError, match="is paused already"):
        campaigns.pause_campaign(OPERATOR, made.campaign_id)
    assert campaigns.resume_campaign(OPERATOR, made.campaign_id).status == "active"
    with pytest.raises(CampaignError, match="is not paused, it is active"):
        campaigns.resume_campaign(OPERATOR, made.campaign_id)
    assert campaigns.end_campaign(OPERATOR, made.campaign_id).status == "ended"
    with pytest.raises(CampaignError, match="has ended"):
        campaigns.resume_campaign(OPERATOR, made.campaign_id)


def test_a_spent_total_budget_is_out_of_budget_until_raised(shop):
    made = create(max_cpc=1.0, daily_budget=2.0, total_budget=2.0)
    campaigns.record_impressions([Impression(f"r{n}", made.campaign_id, "P1", 1, 1.0) for n in range(2)])
    outcomes = [campaigns.charge_click(f"e{n}", f"r{n}", "P1").outcome for n in range(2)]
    assert outcomes == ["charged", "charged"]
    assert campaigns.get_campaign(OPERATOR, made.campaign_id).status == "out_of_budget"
    assert campaigns.serving_campaigns() == []
    assert "ad_campaign_out_of_budget" in set(accounts.audit_log()["action"])
    raised = campaigns.update_campaign(OPERATOR, made.campaign_id, {"total_budget": 10.0,
                                                                    "daily_budget": 5.0})
    assert raised.status == "active" and raised.spent == 2.0


def test_advertiser_accounts_name_their_advertiser(db_url):
    with pytest.raises(AccountError, match="needs the advertiser it acts for"):
        accounts.create_account("ann", "long-enough", "advertiser", actor="admin")
    with pytest.raises(AccountError, match="only an account of role advertiser"):
        accounts.create_account("ann", "long-enough", "viewer", actor="admin", advertiser="Acme")
    assert accounts.create_account("ann", "long-enough", "advertiser", actor="admin",
                                   advertiser=" Acme ") == ACME
    assert accounts.authenticate("ann", "long-enough") == ACME
    assert ACME.can("advertise") and not ACME.can("view") and not ACME.can("ads")
    assert OPERATOR.can("ads") and Identity("root", "admin").can("ads")
    accounts.create_account("gus", "long-enough", "viewer", actor="admin")
    with pytest.raises(AccountError, match="needs the advertiser"):
        accounts.set_role("gus", "advertiser", actor="admin")
    accounts.set_role("gus", "advertiser", actor="admin", advertiser="Globex")
    assert accounts.current_identity("gus") == GLOBEX
    accounts.set_role("gus", "viewer", actor="admin")
    assert accounts.current_identity("gus") == Identity("gus", "viewer")
    assert accounts.list_accounts().set_index("username").loc["ann", "advertiser"] == "Acme"
