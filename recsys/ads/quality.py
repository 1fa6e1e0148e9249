"""What sponsored products cost the organic quality of search pages.

For each judged query: the page the search preset serves (the top k), and the same page with the
ads the current campaigns would win placed in it (`AdServer.preview`: not paced, no frequency cap,
nothing recorded), cut to the same k. Both are scored with nDCG@k against the judgments, a sponsored
product counting with its own judged grade (an ad for a relevant product costs little; one for an
unjudged product counts as not relevant). The difference is what the ads cost a shopper, in the
same measure the merchandisers tune the organic ranking by.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from recsys.ads.serving import AdServer
from recsys.evaluation.metrics import ndcg_per_query
from recsys.evaluation.search import graded_qrels
from recsys.fusion.sponsored import SponsoredSlots

MAX_QUERIES = 500  # judged queries measured, at most (a sample, in a fixed order, beyond)


def organic_cost(retriever, judgments: pd.DataFrame, server: AdServer, slots: SponsoredSlots, *,
                 titles: Mapping[str, str], k: int = 10, max_queries: int = MAX_QUERIES) -> dict:
    """nDCG@k of the judged queries' pages without and with ads (see the module docstring).

    `retriever` is the hybrid search as served (its fusion the search preset's); `judgments` has
    query, product_id, grade. Returns {"queries", "pages_with_ads", "ads_shown", "ndcg_without",
    "ndcg_with", "change"}: the means over the queries with a judged relevant product.
    """
    graded = graded_qrels(judgments)
    queries = sorted(graded)
    if len(queries) > max_queries:
        chosen = np.random.default_rng(0).choice(len(queries), max_queries, replace=False)
        queries = [queries[i] for i in sorted(chosen)]
    without, with_ads = {}, {}
    pages_with_ads = ads_shown = 0
    for query in queries:
        bidders = server.bidders("search", slots, query=query)
        hits, relevance = retriever.search_relevance(query, k, bidders.products, matched_only=True,
                                                     explain=False)
        organic = [{"product_id": hit.product_id} for hit in hits]
        page, won = server.fill(organic, bidders, dict(zip(bidders.products, relevance.tolist())), slots,
                                attributes=retriever.attributes, titles=titles, paced=False)
        without[query] = [(item["product_id"], float(k - rank)) for rank, item in enumerate(organic)]
        with_ads[query] = [(item["product_id"], float(k - rank)) for rank, item in enumerate(page[:k])]
        pages_with_ads += bool(won)
        ads_shown += sum(1 for item in page[:k] if item.get("sponsored"))
    judged = {query: graded[query] for query in queries}
    before, after = ndcg_per_query(judged, without, k), ndcg_per_query(judged, with_ads, k)
    measured = sorted(before)
    mean = (lambda scores: float(np.mean([scores[q] for q in measured])) if measured else 0.0)
    return {"queries": len(measured), "pages_with_ads": pages_with_ads, "ads_shown": ads_shown,
            f"ndcg@{k}_without": mean(before), f"ndcg@{k}_with": mean(after),
            "change": mean(after) - mean(before)}
