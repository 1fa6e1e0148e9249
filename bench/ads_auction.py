"""Benchmark: sponsored products on Home Depot: revenue against the page's nDCG@10, by relevance floor
and number of slots, with budgets and pacing over a simulated day.

The shipped search preset's hybrid (BM25 0.75 + semantic 0.25, spelling correction, onnx-int8) is
fitted on ``../shared/data/homedepot/`` (or ``$WORKBENCH_HOMEDEPOT_DIR``; skipped, exit status 0,
when absent; embeddings cached under var/embeddings). Then, all seeded:

- queries: the test queries of `recsys.evaluation.splits.split_judgments`; each one's organic page is
  its top 10 as served (`matched_only`), its judged grades the relevance (gain: grade - 1);
- click model, as bench/experiments.py: position i on the page is examined with probability 1/i and
  an examined product clicked with probability 0.05 + 0.55 x ((grade - 1) / 2)^2 (0.05 ungraded);
- predicted click-through (`recsys.ads.ctr.CtrModel`): fitted on a log of `--history` organic page
  views of the train queries, clicked by the same model (a product never in it gets the prior);
- campaigns: `--campaigns` (300), each promoting 1-5 real products, `--judged-share` (70%) drawn
  from the products judged for some test query (what shoppers search for), the rest from the whole
  catalog (an ungraded product counts as irrelevant, so the share decides how many ads can count
  as relevant at all: 0 is the pessimistic bound, 0.7 nearer the optimistic one); a maximum
  cost per click from a log-normal (median $0.40) and a daily budget from a log-normal (median $4);
- a day of `--views` page views (100,000) of uniformly drawn test queries, arriving as an evening-heavy
  hourly traffic curve; each page: every campaign with a product relevant to the query (relevance:
  `HybridRetriever.relevance`, its fused score over the best) takes part as its pacing rate says
  (`recsys.ads.pacing`, the plan following the traffic curve) if its bid is affordable; the
  eligible ads (`recsys.ads.auction.eligible`: at or above the floor, not already on the page) go
  to the auction (reserve $0.05), win positions 1, 4, 7 in order and are placed; the page is
  clicked; a sponsored click is charged its second price if the budget still affords it. The CTR
  model's log shows a `--randomised` share (10%) of its pages in a random order, as a shop would
  to measure position bias.

Swept: the relevance floor (0, 0.3, 0.5, 0.7) and the number of slots (0-3). For each setting:
revenue, ad impressions, clicks and fill, the page's nDCG@10 over the page views (ads included: a
sponsored product counts its judged grade, an ungraded one 0), the campaigns' largest share of
daily budget spent, and the share of spend by quarter of the day against the traffic's. One more
run, the middle setting without pacing, shows what pacing does.

    python bench/ads_auction.py                 # about 3.5 minutes on 2 cores
    python bench/ads_auction.py --queries 50 --views 3000 --history 5000   # a quick look

Prints a table and, as its last line, one JSON object of aggregate figures (also written to
bench/results/ads_auction.json); writes the chart of revenue against nDCG@10 to
docs/ads_auction.svg (matplotlib).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import date
from pathlib import Path

os.environ.setdefault("WORKBENCH_THREADS", "2")
os.environ.setdefault("OMP_NUM_THREADS", "2")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT))
import search  # noqa: E402  (bench/search.py)
from experiments import attractiveness  # noqa: E402  (bench/experiments.py: the same click model)
from search import data_missing, load_data, machine, save_result  # noqa: E402

# A worktree outside the project's folder finds the data through $WORKBENCH_HOMEDEPOT_DIR.
search.DATA = Path(os.environ.get("WORKBENCH_HOMEDEPOT_DIR") or search.DATA)

RESULTS = ROOT / "bench" / "results" / "ads_auction.json"
CHART = ROOT / "docs" / "ads_auction.svg"
DEPTH = 10
POSITIONS = (1, 4, 7)
FLOORS = (0.0, 0.3, 0.5, 0.7)
RESERVE = 0.05
# Hourly page views of a shop with evening traffic (any scale): the traffic and the pacing plan.
TRAFFIC = np.array([1, 1, 1, 1, 1, 1, 2, 3, 4, 4, 4, 4, 4, 4, 4, 5, 6, 8, 10, 12, 12, 10, 6, 3], dtype=float)


def examination(position: int) -> float:
    return 1.0 / position


def pages(hybrid, queries: list[str], products: list[str]) -> tuple[dict, dict]:
    """({query: its organic top 10}, {query: [(product index, relevance > 0)]}) as served."""
    organic, relevant = {}, {}
    for start in range(0, len(queries), 256):
        chunk = queries[start:start + 256]
        for query, lists in zip(chunk, hybrid.candidates(chunk)):
            hits = hybrid.fuse_candidates(query, lists, DEPTH, explain=False)
            organic[query] = [hit.product_id for hit in hits]
            relevance = hybrid.relevance(lists, products)
            relevant[query] = [(int(i), float(relevance[i])) for i in np.flatnonzero(relevance > 0)]
    return organic, relevant


def click_history(organic: dict, grades: dict, views: int, randomised: float, rng: np.random.Generator):
    """A log of organic page views (query, product_id, position, clicked) clicked by the click model;
    a `randomised` share of the pages shows its ten products in a random order."""
    import pandas as pd

    queries = list(organic)
    rows = []
    for query in rng.choice(queries, views):
        ranking = organic[query]
        if rng.random() < randomised:
            ranking = [ranking[i] for i in rng.permutation(len(ranking))]
        for position, product in enumerate(ranking, 1):
            shown = examination(position) * attractiveness(grades.get((query, product)))
            rows.append((query, product, position, rng.random() < shown))
    return pd.DataFrame(rows, columns=["query", "product_id", "position", "clicked"])


def campaigns(catalog, judged: list[str], count: int, judged_share: float,
              rng: np.random.Generator) -> list[dict]:
    """Seeded campaigns: products (1-5; a `judged_share` judged for a test query, the rest any), bid,
    daily budget."""
    every = catalog["product_id"].astype(str).tolist()
    found = []
    for campaign_id in range(1, count + 1):
        size = int(rng.integers(1, 6))
        products = {str(rng.choice(judged)) if rng.random() < judged_share else str(rng.choice(every))
                    for _ in range(size)}
        found.append({"campaign_id": campaign_id, "products": sorted(products),
                      "bid": float(np.clip(rng.lognormal(np.log(0.40), 0.6), 0.06, 5.0)),
                      "daily_budget": float(np.clip(rng.lognormal(np.log(4.0), 0.8), 0.5, 100.0))})
    return found


def winning_ads(query: str, elapsed: float, slots, day: dict, spent: dict, paced: bool,
                rng: np.random.Generator) -> list:
    """The placements that win `query`'s page at `elapsed` of the day: every campaign with a product
    relevant to the query takes part as its pacing rate says, if its bid is affordable."""
    from recsys.ads.auction import Candidate, auction, eligible
    from recsys.ads.pacing import affordable, pacing_rate, takes_part

    joining: dict[int, bool] = {}
    candidates = []
    for campaign_id, product, relevance in day["offers"].get(query, ()):
        campaign = day["campaigns"][campaign_id]
        if campaign_id not in joining:
            budget = campaign["daily_budget"]
            rate = pacing_rate(spent[campaign_id], budget, elapsed, TRAFFIC) if paced else 1.0
            joining[campaign_id] = (takes_part(rate, rng)
                                    and affordable(campaign["bid"], spent[campaign_id], budget))
        if joining[campaign_id]:
            ctr = day["ctr"][product]
            candidates.append(Candidate(campaign_id, product, campaign["bid"], relevance, ctr))
    on_page = set(day["organic"][query])
    return auction(eligible(candidates, slots.relevance_floor, exclude=on_page), slots)


def spend_spread(spends: list[tuple[float, int, float]], spent: dict, budgets: dict) -> dict:
    """From the day's charges (time, campaign, price): budget use, and how spend spread over the day."""
    times, payers, amounts = (np.array(column) for column in zip(*spends)) if spends else (np.zeros(0),) * 3
    revenue = float(amounts.sum())
    quarters = [float(amounts[(times >= q / 4) & (times < (q + 1) / 4)].sum() / revenue) if revenue else 0.0
                for q in range(4)]
    used = {c: spent[c] / budgets[c] for c in spent}
    limited = [c for c, share in used.items() if share >= 0.9]  # the campaigns their budget stopped
    stopped = np.isin(payers, limited)
    first_half = amounts[stopped & (times < 0.5)].sum() / amounts[stopped].sum() if stopped.any() else None
    return {"revenue": round(revenue, 2), "max_budget_used": round(max(used.values()), 4),
            "campaigns_over_budget": sum(share > 1 + 1e-9 for share in used.values()),
            "budget_limited_campaigns": len(limited),
            "budget_limited_first_half": None if first_half is None else round(float(first_half), 3),
            "spend_by_quarter": [round(share, 3) for share in quarters]}


