"""Ads: sponsored-products campaigns, their status and edits, and per campaign what was served,
clicked and spent against the budgets."""

import streamlit as st

from recsys.ads.campaigns import list_campaigns
from recsys.services import database_url
from ui import ads
from ui.session import require
from ui.text import md

who = require("ads", "advertise")
url = database_url()
st.title("Ads")
st.caption("A campaign promotes products of the active catalog in the sponsored slots of search results and "
           "recommendations, paying per click up to its maximum cost per click, within its daily budget (per "
           "UTC day) and its total budget. Times are UTC.")
if who.advertiser and not who.can("ads"):
    st.caption(f"Campaigns of **{md(who.advertiser)}**.")
ads.flash()
campaigns = list_campaigns(who, url=url)  # an advertiser's account gets its own advertiser's only
if not campaigns:
    st.info("No campaign yet. Create one below: choose a few products, a maximum cost per click and a daily "
            "budget.")
else:
    ads.campaigns_table(campaigns)
    st.subheader("Campaign")
    campaign = ads.choose(campaigns)
    ads.status_buttons(url, who, campaign)
    ads.report(url, who, campaign)
    with st.expander("Change the bid, budgets, days or targeting"):
        ads.edit_form(url, who, campaign)
st.subheader("New campaign")
ads.create_form(url, who, campaigns)
if who.can("ads"):  # the shop's own quality: for those who run it, not for an advertiser
    ads.organic_cost(url)
