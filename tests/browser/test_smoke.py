"""A real browser (Debian's Chromium driven by Playwright) logs in and sees the demo data."""

from __future__ import annotations

import re
import time

import pytest

from tests.browser.conftest import log_in, settle

pytestmark = pytest.mark.browser


def test_wrong_password_then_login_sees_demo_data(server, page):
    url, folder, _ = server
    log_in(page, url, "wrong-password")
    page.get_by_text("Wrong username or password.").wait_for()

    log_in(page, url)
    page.get_by_text("Logged in as admin (admin).").wait_for()
    page.get_by_text("3,812 rows").wait_for()  # the demo catalog
    page.get_by_text("391,143 rows").wait_for()  # the demo purchases

    page.get_by_role("link", name="Data").first.click()
    page.get_by_text("Products in the active catalog").wait_for()
    page.get_by_text("Events from 2010-12-01 to 2011-12-09").wait_for()
    page.locator(".js-plotly-plot").first.wait_for()
    page.screenshot(path=str(folder / "data.png"), full_page=True)

    page.get_by_role("tab", name="Upload").click()
    page.get_by_text("What are you uploading?").wait_for()
    page.get_by_role("combobox", name="What are you uploading?").click()
    page.get_by_role("option", name="Behaviour (views, clicks, carts, purchases, ratings)").click()
    bad = folder / "bad_events.csv"
    bad.write_text("user_id,product_id,event_type,timestamp\nu1,85123A,view,2011-01-01\n"
                   "u2,85123A,view,yesterday-ish\n")
    page.locator("input[type=file]").set_input_files(str(bad))
    page.get_by_text("bad_events.csv: 2 rows, 4 columns").wait_for()
    page.get_by_role("button", name="Upload and activate").click()
    page.get_by_text("rejected, 1 problem(s); nothing was stored.").wait_for()
    # The problem table names the row, the line, the column and the value.
    problems = page.locator("[data-testid=stDataFrame]").filter(has_text="reason")
    problems.wait_for()
    page.screenshot(path=str(folder / "rejected.png"), full_page=True)

    page.get_by_role("button", name="Log out").click()
    page.get_by_role("button", name="Log in").wait_for()


def test_moving_a_weight_slider_reorders_the_fused_list(server, page):
    url, folder, _ = server
    log_in(page, url)
    page.get_by_text("Logged in as admin (admin).").wait_for()
    page.get_by_role("link", name="Fusion & rules").click()
    settle(page)
    page.locator(".st-key-fusion_query input").fill("pink")
    page.keyboard.press("Enter")
    settle(page)
    # The working config's table is the one with a "move" column (keyed dataframes get no st-key class).
    working = page.locator("[data-testid=stDataFrame]").filter(has_text="move")
    working.wait_for()
    before = working.text_content()
    assert "PINK" in before.upper()
    slider = page.locator(".st-key-fusion_search_weight_bm25").get_by_role("slider")
    slider.focus()
    for _ in range(15):  # 0.75 -> 0: lexical matching leaves the fusion
        page.keyboard.press("ArrowLeft")
    settle(page)
    deadline = time.time() + 60
    while working.text_content() == before and time.time() < deadline:
        page.wait_for_timeout(500)
    after = working.text_content()
    assert after != before and "new" in after  # products semantic alone brings in are marked
    page.screenshot(path=str(folder / "fusion.png"), full_page=True)


def test_a_finished_evaluation_shows_its_results_without_leaving_the_page(server, page):
    url, _, _ = server
    log_in(page, url)
    page.get_by_text("Logged in as admin (admin).").wait_for()
    page.get_by_role("link", name="Evaluation").click()
    settle(page)
    page.get_by_text("No results yet: run an evaluation.").wait_for()
    algorithms = page.locator(".st-key-eval_algorithms")
    for chosen in ("item_knn", "ease"):  # popularity alone: a run of seconds
        algorithms.get_by_role("button", name=f"Remove {chosen}").click()
    page.get_by_role("button", name="Run evaluation").click()
    page.get_by_text(re.compile(r"Started run \d+")).wait_for()
    page.get_by_text(re.compile(r"Run \d+ by admin: succeeded")).first.wait_for(timeout=240_000)
    page.locator("[data-testid=stDataFrame]").filter(has_text="popularity").first.wait_for(timeout=30_000)
    assert page.get_by_text("No results yet: run an evaluation.").count() == 0