def simulate_day(setting: dict, day: dict, paced: bool = True, seed: int = 0) -> dict:
    """One day of page views under `setting` (floor, slots): spend, clicks and each page's nDCG@10."""
    from recsys.ads.auction import SponsoredSlots, place
    from recsys.ads.pacing import affordable
    from recsys.evaluation.metrics import ndcg_per_query

    rng = np.random.default_rng(seed)
    slots = (SponsoredSlots.from_dict({"positions": list(POSITIONS[:setting["slots"]]),
                                       "relevance_floor": setting["floor"], "reserve_price": RESERVE})
             if setting["slots"] else None)
    grades, budgets = day["grades"], {c: campaign["daily_budget"] for c, campaign in day["campaigns"].items()}
    spent = dict.fromkeys(budgets, 0.0)
    spends: list[tuple[float, int, float]] = []
    shown_ads = ad_clicks = uncharged = filled = 0
    ad_grades: list[float] = []  # of the ads shown whose product is judged for the query
    runs, qrels = {}, {}
    for view, (query, elapsed) in enumerate(zip(day["queries"], day["times"])):
        page = [{"product_id": product} for product in day["organic"][query]]
        placements = winning_ads(query, elapsed, slots, day, spent, paced, rng) if slots else []
        page = place(page, placements)[:DEPTH]
        price = {p.campaign_id: p.price for p in placements}
        for position, item in enumerate(page, 1):
            grade = grades.get((query, item["product_id"]))
            sponsored = item.get("sponsored", False)
            shown_ads += sponsored
            if sponsored and grade is not None:
                ad_grades.append(grade)
            if not (rng.random() < examination(position) * attractiveness(grade) and sponsored):
                continue
            ad_clicks += 1
            campaign_id = item["campaign_id"]
            if affordable(price[campaign_id], spent[campaign_id], budgets[campaign_id]):
                spent[campaign_id] += price[campaign_id]
                spends.append((elapsed, campaign_id, price[campaign_id]))
            else:
                uncharged += 1
        filled += bool(placements)
        runs[str(view)] = [(item["product_id"], float(DEPTH - rank)) for rank, item in enumerate(page)]
        qrels[str(view)] = day["qrels"].get(query, {})
    views = len(day["queries"])
    spread = spend_spread(spends, spent, budgets)
    return {**setting, "paced": paced, **spread,
            "revenue_per_1000_views": round(1000 * spread["revenue"] / views, 2),
            "ndcg@10": round(float(np.mean(list(ndcg_per_query(qrels, runs, DEPTH).values()))), 4),
            "ad_impressions": shown_ads, "ad_clicks": ad_clicks, "uncharged_clicks": uncharged,
            "ads_judged": round(len(ad_grades) / shown_ads, 3) if shown_ads else None,
            "ads_mean_grade": round(float(np.mean(ad_grades)), 3) if ad_grades else None,
            "fill": round(filled / views, 4)}


