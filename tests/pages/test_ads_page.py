"""pages/ads.py: create campaigns through the form, pause, resume, end and edit them, and read their
report, as an operator and as an advertiser's account; nothing is fitted: the page reads SQL only."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from recsys.accounts import Identity, create_account
from recsys.ads import campaigns
from recsys.ads.campaigns import Impression
from recsys.data import IngestOptions, ingest_file
from tests.conftest import ROOT
from tests.pages.conftest import PASSWORD, ROLES, app_as, shown

PAGE = "pages/ads.py"
OPERATOR = Identity("operator1", "operator")
ACME = Identity("advertiser1", "advertiser", "Acme")
CREATE = "FormSubmitter:ads_create-Create the campaign"


@pytest.fixture
def ads_shop(db_url, catalog_file) -> str:
    """An active catalog (P1 to P4, kitchen and garden), one account per role, a grader and an advertiser's
    account acting for Acme. No engine is fitted: the Ads page does not need one."""
    ingest_file(catalog_file, IngestOptions("catalog"), actor="test")
    for role in ROLES:
        create_account(role + "1", PASSWORD, role, actor="test")
    create_account("grader1", PASSWORD, "grader", actor="test")
    create_account("advertiser1", PASSWORD, "advertiser", actor="test", advertiser="Acme")
    return db_url


def _button(app, key):
    return next(button for button in app.button if button.key == key)


def _campaign(url: str, advertiser: str, name: str, **fields):
    values = {"products": ["P1", "P2"], "max_cpc": 0.5, "daily_budget": 10.0, **fields}
    return campaigns.create_campaign(OPERATOR, advertiser=advertiser, name=name, url=url, **values)


def _fill(app, name: str, products: list[str], max_cpc: float, advertiser: str | None = None) -> None:
    if advertiser is not None:
        app.text_input(key="ads_new_advertiser").set_value(advertiser)
    app.text_input(key="ads_new_name").set_value(name)
    app.multiselect(key="ads_new_products").set_value(products)
    app.number_input(key="ads_new_max_cpc").set_value(max_cpc)
    app.number_input(key="ads_new_daily_budget").set_value(15.0)
    app.number_input(key="ads_new_total_budget").set_value(100.0)
    app.text_input(key="ads_new_keywords").set_value("mug, cup")
    app.multiselect(key="ads_new_categories").set_value(["kitchen"])


def test_an_operator_creates_a_campaign_through_the_form_and_sees_it_listed(ads_shop):
    app = app_as("operator", PAGE)
    assert not app.exception and app.title[0].value == "Ads"
    assert any("No campaign yet" in info.value for info in app.info)
    assert not app.dataframe
    # The products offered are the active catalog's, with their titles.
    assert app.multiselect(key="ads_new_products").options == ["P1 · Red mug", "P2 · Blue mug",
                                                                "P3 · Green teapot", "P4 · Garden chair"]
    assert app.multiselect(key="ads_new_categories").options == ["garden", "kitchen"]
    _fill(app, "Mugs [*sale*]", ["P1", "P2"], 0.4, advertiser="Globex")
    _button(app, CREATE).click().run()
    assert not app.exception and not app.error
    assert [shown(s.value) for s in app.success] == [
        "Created campaign 1, Mugs [*sale*], of Globex: 2 products, keywords: mug, cup; categories: kitchen."]
    assert r"Mugs \[\*sale\*\]" in app.success[0].value  # the name is escaped: it formats nothing
    table = app.dataframe[0].value
    row = table.iloc[0].to_dict()
    assert (row["name"], row["advertiser"], row["status"], row["max CPC"], row["daily budget"],
            row["total budget"], row["spent today"], row["spent in total"], row["products"]) == (
        "Mugs [*sale*]", "Globex", "active", 0.4, 15.0, 100.0, 0.0, 0.0, 2)
    assert row["targeting"] == "keywords: mug, cup; categories: kitchen"
    stored = campaigns.list_campaigns(OPERATOR, url=ads_shop)
    assert [(c.advertiser, c.name, c.products, c.keywords, c.categories, c.created_by) for c in stored] == [
        ("Globex", "Mugs [*sale*]", ["P1", "P2"], ["mug", "cup"], ["kitchen"], "operator1")]
    # Nothing served yet: the report says where its ads will appear.
    assert any("No ads served yet" in info.value and "sponsored slots" in info.value for info in app.info)
    assert not app.metric


def test_a_bad_bid_names_the_field_creates_nothing_and_keeps_the_form(ads_shop):
    app = app_as("operator", PAGE)
    _fill(app, "Mugs", ["P1"], 0.0, advertiser="Globex")
    _button(app, CREATE).click().run()
    assert not app.exception
    assert len(app.error) == 1
    assert "Max cost per click (max_cpc): must be a finite amount above 0" in shown(app.error[0].value)
    assert campaigns.list_campaigns(OPERATOR, url=ads_shop) == []
    assert app.text_input(key="ads_new_name").value == "Mugs"
    assert app.multiselect(key="ads_new_products").value == ["P1"]
    # A bid above the daily budget is refused too, naming the field.
    app.number_input(key="ads_new_max_cpc").set_value(20.0)
    _button(app, CREATE).click().run()
    assert "(max_cpc): 20.0 is above the daily budget" in shown(app.error[0].value)
    assert campaigns.list_campaigns(OPERATOR, url=ads_shop) == []


def test_an_advertiser_sees_only_its_own_campaigns_and_creates_them_for_itself(ads_shop):
    _campaign(ads_shop, "Acme", "Acme mugs")
    _campaign(ads_shop, "Globex", "Globex chairs", products=["P4"])
    app = app_as("advertiser")  # an advertiser's account lands on the Ads page
    assert not app.exception and app.title[0].value == "Ads"
    assert app.dataframe[0].value["name"].tolist() == ["Acme mugs"]
    assert app.selectbox(key="ads_chosen").options == ["1: Acme mugs (Acme)"]
    advertiser = app.text_input(key="ads_new_advertiser")
    assert advertiser.value == "Acme" and advertiser.disabled
    _fill(app, "Acme teapots", ["P3"], 0.3)
    _button(app, CREATE).click().run()
    assert not app.exception and not app.error
    assert app.dataframe[0].value["name"].tolist() == ["Acme teapots", "Acme mugs"]
    assert {c.name: c.advertiser for c in campaigns.list_campaigns(OPERATOR, url=ads_shop)} == {
        "Acme teapots": "Acme", "Acme mugs": "Acme", "Globex chairs": "Globex"}


def test_pause_resume_and_end_change_the_status(ads_shop):
    created = _campaign(ads_shop, "Acme", "Acme mugs")
    app = app_as("advertiser", PAGE)
    assert _button(app, "ads_resume_1").disabled and not _button(app, "ads_pause_1").disabled
    _button(app, "ads_pause_1").click().run()
    assert not app.exception
    assert [shown(s.value) for s in app.success] == ["Paused campaign 1, Acme mugs: it is paused now."]
    assert app.dataframe[0].value["status"].tolist() == ["paused"]
    assert campaigns.get_campaign(OPERATOR, created.campaign_id, url=ads_shop).status == "paused"
    _button(app, "ads_resume_1").click().run()
    assert app.dataframe[0].value["status"].tolist() == ["active"]
    _button(app, "ads_end_1").click().run()
    assert app.dataframe[0].value["status"].tolist() == ["ended"]
    assert all(_button(app, f"ads_{action}_1").disabled for action in ("pause", "resume", "end"))


def test_the_edit_form_changes_the_bid_and_refuses_a_total_below_the_daily_budget(ads_shop):
    _campaign(ads_shop, "Acme", "Acme mugs", total_budget=50.0)
    app = app_as("operator", PAGE)
    app.number_input(key="ads_edit_max_cpc_1").set_value(0.8)
    app.text_input(key="ads_edit_keywords_1").set_value("mug")
    _button(app, "FormSubmitter:ads_edit_1-Save the changes").click().run()
    assert not app.exception and not app.error
    assert [shown(s.value) for s in app.success] == [
        "Saved campaign 1, Acme mugs: max cost per click, keywords changed; it is active."]
    changed = campaigns.get_campaign(OPERATOR, 1, url=ads_shop)
    assert (changed.max_cpc, changed.keywords, changed.total_budget) == (0.8, ["mug"], 50.0)
    app.number_input(key="ads_edit_total_budget_1").set_value(5.0)
    _button(app, "FormSubmitter:ads_edit_1-Save the changes").click().run()
    assert "Total budget (total_budget): 5.0 is less than the daily budget" in shown(app.error[0].value)
    assert campaigns.get_campaign(OPERATOR, 1, url=ads_shop).total_budget == 50.0


def test_the_report_shows_what_was_served_clicked_and_spent(ads_shop):
    _campaign(ads_shop, "Acme", "Acme mugs", total_budget=40.0)
    served = [Impression(f"r-{number}", 1, "P1", 1, 0.5) for number in range(4)]
    assert campaigns.record_impressions(served, url=ads_shop) == 4
    assert campaigns.charge_click("e-1", "r-0", "P1", url=ads_shop).outcome == "charged"
    app = app_as("advertiser", PAGE)
    assert not app.exception and not any("No ads served yet" in info.value for info in app.info)
    assert {m.label: m.value for m in app.metric} == {
        "Impressions": "4", "Clicks": "1", "Click-through": "25.0%", "Spend": "0.50",
        "Cost per click": "0.50", "Today's budget used": "5.0%", "Total budget used": "1.2%"}
    assert app.dataframe[0].value[["spent today", "spent in total"]].iloc[0].tolist() == [0.5, 0.5]
    charts = app.get("plotly_chart")
    assert len(charts) == 2
    titles = [chart.proto.spec for chart in charts]
    assert "Impressions and clicks per day" in titles[0] and "against the daily budget" in titles[1]


@pytest.mark.parametrize("role,allowed", [("admin", True), ("operator", True), ("advertiser", True),
                                          ("merchandiser", False), ("viewer", False), ("grader", False)])
def test_only_operators_admins_and_advertisers_get_the_page(ads_shop, role, allowed):
    if allowed:
        assert app_as(role, PAGE).title[0].value == "Ads"
        return
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        app_as(role, PAGE)
    page = AppTest.from_file(str(ROOT / "pages" / "ads.py"), default_timeout=30)  # opened directly
    page.session_state["identity"] = {"username": role + "1", "role": role}
    page.run()
    assert any("does not allow" in e.value for e in page.error)
    assert not page.dataframe and not page.text_input


def test_operators_measure_what_the_ads_cost_the_judged_search_pages(shop, write):
    # (recsys.ads.quality's own tests show an ad lowering a page's nDCG; here: the page's wiring)
    from recsys.engines import fit_active

    judgments = "query,product_id,grade\nmug,P1,3\nmug,P2,1\nteapot,P3,3\n"
    ingest_file(write("judgments.csv", judgments), IngestOptions("judgments"), actor="test")
    fit_active(shop)
    _campaign(shop, "Acme", "Blue mugs", products=["P2"])  # relevant to "mug", but graded lowest
    app = app_as("operator", PAGE)
    _button(app, "ads_measure_quality").click().run()
    assert not app.exception and not app.error
    shown = {metric.label: metric.value for metric in app.metric}
    # "mug" (top 10: both mugs, the red one first): the blue mug is on the page already, so no ad;
    # "teapot": the mugs are under the floor. The pages keep their nDCG@10.
    assert shown["nDCG@10 without ads"] == shown["nDCG@10 with ads"]
    assert shown["Pages with an ad"] == "0 of 2"
    assert float(shown["nDCG@10 without ads"]) > 0.5