def test_fine_tune_on_the_demo_watch_it_and_activate_the_model(server, page):
    url, folder, _ = server
    log_in(page, url)
    page.get_by_text("Logged in as admin (admin).").wait_for()
    page.get_by_role("link", name="Fine-tune").click()
    settle(page)
    page.get_by_text("the shipped all-MiniLM-L6-v2").first.wait_for()
    # The demo has co-purchases only: that is the training data offered.
    page.get_by_text("Co-purchases (baskets)").first.wait_for()
    page.locator(".st-key-ft_steps input").fill("12")
    page.locator(".st-key-ft_batch input").fill("16")
    page.get_by_role("button", name="Start fine-tuning").click()
    page.get_by_text("Started fine-tune").wait_for()
    # The progress line polls SQL: steps, loss and time left appear while it trains.
    page.get_by_text(re.compile(r"step \d+/12, loss")).first.wait_for(timeout=240_000)
    page.get_by_text(re.compile(r"Run \d+ by admin: succeeded")).first.wait_for(timeout=420_000)
    # The status fragment runs the whole page again when the run ends: the results and the new
    # model appear without leaving the page.
    page.get_by_text("Before and after").wait_for(timeout=30_000)
    page.locator("[data-testid=stDataFrame]").filter(has_text="recall@100").first.wait_for()
    page.get_by_role("button", name="Activate").click()
    page.get_by_text("Activated embedding model v1").wait_for()
    page.screenshot(path=str(folder / "finetune.png"), full_page=True)
    page.get_by_text("v1 (fine-tuned on co_purchases)").first.wait_for()


def test_the_request_console_calls_the_service_which_follows_an_activation(server, page):
    import json
    import urllib.request

    url, folder, service = server
    log_in(page, url)
    page.get_by_text("Logged in as admin (admin).").wait_for()
    page.get_by_role("link", name="Serving").click()
    settle(page)
    page.get_by_text(re.compile(r"The service at http://127\.0\.0\.1:\d+ is up")).wait_for()
    page.locator(".st-key-console_query input").fill("heart")
    page.keyboard.press("Enter")
    settle(page)
    page.get_by_role("button", name="Send", exact=True).click()
    page.get_by_text(re.compile(r"→ 200 in \d+ ms")).wait_for(timeout=60_000)
    page.get_by_text("preset default v1").first.wait_for()
    page.screenshot(path=str(folder / "console.png"), full_page=True)

    # Activate another search preset on Fusion & rules: the service serves it without a restart.
    page.get_by_role("link", name="Fusion & rules").click()
    settle(page)
    slider = page.locator(".st-key-fusion_search_weight_bm25").get_by_role("slider")
    slider.focus()
    page.keyboard.press("ArrowLeft")
    settle(page)
    page.locator(".st-key-fusion_search_preset_name input").fill("live")
    page.keyboard.press("Enter")
    settle(page)
    page.locator(".st-key-fusion_search_preset_activate").get_by_text("Activate it for serving").click()
    settle(page)
    started = time.time()
    page.get_by_role("button", name="Save as preset").click()
    page.get_by_text("Saved live v1 and made it the served preset.").wait_for()
    deadline = time.time() + 60
    while time.time() < deadline:
        with urllib.request.urlopen(f"{service}/health", timeout=5) as answer:
            health = json.load(answer)
        if health["presets"]["search"]["label"] == "live v1":
            break
        time.sleep(0.5)
    assert health["presets"]["search"]["label"] == "live v1", health
    assert time.time() - started < 15  # served within seconds (the bar: 10 s; the follower looks every 2 s)
    page.get_by_role("link", name="Serving").click()
    settle(page)
    page.locator(".st-key-console_query input").fill("heart")
    page.keyboard.press("Enter")
    settle(page)
    page.get_by_role("button", name="Send", exact=True).click()
    page.get_by_text("preset live v1").first.wait_for(timeout=60_000)


def test_a_trial_judged_with_the_keyboard_then_scored(server, page):
    import os
    import subprocess
    import sys

    from tests.conftest import ROOT

    url, folder, _ = server
    # A second search preset to try against the default (the earlier tests may have saved others).
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{folder / 'demo.db'}"}
    subprocess.run([sys.executable, "-m", "recsys", "presets", "save", "--scope", "search", "--name", "bm25-only",
                    "--config", '{"weights": {"bm25": 1.0, "semantic": 0.0}}'], cwd=ROOT, env=env, check=True,
                   capture_output=True, timeout=120)
    log_in(page, url)
    page.get_by_text("Logged in as admin (admin).").wait_for()
    page.get_by_role("link", name="Trials & judging").click()
    settle(page)
    page.get_by_role("tab", name="Query sets").click()
    page.get_by_text("The catalog's vocabulary").click()
    settle(page)
    page.locator(".st-key-qs_n input").fill("3")
    page.keyboard.press("Enter")
    settle(page)
    page.locator(".st-key-qs_name input").fill("demo words")
    page.keyboard.press("Enter")
    settle(page)
    page.get_by_role("button", name="Save the query set").click()
    page.get_by_text(re.compile(r"Saved demo words v1: 3 queries")).wait_for()
    page.get_by_role("tab", name="New trial").click()
    page.locator(".st-key-trial_name input").fill("words")
    page.locator(".st-key-trial_depth input").fill("3")
    page.get_by_role("button", name="Create the trial").click()
    page.get_by_text(re.compile(r"Created trial \d+, words: \d+ pairs to judge")).wait_for(timeout=120_000)
    pairs = int(re.search(r"(\d+) pairs to judge", page.get_by_text(re.compile("pairs to judge")).inner_text())[1])

    page.get_by_role("tab", name="Judge").click()
    settle(page)
    page.get_by_text(f"You have judged 0 of {pairs} pairs").wait_for()
    page.get_by_role("heading", name="Trials & judging").click()  # the keys go to the page, not a field
    for key, done in (("3", 1), ("0", 2), ("s", 3)):
        page.keyboard.press(key)
        page.get_by_text(f"You have judged {done} of {pairs} pairs").wait_for()
    page.keyboard.press("ArrowLeft")
    page.get_by_text("Going back: your new grade replaces the one you gave.").wait_for()
    page.keyboard.press("2")
    settle(page)
    page.get_by_text(f"You have judged 3 of {pairs} pairs").wait_for()
    page.screenshot(path=str(folder / "judging.png"), full_page=True)

    page.get_by_role("tab", name="Scorecard").click()
    settle(page)
    page.locator("[data-testid=stDataFrame]").filter(has_text="ndcg@10").first.wait_for()
    page.get_by_text(re.compile(r"\d+ pairs graded")).first.wait_for()
    page.screenshot(path=str(folder / "scorecard.png"), full_page=True)


