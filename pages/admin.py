"""Admin: accounts, roles and the audit log."""

import streamlit as st

from recsys.accounts import ROLES, AccountError, audit_log, create_account, list_accounts, set_role
from recsys.services import database_url
from ui.session import require

who = require("admin")
url = database_url()
st.title("Accounts and audit log")
accounts = list_accounts(url=url)
st.dataframe(accounts, hide_index=True, width="stretch")

left, right = st.columns(2)
with left.form("create_account_form", clear_on_submit=True):
    st.subheader("New account")
    username = st.text_input("Username", key="new_username")
    password = st.text_input("Password", type="password", key="new_password")
    role = st.selectbox("Role", ROLES, index=ROLES.index("viewer"), key="new_role")
    if st.form_submit_button("Create"):
        try:
            create_account(username, password, role, actor=who.username, url=url)
            st.success(f"Created {username} ({role}).")
        except AccountError as error:
            st.error(str(error))
with right.form("role_form"):
    st.subheader("Change a role")
    name = st.selectbox("Account", accounts["username"].tolist(), key="role_username")
    new_role = st.selectbox("Role", ROLES, key="role_role")
    if st.form_submit_button("Change"):
        set_role(name, new_role, actor=who.username, url=url)
        st.success(f"{name} is now {new_role}.")

st.subheader("Audit log")
st.dataframe(audit_log(url=url), hide_index=True, width="stretch")
