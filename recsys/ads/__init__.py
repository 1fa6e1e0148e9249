"""Sponsored products: advertisers' campaigns promote catalog products into marked slots of the
search and recommendation pages.

An ad is eligible only when its product is relevant to the request (a floor on the same engines'
scores); eligible ads are ranked by bid x predicted click-through x relevance and priced by a
generalized second price (`auction`), click-through is predicted from the recorded impressions and
clicks corrected for position bias (`ctr`), and spend is paced over the day within daily and total
budgets (`pacing`). Those pure modules read no SQL, so the service, the pages and the benchmark
(bench/ads_auction.py) share them. `campaigns` keeps campaigns, the ads served and the clicks
charged in SQL, within budgets, and reports on them, checking on every action that an advertiser
touches only its own campaigns; `cli` is `python -m recsys ads ...`; `serving` fills a served
list's sponsored slots.
"""
