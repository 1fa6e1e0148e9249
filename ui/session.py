"""Start-up, login state and permission checks shared by every page."""

from __future__ import annotations

import sys

import streamlit as st

from db.engine import database_url, upgrade
from recsys.accounts import ADMIN_USERNAME, Identity, ensure_admin

IDENTITY_KEY = "identity"


@st.cache_resource(show_spinner=False)
def bootstrap(url: str) -> None:
    """Apply migrations and create the first admin, once per server and database."""
    upgrade(url)
    password = ensure_admin(url=url)
    if password:
        # Printed once on the server's console, never shown in the browser.
        print(f"Created the admin account '{ADMIN_USERNAME}' with the password: {password}",
              file=sys.stderr, flush=True)


def start() -> str:
    url = database_url()
    bootstrap(url)
    return url


def identity() -> Identity | None:
    value = st.session_state.get(IDENTITY_KEY)
    if isinstance(value, dict):
        return Identity(value["username"], value["role"])
    return value


def log_in(who: Identity) -> None:
    st.session_state[IDENTITY_KEY] = {"username": who.username, "role": who.role}


def log_out() -> None:
    st.session_state.pop(IDENTITY_KEY, None)


def require(permission: str) -> Identity:
    """The logged-in identity, or stop the page when it lacks `permission`."""
    who = identity()
    if who is None:
        st.warning("Please log in.")
        st.stop()
    if not who.can(permission):
        st.error(f"Your role ({who.role}) does not allow this page.")
        st.stop()
    return who
