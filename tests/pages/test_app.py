"""app.py: the login gate and the pages each role gets."""

from __future__ import annotations

import pytest

from streamlit.testing.v1 import AppTest

from tests.conftest import ROOT
from tests.pages.conftest import PASSWORD, app_as


def test_app_opens_on_the_login_form(shop):
    app = app_as(None)
    assert not app.exception
    assert app.text_input(key="login_username") is not None
    assert "identity" not in app.session_state


def test_wrong_password_is_refused(shop):
    app = app_as(None)
    app.text_input(key="login_username").input("viewer1")
    app.text_input(key="login_password").input("not-the-password")
    app.button[0].click().run()
    assert [e.value for e in app.error] == ["Wrong username or password."]
    assert "identity" not in app.session_state


def test_login_then_home_shows_the_active_data(shop):
    app = app_as(None)
    app.text_input(key="login_username").input("operator1")
    app.text_input(key="login_password").input(PASSWORD)
    app.button[0].click().run()
    state = app.session_state["identity"]
    assert (state["username"], state["role"]) == ("operator1", "operator") and len(state["token"]) >= 40
    app.switch_page("pages/home.py").run()
    assert not app.exception
    assert [m.label for m in app.metric] == ["catalog (v1)", "events (v2)"]
    assert [m.value for m in app.metric] == ["4 rows", "5 rows"]


@pytest.mark.parametrize("role,allowed", [("admin", True), ("operator", False),
                                          ("merchandiser", False), ("viewer", False)])
def test_only_admins_get_the_accounts_page(shop, role, allowed):
    if allowed:
        app = app_as(role, "pages/admin.py")
        assert "admin1" in app.dataframe[0].value["username"].tolist()
    else:
        with pytest.raises(ValueError, match="Could not find a navigation page"):
            app_as(role, "pages/admin.py")
        # Opened directly, the page refuses too.
        page = AppTest.from_file(str(ROOT / "pages" / "admin.py"), default_timeout=30)
        page.session_state["identity"] = {"username": role + "1", "role": role}
        page.run()
        assert any("does not allow" in e.value for e in page.error)
        assert not page.dataframe


def _create_account(app, username: str, password: str, role: str, advertiser: str = "") -> None:
    """Fill in the admin page's new account form and submit it."""
    app.text_input(key="new_username").input(username)
    app.text_input(key="new_password").input(password)
    app.selectbox(key="new_role").select(role)
    app.text_input(key="new_advertiser").input(advertiser)
    next(b for b in app.button if b.label == "Create").click().run()


def test_admin_creates_an_account(shop):
    app = app_as("admin", "pages/admin.py")
    _create_account(app, "newbie", "newbie-pass-1", "merchandiser")
    assert any("Created newbie" in s.value for s in app.success)
    from recsys.accounts import authenticate

    assert authenticate("newbie", "newbie-pass-1").role == "merchandiser"


def test_admin_creates_an_advertiser_account_naming_its_advertiser(shop):
    app = app_as("admin", "pages/admin.py")
    _create_account(app, "acmeads", "acmeads-pass-1", "advertiser")
    assert any("needs the advertiser it acts for" in e.value for e in app.error)
    _create_account(app, "acmeads", "acmeads-pass-1", "advertiser", "Acme")
    assert any("Created acmeads" in s.value for s in app.success)
    from recsys.accounts import Identity, authenticate

    assert authenticate("acmeads", "acmeads-pass-1") == Identity("acmeads", "advertiser", "Acme")


def test_an_advertiser_sees_its_campaigns_and_nothing_of_the_shop(shop):
    from recsys.accounts import create_account

    create_account("advertiser1", PASSWORD, "advertiser", actor="test", advertiser="Acme")
    app = app_as("advertiser")
    assert not app.exception and app.title[0].value == "Ads"  # it lands on its campaigns
    assert not app_as("advertiser", "pages/account.py").exception
    for page in ("pages/home.py", "pages/trials.py", "pages/data.py"):
        with pytest.raises(ValueError, match="Could not find a navigation page"):
            app_as("advertiser", page)


def _log_in(app, username: str = "operator1") -> None:
    app.text_input(key="login_username").input(username)
    app.text_input(key="login_password").input(PASSWORD)
    next(b for b in app.button if b.label == "Log in").click().run()


def test_a_page_asked_for_while_logged_out_is_the_one_shown_after_logging_in(shop):
    app = app_as(None)
    app.switch_page("pages/data.py").run()
    assert app.text_input(key="login_username") is not None and not app.title[0].value == "Data"
    _log_in(app)
    assert not app.exception
    assert [t.value for t in app.title] == ["Data"]


def test_logging_out_ends_the_login_session_for_good(shop):
    from recsys.accounts import session_identity

    app = app_as(None)
    _log_in(app)
    token = app.session_state["identity"]["token"]
    assert session_identity(token).username == "operator1"
    next(b for b in app.button if b.label == "Log out").click().run()
    assert app.text_input(key="login_username") is not None
    assert session_identity(token) is None  # a copy of the cookie no longer logs anyone in


def test_a_role_change_ends_the_login_at_the_next_click(shop):
    from recsys.accounts import create_account, set_role

    create_account("admin2", PASSWORD, "admin", actor="test")  # the last admin cannot be demoted

    app = app_as(None)
    _log_in(app, "admin1")
    app.switch_page("pages/admin.py").run()
    assert [t.value for t in app.title] == ["Accounts and audit log"]
    set_role("admin1", "viewer", actor="someone-else")
    app.run()
    assert app.text_input(key="login_username") is not None and "identity" not in app.session_state
    _log_in(app, "admin1")
    assert app.session_state["identity"]["role"] == "viewer"


def test_a_missing_artifact_folder_stops_every_page_with_the_reason(db_url, tmp_path, monkeypatch):
    """`streamlit run app.py` started without `python -m recsys app`'s check: the page says why."""
    missing = tmp_path / "not-mounted"
    monkeypatch.setenv("WORKBENCH_ARTIFACTS_DIR", str(missing))
    app = app_as(None)
    assert not app.exception and not app.text_input  # no login form
    shown = [error.value.replace("\\", "") for error in app.error]  # markdown escapes taken out
    assert any(f"WORKBENCH_ARTIFACTS_DIR={missing} does not exist" in text for text in shown), shown

    missing.mkdir()  # mounted: the next run goes on
    app.run()
    assert not app.error and app.text_input
