"""Log in."""

import streamlit as st

from recsys.accounts import authenticate
from ui.session import log_in

st.title("Shop search & recommendation workbench")
with st.form("login_form"):
    username = st.text_input("Username", key="login_username")
    password = st.text_input("Password", type="password", key="login_password")
    submitted = st.form_submit_button("Log in", type="primary")
if submitted:
    who = authenticate(username, password)
    if who is None:
        st.error("Wrong username or password.")
    else:
        log_in(who)
        st.rerun()
st.caption("The first admin's password is printed once in the terminal that started the app, "
           "or set with WORKBENCH_ADMIN_PASSWORD.")
