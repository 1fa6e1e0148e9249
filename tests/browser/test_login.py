"""A login survives a reload and a page's URL, returns to the page asked for, and ends for good
at logout."""

from __future__ import annotations

import pytest

from tests.browser.conftest import IDLE, PASSWORD, log_in, settle

pytestmark = pytest.mark.browser


def _logged_in_on(page, title: str) -> None:
    page.get_by_role("heading", name=title).first.wait_for()
    page.get_by_text("admin (admin)", exact=True).wait_for()  # the sidebar's caption
    assert page.get_by_role("button", name="Log in").count() == 0


def test_reloading_or_opening_a_page_keeps_the_login_and_the_page(server, page):
    url, folder, _ = server
    log_in(page, url)
    _logged_in_on(page, "Workbench")
    page.locator('[data-testid="stSidebarNav"]').get_by_role("link", name="Serving", exact=True).click()
    _logged_in_on(page, "Serving")
    assert page.url.endswith("/serving")

    page.reload()  # F5: a new Streamlit session, logged in again from the cookie
    page.wait_for_selector(IDLE)
    _logged_in_on(page, "Serving")
    page.goto(f"{url}/monitoring")  # a bookmark, or a URL typed into the bar
    page.wait_for_selector(IDLE)
    _logged_in_on(page, "Monitoring")
    cookie = next(c for c in page.context.cookies() if c["name"] == "workbench_session")
    assert cookie["sameSite"] == "Strict" and cookie["expires"] > 0 and len(cookie["value"]) >= 40

    page.get_by_role("button", name="Log out").click()
    page.get_by_role("button", name="Log in").wait_for()
    assert not [c for c in page.context.cookies() if c["name"] == "workbench_session"]
    page.reload()
    page.get_by_role("button", name="Log in").wait_for()

    # A copy of the cookie taken before the logout logs nobody in: the server ended its session.
    page.context.add_cookies([{**cookie}])
    page.goto(f"{url}/monitoring")
    page.get_by_role("button", name="Log in").wait_for()
    page.screenshot(path=str(folder / "logged_out.png"), full_page=True)


def test_a_page_opened_while_logged_out_is_shown_after_logging_in(server, page):
    url, _, _ = server
    page.goto(f"{url}/finetune")
    page.get_by_label("Username", exact=True).fill("admin")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    settle(page)
    _logged_in_on(page, "Fine-tune")
    assert page.url.endswith("/finetune")
