"""What the ads cost organic quality: nDCG@k of judged pages with ads against without."""

from __future__ import annotations

import pandas as pd
import pytest

from recsys.accounts import Identity
from recsys.ads import campaigns
from recsys.ads.quality import organic_cost
from recsys.ads.serving import AdServer
from recsys.fusion.sponsored import SponsoredSlots

OPERATOR = Identity("op", "operator")
SLOTS = SponsoredSlots.from_dict({"positions": [1], "relevance_floor": 0.3})
JUDGMENTS = pd.DataFrame({"query": ["coffee mug", "coffee mug", "cordless drill"],
                          "product_id": ["P01", "P02", "P07"], "grade": [3.0, 1.0, 3.0]})


def cost(shop: str, engine) -> dict:
    return organic_cost(engine.retriever, JUDGMENTS, AdServer(shop), SLOTS, titles=engine.titles, k=1)


def test_an_ad_for_a_less_relevant_product_costs_its_page_ndcg(served_shop, engine):
    assert cost(served_shop, engine)["change"] == 0  # no campaign: the same pages
    campaigns.create_campaign(OPERATOR, advertiser="Acme", name="Blue mugs", products=["P02"], max_cpc=0.5,
                              daily_budget=5.0, url=served_shop)
    found = cost(served_shop, engine)
    # "coffee mug": the red mug (grade 3) alone on a page of one, then the blue mug's ad (grade 1,
    # the lowest: no gain) in its place: nDCG 1 -> 0. "cordless drill": no relevant ad, 1 -> 1.
    assert found["queries"] == 2 and found["pages_with_ads"] == 1 and found["ads_shown"] == 1
    assert found["ndcg@1_without"] == pytest.approx(1.0) and found["ndcg@1_with"] == pytest.approx(0.5)
    assert found["change"] == pytest.approx(-0.5)
    assert campaigns.report(OPERATOR, url=served_shop).campaigns[0].impressions == 0  # nothing recorded
