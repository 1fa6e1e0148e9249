"""Start-up, the login and its cookie, and the permission checks shared by every page.

A login survives a reload and a bookmarked page's URL: logging in starts a login session
(`recsys.accounts.start_session`) whose random token the browser keeps in the cookie
``workbench_session`` (SameSite=Strict, Secure over https, expiring with the session); only its
SHA-256 is stored. A new browser session (a reload, a link opened in a new tab) reads the cookie
from its first request and is logged in again. Every run checks the session and the account
again, so a logout elsewhere, an expired session or a role change (which ends the account's
sessions) takes effect at the next click. The cookie is set and cleared by a line of JavaScript
(`st.html`): Streamlit offers no server-side way to set one.
"""

from __future__ import annotations

import sys

import streamlit as st

from recsys.accounts import (ADMIN_USERNAME, Identity, LoginRefused, authenticate, client_key,
                             current_identity, end_session, ensure_admin, session_hours, session_identity,
                             start_session)
from recsys import artifacts
from recsys.services import database_url, upgrade
from ui import warmup
from ui.text import md

IDENTITY_KEY = "identity"
COOKIE = "workbench_session"
COOKIE_KEY = "session_cookie"  # the cookie this session still has to write: a token, or "" to clear it
LOGGED_OUT_KEY = "logged_out"  # this browser session logged out: the cookie read at its start is stale


@st.cache_resource(show_spinner=False)
def bootstrap(url: str) -> None:
    """Check the artifact folder, apply migrations, create the first admin and start warming up, once
    per server and database (ArtifactsDirUnusable naming the setting and the path)."""
    artifacts.check()
    upgrade(url)
    password = ensure_admin(url=url)
    if password:
        # Printed once on the server's console, never shown in the browser.
        print(f"Created the admin account '{ADMIN_USERNAME}' with the password: {password}",
              file=sys.stderr, flush=True)
    warmup.start(url)


def start() -> str:
    """Bootstrap once per server (the artifact folder checked, the database migrated), then write
    the login cookie.

    An artifact folder that is missing or read-only stops every page with the reason, checked again
    at each run until it is usable (`python -m recsys app` refuses to start on one, exit status 2;
    `streamlit run app.py` alone cannot)."""
    url = database_url()
    try:
        bootstrap(url)
    except artifacts.ArtifactsDirUnusable as error:  # not cached: the next run checks again
        st.error(f"The workbench cannot run: {md(error)}.")
        st.stop()
    write_cookie()
    return url


def identity() -> Identity | None:
    """Who is logged in, checked against the database on every run; None when nobody is.

    A session without an identity yet is logged in from its cookie when the cookie's login
    session is still valid.
    """
    state = st.session_state.get(IDENTITY_KEY)
    if state is None:
        token = st.context.cookies.get(COOKIE)
        if st.session_state.get(LOGGED_OUT_KEY) or not isinstance(token, str) or not token:
            return None  # (AppTest's stand-in client answers with a mock, not a string)
        who = session_identity(token)
        if who is not None:
            _remember(who, token)
        return who
    token = state.get("token")
    who = session_identity(token) if token else current_identity(state["username"])
    if who is None:  # logged out elsewhere, expired, deactivated, or the role changed
        log_out()
        return None
    _remember(who, token)
    return who


def _remember(who: Identity, token: str | None) -> None:
    st.session_state[IDENTITY_KEY] = {"username": who.username, "role": who.role, "token": token}


def log_in(who: Identity) -> None:
    token = start_session(who)
    _remember(who, token)
    st.session_state[COOKIE_KEY] = token
    st.session_state.pop(LOGGED_OUT_KEY, None)


def log_out() -> None:
    state = st.session_state.pop(IDENTITY_KEY, None) or {}
    if state.get("token"):
        end_session(state["token"], actor=state.get("username", "?"))
    st.session_state[COOKIE_KEY] = ""
    st.session_state[LOGGED_OUT_KEY] = True


def write_cookie() -> None:
    """Set or clear the login cookie in the browser when a login or logout asked for it."""
    token = st.session_state.pop(COOKIE_KEY, None)
    if token is None:
        return
    max_age = int(session_hours() * 3600) if token else 0
    st.html(f"""<script>
document.cookie = "{COOKIE}={token}; Path=/; Max-Age={max_age}; SameSite=Strict"
    + (location.protocol === "https:" ? "; Secure" : "");
</script>""", unsafe_allow_javascript=True)


def login_form() -> None:
    """The login form; after logging in, the same run shows the page the URL asked for."""
    st.title("Shop search & recommendation workbench")
    with st.form("login_form"):
        username = st.text_input("Username", key="login_username")
        password = st.text_input("Password", type="password", key="login_password")
        submitted = st.form_submit_button("Log in", type="primary")
    if submitted:
        try:
            who = authenticate(username, password, client=client_address())
        except LoginRefused as refused:
            st.error(f"Not logged in: {md(str(refused))}.")
            return
        if who is None:
            st.error("Wrong username or password.")
        else:
            log_in(who)
            st.rerun()
    st.caption("The first admin's password is printed once in the terminal that started the app, "
               "or set with WORKBENCH_ADMIN_PASSWORD.")


def client_address() -> str | None:
    """Who login throttling counts this browser as (`recsys.accounts.client_key`)."""
    address = st.context.ip_address
    forwarded = st.context.headers.get("X-Forwarded-For")
    return client_key(address if isinstance(address, str) else None,  # (AppTest answers with a mock)
                      forwarded if isinstance(forwarded, str) else None)


def token() -> str | None:
    """The login session token of this browser session, if any."""
    state = st.session_state.get(IDENTITY_KEY) or {}
    return state.get("token")


def require(*permissions: str) -> Identity:
    """The logged-in identity, or stop the page when it has none of `permissions`."""
    who = identity()
    if who is None:
        st.warning("Please log in.")
        st.stop()
    if not any(who.can(permission) for permission in permissions):
        st.error(f"Your role ({who.role}) does not allow this page.")
        st.stop()
    return who
