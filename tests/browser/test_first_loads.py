"""Every page's first load after `recsys init` (what `make run` does) and the slider moves on
Fusion & rules, timed in a real browser.

This runs first of the browser tests, on a server that no page has been opened on. It checks that
each page renders without an exception and records the times; it asserts no time (timings on a
shared 2-core machine are noisy). The table is printed (``pytest -s``) and written to
``bench/results/page_times.json``; docs/benchmarks.md ("First page loads") quotes it.
"""

from __future__ import annotations

import json
import re
import time

import pytest

from tests.browser.conftest import IDLE, PASSWORD
from tests.conftest import ROOT

pytestmark = pytest.mark.browser
RESULTS = ROOT / "bench" / "results" / "page_times.json"
RUNNING = "document.querySelector('[data-testid=stApp]')?.dataset.testScriptState === 'running'"
PAGES = [("Data", "Data"), ("Search trial", "Search trial"), ("Trials & judging", "Trials & judging"),
         ("Experiments", "Experiments"), ("Recommendations", "Recommendations"),
         ("Similar items", "Similar items"), ("Fusion & rules", "Fusion & rules"), ("Evaluation", "Evaluation"),
         ("Fine-tune", "Fine-tune"), ("Monitoring", "Monitoring"), ("Serving", "Serving"), ("Jobs", "Jobs"),
         ("Ads", "Ads"), ("Accounts", "Accounts and audit log")]


def finish_run(page) -> None:
    """Wait for the script run the last action started (if it was not over at once), its spinners
    and the browser's drawing of what it sent."""
    try:
        page.wait_for_function(RUNNING, timeout=3_000)
    except Exception:  # the run had ended before we looked, or the action started none
        pass
    page.wait_for_selector(IDLE, timeout=600_000)
    page.locator('[data-testid="stSpinner"]').first.wait_for(state="detached", timeout=600_000)
    page.wait_for_selector(IDLE, timeout=600_000)
    # Widgets of a kind not drawn before show a skeleton until the browser has loaded their code.
    page.locator('[data-testid="stSkeleton"]').first.wait_for(state="detached", timeout=600_000)


def timed(page, action) -> float:
    """Seconds from `action` until the script run it started has finished and drawn."""
    started = time.perf_counter()
    action()
    finish_run(page)
    return round(time.perf_counter() - started, 2)


def no_exception(page, where: str) -> None:
    assert page.locator('[data-testid="stException"]').count() == 0, f"{where}: {page.content()[:2000]}"


def choose(page, key: str, text: str) -> None:
    """Type into the selectbox with `key` and take the first option."""
    page.locator(f".st-key-{key}").click()
    page.keyboard.type(text)
    page.get_by_role("option").first.click()


def refused_in(page) -> float | None:
    """The "re-fused in N ms" the metrics panel reports for its last re-fusion, in seconds."""
    found = re.search(r"re-fused in (\d+) ms", page.locator("body").inner_text())
    return None if found is None else int(found.group(1)) / 1000


def test_every_page_loads_and_the_sliders_move_with_the_times_recorded(server, page):
    url, folder, _ = server
    times: dict[str, float | None] = {}
    # The browser's first visit loads Streamlit's own code as well: timed apart from logging in.
    times["open the app (login form)"] = timed(page, lambda: page.goto(url))
    page.get_by_label("Username", exact=True).fill("admin")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    times["log in, Home"] = timed(page, lambda: page.get_by_role("button", name="Log in").click())
    page.get_by_text("Logged in as admin (admin).").wait_for()
    navigation = page.locator('[data-testid="stSidebarNav"]')
    for link, title in PAGES:
        times[link] = timed(page, lambda link=link: navigation.get_by_role("link", name=link, exact=True).click())
        page.get_by_role("heading", name=title).first.wait_for()
        no_exception(page, link)
        if link == "Search trial":
            def search():
                page.locator(".st-key-search_query input").fill("heart")
                page.keyboard.press("Enter")
            times["Search trial: first query"] = timed(page, search)
            page.get_by_role("heading", name="Hybrid").wait_for()
        elif link == "Recommendations":
            def customer():  # the shop's id, pseudonymised by the page as the data was
                page.locator(".st-key-recs_customer_id input").fill("12347")
                page.keyboard.press("Enter")
            times["Recommendations: a customer"] = timed(page, customer)
            shown = page.locator("body").inner_text()
            assert "products of the customer" in shown and "lists: 0 products" not in shown, shown[:2000]
        elif link == "Similar items":
            times["Similar items: a product"] = timed(page, lambda: choose(page, "similar_product", "85123A"))
            page.get_by_role("heading", name="Hybrid").wait_for()
        elif link == "Fusion & rules":
            for scope, source in (("search", "bm25"), ("recommendations", "ease")):
                if scope == "recommendations":
                    times["Fusion & rules: recommendations scope"] = timed(
                        page, lambda: page.locator(".st-key-fusion_scope").get_by_text("Recommendations").click())
                    times["Fusion & rules: recommendations metrics re-fused in"] = refused_in(page)
                slider = page.locator(f".st-key-fusion_{scope}_weight_{source}").get_by_role("slider")
                for move in (1, 2, 3):
                    def nudge():
                        slider.focus()
                        page.keyboard.press("ArrowLeft")
                    times[f"Fusion & rules: {scope} slider move {move}"] = timed(page, nudge)
                    no_exception(page, f"{scope} slider")
                if scope == "recommendations":
                    times["Fusion & rules: recommendations metrics re-fused in (last move)"] = refused_in(page)
        no_exception(page, link)
    page.screenshot(path=str(folder / "last_page.png"), full_page=True)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(times, indent=2))
    print("\n" + "\n".join(f"{what:<60} {'-' if seconds is None else f'{seconds:6.2f} s'}"
                           for what, seconds in times.items()))
