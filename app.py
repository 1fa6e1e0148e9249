"""The workbench: a login gate, then the pages the account's role may see.

Logged out, every page's URL still resolves (hidden from the menu) and the login form stands in
for it, so a bookmarked or reloaded page is the one shown after logging in.
"""

import streamlit as st

from ui.monitoring import firing_alerts_notice
from ui.session import identity, log_out, login_form, start
from ui.text import md
from ui.warmup import drawing


def pages_for(who) -> list:
    shop = who is None or who.can("view")  # graders and advertisers see nothing of the shop's operation
    grader = not shop and who.can("judge")  # judges search trials' results, and sees nothing else
    trials = st.Page("pages/trials.py", title="Trials & judging", icon=":material/fact_check:", default=grader)
    advertiser = not shop and not grader and who.can("advertise")  # lands on its campaigns
    ads = st.Page("pages/ads.py", title="Ads", icon=":material/campaign:", default=advertiser)
    account = st.Page("pages/account.py", title="My account", icon=":material/person:",
                      default=not shop and not grader and not advertiser)
    if not shop:
        if grader:
            return [trials, account]
        return [ads, account] if advertiser else [account]
    experiments = ([st.Page("pages/experiments.py", title="Experiments", icon=":material/science:")]
                   if who is None or who.can("evaluate") else [])
    pages = [st.Page("pages/home.py", title="Home", icon=":material/home:", default=True),
             st.Page("pages/data.py", title="Data", icon=":material/database:"),
             st.Page("pages/search_trial.py", title="Search trial", icon=":material/search:"),
             trials, *experiments,
             st.Page("pages/recommendations.py", title="Recommendations", icon=":material/recommend:"),
             st.Page("pages/similar_items.py", title="Similar items", icon=":material/join_inner:"),
             st.Page("pages/fusion.py", title="Fusion & rules", icon=":material/tune:"),
             st.Page("pages/evaluation.py", title="Evaluation", icon=":material/query_stats:"),
             st.Page("pages/finetune.py", title="Fine-tune", icon=":material/model_training:"),
             st.Page("pages/monitoring.py", title="Monitoring", icon=":material/monitoring:"),
             st.Page("pages/serving.py", title="Serving", icon=":material/api:"),
             st.Page("pages/jobs.py", title="Jobs", icon=":material/pending_actions:")]
    if who is None or who.can("ads"):
        pages.append(ads)
    if who is None or who.can("admin"):
        pages.append(st.Page("pages/admin.py", title="Accounts", icon=":material/group:"))
    return [*pages, account]


st.set_page_config(page_title="Search & recommendation workbench", layout="wide")
with drawing():  # the server's warm-up waits meanwhile
    start()
    who = identity()
    if who is None:
        st.navigation(pages_for(None), position="hidden")
        login_form()
    else:
        page = st.navigation(pages_for(who), expanded=True)  # every page listed: no "View more" to click
        st.sidebar.caption(f"{md(who.username)} ({who.role})")
        if who.can("view"):  # a grader sees nothing of the shop's operation
            firing_alerts_notice()
        if st.sidebar.button("Log out", key="logout"):
            log_out()
            st.rerun()
        page.run()
