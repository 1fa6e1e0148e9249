"""Admin: accounts, roles, deactivation, password resets, lockouts and the audit log."""

import streamlit as st

from recsys.accounts import (ROLES, AccountError, audit_log, create_account, list_accounts, reset_password,
                             set_active, set_role, unlock)
from recsys.erasure import forget
from recsys.services import database_url
from ui.session import require
from ui.text import md

who = require("admin")
url = database_url()
st.title("Accounts and audit log")
if "admin_flash" in st.session_state:
    st.success(st.session_state.pop("admin_flash"))
accounts = list_accounts(url=url)
st.dataframe(accounts, hide_index=True, width="stretch", column_config={
    "locked_until": st.column_config.DatetimeColumn("locked until (UTC)",
                                                    help="locked after too many wrong passwords in a row")})
names = accounts["username"].tolist()


def done(text: str) -> None:
    """Show `text` after running the page again, so the table above shows the change."""
    st.session_state["admin_flash"] = text
    st.rerun()


left, right = st.columns(2)
with left.form("create_account_form", clear_on_submit=True):
    st.subheader("New account")
    username = st.text_input("Username", key="new_username", max_chars=128)
    password = st.text_input("Password", type="password", key="new_password")
    role = st.selectbox("Role", ROLES, index=ROLES.index("viewer"), key="new_role")
    advertiser = st.text_input("Advertiser", key="new_advertiser", max_chars=128,
                               help="role advertiser: the supplier or brand whose campaigns it manages")
    if st.form_submit_button("Create"):
        try:
            create_account(username, password, role, actor=who.username, advertiser=advertiser, url=url)
        except AccountError as error:
            st.error(md(str(error)))
        else:
            done(f"Created {md(username)} ({role}).")
with right.form("role_form"):
    st.subheader("Change a role")
    name = st.selectbox("Account", names, key="role_username")
    new_role = st.selectbox("Role", ROLES, key="role_role")
    new_advertiser = st.text_input("Advertiser", key="role_advertiser", max_chars=128,
                                   help="role advertiser: the supplier or brand whose campaigns it manages")
    if st.form_submit_button("Change"):
        try:
            set_role(name, new_role, actor=who.username, advertiser=new_advertiser, url=url)
        except AccountError as error:
            st.error(md(str(error)))
        else:
            done(f"{md(name)} is now {new_role}; their open sessions ended.")

left, right = st.columns(2)
with left.form("active_form"):
    st.subheader("Deactivate or reactivate")
    st.caption("A deactivated account cannot log in, and its open sessions end at their next click.")
    name = st.selectbox("Account", names, key="active_username")
    deactivate, reactivate, unlocking = st.columns(3)
    chosen = None
    if deactivate.form_submit_button("Deactivate"):
        chosen = "deactivate"
    if reactivate.form_submit_button("Reactivate"):
        chosen = "reactivate"
    if unlocking.form_submit_button("Unlock", help="lift the lock after too many wrong passwords"):
        chosen = "unlock"
    if chosen:
        try:
            if chosen == "unlock":
                unlock(name, actor=who.username, url=url)
            else:
                set_active(name, chosen == "reactivate", actor=who.username, url=url)
        except AccountError as error:
            st.error(md(str(error)))
        else:
            done({"deactivate": f"Deactivated {md(name)}.", "reactivate": f"Reactivated {md(name)}.",
                  "unlock": f"Unlocked {md(name)}."}[chosen])
with right.form("reset_form", clear_on_submit=True):
    st.subheader("Reset a password")
    name = st.selectbox("Account", names, key="reset_username")
    password = st.text_input("New password", type="password", key="reset_password")
    if st.form_submit_button("Reset"):
        try:
            reset_password(name, password, actor=who.username, url=url)
        except AccountError as error:
            st.error(md(str(error)))
        else:
            done(f"Set a new password for {md(name)}; their open sessions ended and any lock is lifted.")

with st.form("forget_form", clear_on_submit=True):
    st.subheader("Forget a customer")
    st.caption("Deletes every row that names the customer (behaviour events in every version, search logs, "
               "live events and what the REST service served them), marks the data versions and models "
               "built from them, and fits the active engines again. The audit log keeps counts and a "
               "random erasure id, never the customer's id.")
    customer = st.text_input("Customer id", key="forget_customer", max_chars=128,
                             help="As the shop knows it (pseudonymised here, as every stored id is), "
                                  "or the pseudonym the workbench shows (c- and 20 hex digits).")
    sure = st.checkbox("I understand this cannot be undone", key="forget_sure")
    if st.form_submit_button("Forget"):
        if not sure:
            st.error("Tick the box to confirm: forgetting cannot be undone.")
        else:
            try:
                erased = forget(url, customer, who.username)
            except ValueError as error:
                st.error(md(str(error)))
            else:
                rows = ", ".join(f"{count:,} {table.replace('_', ' ')}"
                                 for table, count in erased.rows.items() if count)
                rows = rows or "no rows (the id is nowhere)"
                done(f"Forgot customer {erased.fingerprint}: {rows}."
                     + (f" Marked dataset versions {', '.join(map(str, erased.dataset_versions))}."
                        if erased.dataset_versions else "")
                     + (f" Models to train again: {md(', '.join(erased.models))}." if erased.models else "")
                     + (f" The engines are being fitted again (job {erased.engines_job})."
                        if erased.engines_job else ""))

st.subheader("Audit log")
st.dataframe(audit_log(url=url), hide_index=True, width="stretch")
