"""`python -m recsys ads ...`: JSON on stdout, a clear message and status 1 on bad input."""

from __future__ import annotations

import json

from recsys import accounts
from recsys.ads import campaigns
from recsys.ads.campaigns import Impression
from recsys.cli import main
from tests.ads.conftest import OPERATOR
from tests.test_cli import recsys

CREATE = ["ads", "campaigns", "create", "--advertiser", "Acme", "--name", "Mugs", "--products", "P1, P2",
          "--max-cpc", "0.5", "--daily-budget", "10"]


def run(capsys, *args: str) -> tuple[int, object, str]:
    """(exit status, the JSON printed, stderr) of `python -m recsys` run in this process."""
    status = main(list(args))
    out, err = capsys.readouterr()
    return status, json.loads(out) if out else None, err


def test_create_list_pause_resume_and_report(shop, capsys, monkeypatch):
    monkeypatch.setenv("USER", "olga")
    status, created, _ = run(capsys, *CREATE, "--total-budget", "50", "--keywords", "mug,cup",
                             "--starts", "2026-11-01", "--ends", "2027-01-01T00:00:00+01:00")
    assert status == 0
    campaign = created["campaign_id"]
    assert (created["advertiser"], created["products"], created["keywords"], created["categories"]) == (
        "Acme", ["P1", "P2"], ["mug", "cup"], [])
    assert (created["total_budget"], created["ends_at"], created["automatic_targeting"]) == (
        50.0, "2026-12-31 23:00:00", False)
    _, listed, _ = run(capsys, "ads", "campaigns", "list", "--advertiser", "Acme")
    assert [row["campaign_id"] for row in listed] == [campaign]
    assert run(capsys, "ads", "campaigns", "list", "--advertiser", "Globex")[1] == []
    assert run(capsys, "ads", "campaigns", "pause", str(campaign))[1]["status"] == "paused"
    assert run(capsys, "ads", "campaigns", "resume", str(campaign))[1]["status"] == "active"

    campaigns.record_impressions([Impression("r1", campaign, "P1", 1, 0.5),
                                  Impression("r2", campaign, "P2", 2, 0.3)])
    campaigns.charge_click("e1", "r1", "P1")
    _, reported, _ = run(capsys, "ads", "report", "--campaign", str(campaign))
    [row] = reported["campaigns"]
    assert (row["impressions"], row["clicks"], row["click_through"], row["spend"], row["cost_per_click"]) == (
        2, 1, 0.5, 0.5, 0.5)
    assert row["total_budget_used"] == 0.01 and len(reported["days"]) == 1
    log = accounts.audit_log()
    changes = log[log["action"].str.startswith("ad_campaign")]
    assert set(changes["actor"]) == {"olga"}  # the command line acts as an operator, named by $USER


def test_bad_input_is_a_message_and_status_1(shop, capsys):
    cases = [([*CREATE[:-1], "0"], "error: daily_budget: must be a finite amount above 0, not 0.0"),
             ([*CREATE, "--products", "P1,P9"], "error: products: 'P9' not in the active catalog"),
             ([*CREATE, "--starts", "2026-12-02", "--ends", "2026-12-01"],
              "error: ends_at: 2026-12-01 00:00 is not"),
             (CREATE[:5], "error: ads campaigns create needs --name, --products, --max-cpc"),
             (["ads", "campaigns", "pause"], "error: ads campaigns pause needs the campaign's id"),
             (["ads", "campaigns", "pause", "7"], "error: there is no campaign 7"),
             (["ads", "report", "--campaign", "7"], "error: there is no campaign 7")]
    for args, message in cases:
        status, printed, err = run(capsys, *args)
        assert (status, printed) == (1, None), args
        assert err.startswith(message), (args, err)
    assert campaigns.list_campaigns(OPERATOR) == []


def test_the_command_runs_as_a_program(shop):
    created = recsys(*CREATE, url=shop)
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["campaign_id"] == 1
    refused = recsys("ads", "campaigns", "create", "--advertiser", "Acme", "--max-cpc", "a lot", url=shop)
    assert refused.returncode == 2 and "--max-cpc: invalid float value: 'a lot'" in refused.stderr
