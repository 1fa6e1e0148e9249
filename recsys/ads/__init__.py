"""Sponsored products: advertisers' campaigns placed in search results and recommendations.

`campaigns` keeps campaigns, the ads served and the clicks charged in SQL, within budgets, and
reports on them, checking on every action that an advertiser touches only its own campaigns; `cli`
is `python -m recsys ads ...`. The auction (`auction`), the predicted click-through (`ctr`) and
pacing (`pacing`) decide which eligible ads fill a list's sponsored slots and at what price.
"""
