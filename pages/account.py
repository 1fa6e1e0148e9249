"""My account: who I am, and a new password (the current one asked first)."""

import streamlit as st

from recsys.accounts import AccountError, change_password
from recsys.services import database_url
from ui.session import identity, token
from ui.text import md

who = identity()
if who is None:
    st.warning("Please log in.")
    st.stop()
st.title("My account")
st.markdown(f"Logged in as **{md(who.username)}**, role **{who.role}**.")
with st.form("password_form", clear_on_submit=True):
    st.subheader("Change my password")
    current = st.text_input("Current password", type="password", key="current_password")
    new = st.text_input("New password", type="password", key="new_password_own")
    again = st.text_input("New password again", type="password", key="new_password_again")
    if st.form_submit_button("Change"):
        if new != again:
            st.error("The two new passwords differ.")
        else:
            try:
                change_password(who.username, current, new, keep_token=token(), url=database_url())
            except AccountError as error:
                st.error(f"The password was not changed: {md(error)}.")
            else:
                st.success("Password changed. Your other open sessions have ended; this one goes on.")