def test_a_campaign_shows_labelled_for_relevant_searches_and_its_click_is_charged(server, page):
    """Issue 19's walk on the demo: a campaign created on Ads, its ad labelled in the Search trial and
    through the service for a relevant query (never for an unrelated one), clicked through the
    request console, its spend on Ads."""
    url, folder, _ = server
    log_in(page, url)
    page.get_by_text("Logged in as admin (admin).").wait_for()
    page.get_by_role("link", name="Ads").click()
    settle(page)
    page.get_by_label("Advertiser", exact=True).fill("Acme")
    page.get_by_label("Name", exact=True).fill("Lunch bags")
    page.get_by_label("Products").first.click()
    for product in ("20728", "20725"):  # LUNCH BAG CARS BLUE, LUNCH BAG RED RETROSPOT
        page.keyboard.type(product)
        page.get_by_role("option", name=re.compile(rf"^{product} · LUNCH BAG", re.IGNORECASE)).click()
    page.keyboard.press("Escape")
    page.get_by_role("button", name="Create the campaign").click()
    created = re.compile(r"Created campaign 1, Lunch bags, of Acme: 2 products, automatic")
    page.get_by_text(created).wait_for()

    # A page of one result: whichever lunch bag the engine (as the tests before left it: another
    # preset, a fine-tuned model) puts first, the other, as relevant, takes slot 1 as an ad.
    page.get_by_role("link", name="Search trial").click()
    settle(page)
    page.locator(".st-key-search_k input").fill("1")
    page.keyboard.press("Enter")
    settle(page)
    page.locator(".st-key-search_query input").fill("lunch bag")
    page.keyboard.press("Enter")
    settle(page)
    ad = re.compile(r"^1\. Sponsored · LUNCH BAG", re.IGNORECASE)  # only the Hybrid column has ads
    page.get_by_text(ad).first.wait_for()
    page.screenshot(path=str(folder / "search_trial_ad.png"), full_page=True)
    page.locator(".st-key-search_query input").fill("christmas")
    page.keyboard.press("Enter")
    settle(page)
    page.get_by_text(re.compile(r"^1\. ", re.IGNORECASE)).first.wait_for()
    assert page.get_by_text(re.compile(r"Sponsored ·")).count() == 0

    page.get_by_role("link", name="Serving").click()
    settle(page)
    page.locator(".st-key-console_query input").fill("lunch bag")
    page.keyboard.press("Enter")
    page.locator(".st-key-console_k input").fill("1")
    page.keyboard.press("Enter")
    settle(page)
    page.get_by_role("button", name="Send", exact=True).click()
    page.get_by_text(re.compile(r"→ 200 in \d+ ms")).wait_for(timeout=60_000)
    page.get_by_text("ad, campaign 1").first.wait_for(state="attached")  # a cell of the canvas grid
    page.get_by_role("button", name="Send click").click()  # the first item: the ad
    charged = re.compile(r"Click on an ad of campaign 1: charged, \d+\.\d\d charged")
    page.get_by_text(charged).wait_for(timeout=30_000)
    page.screenshot(path=str(folder / "console_ad_click.png"), full_page=True)

    page.get_by_role("link", name="Ads").click()
    settle(page)
    page.get_by_text("Spend").first.wait_for()
    body = page.locator("body").inner_text()
    assert re.search(r"Clicks\s+1\b", body), body[:3000]
    page.screenshot(path=str(folder / "ads_page.png"), full_page=True)
