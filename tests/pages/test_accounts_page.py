"""Accounts as an admin and a user manage them in the browser: deactivate, unlock, reset, change."""

from __future__ import annotations

from recsys.accounts import MAX_FAILED_LOGINS, authenticate, session_identity
from tests.pages.conftest import PASSWORD, app_as


def _button(app, label: str):
    return next(button for button in app.button if button.label == label)


def _log_in(app, username: str, password: str = PASSWORD) -> None:
    app.text_input(key="login_username").input(username)
    app.text_input(key="login_password").input(password)
    _button(app, "Log in").click().run()


def test_a_locked_account_says_so_at_the_login_and_an_admin_unlocks_it(shop):
    app = app_as(None)
    for _ in range(MAX_FAILED_LOGINS):
        _log_in(app, "viewer1", "not-the-password")
    _log_in(app, "viewer1")  # the right password, too late
    assert any("too many wrong passwords for 'viewer1'" in error.value for error in app.error)
    assert "identity" not in app.session_state
    admin = app_as("admin", "pages/admin.py")
    table = admin.dataframe[0].value.set_index("username")
    assert table.loc["viewer1", "locked_until"] is not None
    admin.selectbox(key="active_username").select("viewer1")
    _button(admin, "Unlock").click().run()
    assert any("Unlocked viewer1." == success.value for success in admin.success)
    _log_in(app, "viewer1")
    assert app.session_state["identity"]["username"] == "viewer1"


def test_an_admin_deactivates_an_account_and_its_open_session_ends(shop):
    user = app_as(None)
    _log_in(user, "operator1")
    token = user.session_state["identity"]["token"]
    admin = app_as("admin", "pages/admin.py")
    admin.selectbox(key="active_username").select("operator1")
    _button(admin, "Deactivate").click().run()
    assert not admin.exception and any("Deactivated operator1." == s.value for s in admin.success)
    assert bool(admin.dataframe[0].value.set_index("username").loc["operator1", "active"]) is False
    user.run()  # the next click
    assert "identity" not in user.session_state and session_identity(token) is None
    admin.selectbox(key="active_username").select("admin1")
    _button(admin, "Deactivate").click().run()
    assert any("your own account" in error.value for error in admin.error)
    admin.selectbox(key="reset_username").select("operator1")
    admin.text_input(key="reset_password").input("a-new-password")
    _button(admin, "Reset").click().run()
    admin.selectbox(key="active_username").select("operator1")
    _button(admin, "Reactivate").click().run()
    assert authenticate("operator1", "a-new-password").role == "operator"


def test_a_user_changes_their_own_password(shop):
    app = app_as(None)
    _log_in(app, "merchandiser1")
    app.switch_page("pages/account.py").run()
    assert not app.exception and app.title[0].value == "My account"
    app.text_input(key="current_password").input("not-it")
    app.text_input(key="new_password_own").input("brand-new-pass")
    app.text_input(key="new_password_again").input("brand-new-pass")
    _button(app, "Change").click().run()
    assert any("current password is not right" in error.value for error in app.error)
    app.text_input(key="current_password").input(PASSWORD)
    app.text_input(key="new_password_own").input("brand-new-pass")
    app.text_input(key="new_password_again").input("brand-new-pass")
    _button(app, "Change").click().run()
    assert any(success.value.startswith("Password changed.") for success in app.success)
    app.run()
    assert app.session_state["identity"]["username"] == "merchandiser1"  # this session goes on
    assert authenticate("merchandiser1", "brand-new-pass") is not None


def test_an_admin_forgets_a_customer_and_sees_the_counts(shop, monkeypatch):
    monkeypatch.setenv("WORKBENCH_FIT_ON_ACTIVATE", "0")
    admin = app_as("admin", "pages/admin.py")
    admin.text_input(key="forget_customer").input("u1")
    _button(admin, "Forget").click().run()
    assert any("Tick the box" in error.value for error in admin.error)
    admin.text_input(key="forget_customer").input("u1")
    admin.checkbox(key="forget_sure").check()
    _button(admin, "Forget").click().run()
    assert not admin.exception
    done = next(success.value for success in admin.success if success.value.startswith("Forgot customer"))
    assert done.startswith("Forgot customer erasure-") and ": 2 events, 1 users." in done
    audit = admin.dataframe[-1].value
    forgotten = audit[audit["action"] == "forget_customer"]
    assert forgotten["target"].tolist() == [done.split()[2].rstrip(":")]
    assert "u1" not in audit.astype(str).to_string()
