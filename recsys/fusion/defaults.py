"""The shipped fusion of each scope: what a new database's "default" presets hold, and what the
hybrids fuse with when no config is given. Each value was read on held-out data; the comments say
where (docs/benchmarks.md has the tables).
"""

# int8 ONNX encodes a query about 8x faster than PyTorch at 0.001 less nDCG@10 on Home Depot
# (docs/benchmarks.md), within the 0.01 a quantised encoder may lose to be served by default.
# The semantic floor: below a cosine of 0.475 a product is not a semantic candidate, so a query
# nothing matches ("xyzzy qqq") finds nothing instead of the least distant products. Read on Home
# Depot's train + validation queries (bench/semantic_floor.py): the highest floor within 0.001
# nDCG@10 of the best and 0.005 Recall@100 of none; test nDCG@10 0.4203 against 0.4204 without,
# and 4.7% of random-letter queries keep a semantic candidate instead of 100%.
# Sponsored slots (`recsys.fusion.sponsored`): positions 1 and 4, at most 2 ads a page, each ad's
# product at least half as relevant to the request as the page's best result. With no campaign
# running nothing is shown; the floor's trade-off between revenue and nDCG@10 is in docs/benchmarks.md
# ("Sponsored products").
SPONSORED = {"positions": [1, 4], "max_ads": 2, "relevance_floor": 0.5, "reserve_price": 0.05,
             "frequency_cap": None}
SEARCH = {"method": "weighted", "weights": {"bm25": 0.75, "semantic": 0.25},
          "normalisation": "minmax", "candidates": 100, "backend": "onnx-int8",
          "min_scores": {"semantic": 0.475}, "sponsored": SPONSORED}

# On the demo's purchases (leave-last-out, 4,240 customers in two halves) semantic weights up to
# 0.2 kept EASE's nDCG@10 (0.170 / 0.161) and raised coverage@10 from 0.35 to 0.39; from 0.3 on,
# nDCG fell (0.125 at 0.5). 0.15 takes the coverage at no cost in nDCG (docs/benchmarks.md).
RECOMMENDATIONS = {"method": "weighted", "weights": {"ease": 0.85, "semantic": 0.15},
                   "normalisation": "minmax", "candidates": 100, "sponsored": SPONSORED}