def chart(rows: list[dict], path: Path) -> None:
    """Revenue per 1,000 page views against the page's nDCG@10, one point per setting: a static SVG
    (matplotlib), so the chart shows in docs/benchmarks.md offline and on a repository's web page."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(8, 5))
    for slots in sorted({row["slots"] for row in rows}):
        points = sorted((row for row in rows if row["slots"] == slots and row["paced"]),
                        key=lambda row: row["floor"] or 0.0)
        x = [row["ndcg@10"] for row in points]
        y = [row["revenue_per_1000_views"] for row in points]
        axes.plot(x, y, marker="o", linestyle="-" if slots else "none",
                  label=f"{slots} slot{'s' if slots != 1 else ''}" if slots else "no ads")
        for row in points:
            if slots == 2 or not slots:
                axes.annotate(f"floor {row['floor']}" if slots else "no ads", (row["ndcg@10"],
                              row["revenue_per_1000_views"]), textcoords="offset points", xytext=(4, 6),
                              fontsize=8)
    axes.set_xlabel("page nDCG@10 (ads included)")
    axes.set_ylabel("revenue per 1,000 page views ($)")
    axes.set_title("Sponsored products on Home Depot: revenue against the page's quality")
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="svg", metadata={"Date": None})
    plt.close(figure)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=0, help="test queries used (0: all of them)")
    parser.add_argument("--views", type=int, default=100_000, help="page views in the simulated day")
    parser.add_argument("--history", type=int, default=30_000,
                        help="organic page views the CTR model is fitted on")
    parser.add_argument("--randomised", type=float, default=0.1,
                        help="share of those page views in a random order (what identifies position bias)")
    parser.add_argument("--campaigns", type=int, default=300)
    parser.add_argument("--judged-share", type=float, default=0.7,
                        help="share of promoted products judged for a test query (the rest: any product)")
    parser.add_argument("--floors", default=",".join(map(str, FLOORS)))
    parser.add_argument("--slots", default="0,1,2,3",
                        help=f"numbers of slots, filled at positions {POSITIONS}")
    parser.add_argument("--seed", type=int, default=19)
    parser.add_argument("--chart", type=Path, default=CHART)
    args = parser.parse_args(argv)
    if data_missing():
        return 0
    import pandas as pd

    from recsys import embeddings
    from recsys.ads.ctr import CtrModel
    from recsys.evaluation.search import graded_pairs, graded_qrels
    from recsys.evaluation.splits import split_judgments
    from recsys.fusion import defaults
    from recsys.search.hybrid import HybridRetriever

    started, load_before = time.perf_counter(), os.getloadavg()
    threads = embeddings.configure_threads()
    rng = np.random.default_rng(args.seed)
    catalog, judgments = load_data()
    parts = split_judgments(judgments)
    test = parts["test"]
    queries = sorted(test["query"].unique())
    if args.queries:
        queries = [queries[i] for i in np.sort(rng.permutation(len(queries))[:args.queries])]
        test = test[test["query"].isin(queries)]
    train_queries = sorted(parts["train"]["query"].unique())
    train_queries = [train_queries[i] for i in np.sort(rng.permutation(len(train_queries))[:2000])]
    hybrid = HybridRetriever(fusion=defaults.SEARCH).fit(catalog)
    print(f"fitted in {time.perf_counter() - started:.0f} s", file=sys.stderr)

    pairs = graded_pairs(pd.concat([test, parts["train"][parts["train"]["query"].isin(train_queries)]]))
    grades = {(q, p): g for q, p, g in pairs.itertuples(index=False)}
    qrels = graded_qrels(test, min_grade=1.0)
    judged = sorted(test["product_id"].astype(str).unique())
    found = campaigns(catalog, judged, args.campaigns, args.judged_share, rng)
    products = sorted({p for campaign in found for p in campaign["products"]})
    promoting: dict[str, list[int]] = {}
    for campaign in found:
        for product in campaign["products"]:
            promoting.setdefault(product, []).append(campaign["campaign_id"])
    organic, relevant = pages(hybrid, queries, products)
    offers = {query: [(campaign_id, products[i], relevance) for i, relevance in relevant[query]
                      for campaign_id in promoting[products[i]]] for query in queries}
    history_pages = hybrid.search_many(train_queries, DEPTH, matched_only=True, explain=False)
    history_organic = {query: [hit.product_id for hit in hits]
                       for query, hits in zip(train_queries, history_pages)}
    history = click_history(history_organic, grades, args.history, args.randomised, rng)
    model = CtrModel(prior_strength=100).fit(history)
    ctr = dict(zip(products, model.predict(products).tolist()))
    seen = set(history["product_id"])
    print(f"pages and history in {time.perf_counter() - started:.0f} s", file=sys.stderr)

    hours = rng.choice(24, size=args.views, p=TRAFFIC / TRAFFIC.sum())
    times = np.sort((hours + rng.random(args.views)) / 24)
    day = {"queries": list(rng.choice(queries, args.views)), "times": times.tolist(), "organic": organic,
           "offers": offers, "grades": grades, "qrels": qrels, "ctr": ctr,
           "campaigns": {campaign["campaign_id"]: campaign for campaign in found}}
    floors = [float(f) for f in args.floors.split(",")]
    slot_counts = [int(n) for n in args.slots.split(",")]
    settings = [{"floor": floor, "slots": n} for n in slot_counts for floor in (floors if n else [0.0])]
    rows = [simulate_day(setting, day, seed=args.seed) for setting in settings]
    middle = {"floor": 0.5 if 0.5 in floors else floors[len(floors) // 2], "slots": max(slot_counts)}
    rows.append(simulate_day(middle, day, paced=False, seed=args.seed))

    traffic_quarters = [round(float(TRAFFIC[6 * q:6 * q + 6].sum() / TRAFFIC.sum()), 3) for q in range(4)]
    print(f"\n{'floor':>5} {'slots':>5} {'paced':>5} {'nDCG@10':>8} {'revenue':>8} {'per 1k':>7} {'fill':>6} "
          f"{'ads':>6} {'judged':>6} {'grade':>5} {'clicks':>6} {'max used':>8} {'limited':>7} "
          f"{'1st half':>8}  "
          "spend by quarter")
    for row in rows:
        print(f"{row['floor']:>5} {row['slots']:>5} {str(row['paced']):>5} {row['ndcg@10']:8.4f} "
              f"{row['revenue']:8.2f} {row['revenue_per_1000_views']:7.2f} {row['fill']:6.3f} "
              f"{row['ad_impressions']:6d} {str(row['ads_judged']):>6} {str(row['ads_mean_grade']):>5} "
              f"{row['ad_clicks']:6d} {row['max_budget_used']:8.3f} "
              f"{row['budget_limited_campaigns']:7d} {str(row['budget_limited_first_half']):>8}  "
              f"{row['spend_by_quarter']}")
    print(f"traffic by quarter {traffic_quarters}; CTR model propensities "
          f"{[round(x, 3) for x in model.propensities.tolist()]} (true: 1/p), prior {model.prior_mean:.4f}, "
          f"{sum(p in seen for p in products)} of {len(products)} promoted products in its log")
    chart(rows, args.chart)
    save_result({"bench": "ads_auction", "date": date.today().isoformat(),
                 "seconds": round(time.perf_counter() - started),
                 "test_queries": len(queries), "views": args.views, "history_views": args.history,
                 "campaigns": len(found), "judged_share": args.judged_share,
                 "promoted_products": len(products), "positions": list(POSITIONS),
                 "reserve_price": RESERVE, "traffic_by_quarter": traffic_quarters,
                 "ctr_propensities": [round(x, 4) for x in model.propensities.tolist()],
                 "ctr_prior": round(model.prior_mean, 4),
                 "promoted_in_ctr_log": sum(p in seen for p in products),
                 "settings": rows, "machine": machine(threads, load_before)}, RESULTS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
