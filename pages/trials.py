"""Trials & judging: query sets, trials of search configurations, blind judging, scorecards."""

import streamlit as st

from recsys.services import database_url
from ui import trials
from ui.session import require

who = require("judge")
url = database_url()
st.title("Trials & judging")
if not who.can("evaluate"):  # a grader judges and sees nothing else
    st.caption("Grade how well each product answers its query. You are not told which search found it.")
    judge_tab, sbs_tab = st.tabs(["Judge", "Side by side"])
    with judge_tab:
        trials.judge(url, who)
    with sbs_tab:
        trials.side_by_side(url, who)
    st.stop()
st.caption("Try search configurations on a set of queries: their results are pooled and judged blind, "
           "then each configuration is scored on the grades.")
judge_tab, sbs_tab, score_tab, trial_tab, sets_tab = st.tabs(["Judge", "Side by side", "Scorecard", "New trial",
                                                               "Query sets"])
with judge_tab:
    trials.judge(url, who)
with sbs_tab:
    trials.side_by_side(url, who)
with score_tab:
    trials.scorecard(url, who)
with trial_tab:
    trials.trial_builder(url, who)
with sets_tab:
    trials.query_set_builder(url, who)
    trials.query_sets_table(url)
