"""Benchmark: sessions an online experiment needs to find the better search preset, interleaving against A/B.

Reads ``../shared/data/homedepot/`` at run time and skips, exit status 0, when it is absent;
nothing from it is written into the repo. In a temporary SQLite database the 54,667 titles are
ingested and the search engine fitted as the app does (`recsys.engines`); the top 10 of each
preset for every judged dev query come from the served engine (`with_fusion`, `matched_only`).

Simulated shoppers: each session searches one judged query (uniformly drawn) and looks at one
list of ten. Clicks follow a position-based model: position i is examined with probability 1/i
(strong position bias) and an examined product is clicked with probability
0.05 + 0.55 * ((grade - 1) / 2) ** 2 of its Home Depot grade (1 to 3: 0.05 for an irrelevant
product, 0.19 at 2, 0.60 for an exact match); a product without a grade counts as irrelevant.

- Interleaving: the session sees the team-draft interleaving of both presets' lists
  (`recsys.experiments.assignment.team_draft`, 16 drawn per query); its clicks credit the teams
  and the report's sign test (`recsys.experiments.analysis.interleaving_result`) decides.
- A/B: the session sees one preset's list (half the sessions each); the report's two-proportion
  z-test of sessions that clicked (`analysis.ab_result`) decides.

For each number of sessions N in a grid (25 to 51,200, each about 1.4 times the last), `--runs`
independent experiments are simulated; "power" is the share of them that name the better preset
(nDCG@10 of the judged queries) at p < 0.05. Reported: the power at each N and the sessions where
it reaches 80% (interpolated on a log scale), for each method and each pair of presets: the
default hybrid (BM25 0.75, semantic 0.25) against semantic-only (a large gap in nDCG@10),
semantic-heavy (0.25/0.75) and BM25-only (a small gap).

    python bench/experiments.py [--runs 200] [--seed 7]

Prints a table and, as its last line, one JSON object (also written to bench/results/experiments.json).
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "experiments.json"
sys.path.insert(0, str(ROOT))
from search import data_missing, fitted_shop, load_data, save_result  # noqa: E402  (bench/search.py)
DEPTH = 10
INTERLEAVINGS = 16
GRID = [int(round(25 * 2 ** (j / 2), -1 if j > 4 else 0)) for j in range(23)]  # 25 .. 51,200 sessions, x1.4
EXAMINE = 1.0 / np.arange(1, DEPTH + 1)


def attractiveness(grade: float | None) -> float:
    if grade is None or np.isnan(grade):
        return 0.05
    return 0.05 + 0.55 * ((min(max(grade, 1.0), 3.0) - 1.0) / 2.0) ** 2


def rankings(url: str, configs: dict, queries: list[str]) -> dict[str, list[list[str]]]:
    from recsys.trials import service as trials

    engine, state = trials.search_engine(url)
    found = {}
    for name, config in configs.items():
        hits = engine.with_fusion(state.resolve(config)).search_many(queries, DEPTH, matched_only=True,
                                                                     explain=False)
        found[name] = [[hit.product_id for hit in row] for row in hits]
    return found


def ndcg(lists: list[list[str]], queries: list[str], qrels: dict) -> float:
    """nDCG@10 as evaluate-search counts it (gain: grade - 1) of what search serves."""
    from recsys.evaluation.metrics import ndcg_per_query

    run = {query: [(product, float(DEPTH - rank)) for rank, product in enumerate(ranking)]
           for query, ranking in zip(queries, lists)}
    return float(np.mean(list(ndcg_per_query(qrels, run, DEPTH).values())))


class Simulator:
    """Vectorised sessions over precomputed lists: a control and a treatment preset."""

    def __init__(self, control: list[list[str]], treatment: list[list[str]], queries: list[str],
                 grades: dict, seed: int):
        from recsys.experiments.assignment import team_draft

        def attraction(query: str, ranking: list[str]) -> np.ndarray:
            row = np.zeros(DEPTH)
            row[:len(ranking)] = [attractiveness(grades.get((query, product))) for product in ranking]
            return row

        self.single = np.stack([[attraction(q, ranking) for q, ranking in zip(queries, arm)]
                            for arm in (control, treatment)])  # (2, queries, depth)
        rng = random.Random(seed)
        teams = np.zeros((len(queries), INTERLEAVINGS, DEPTH))
        attract = np.zeros((len(queries), INTERLEAVINGS, DEPTH))
        for qi, (query, left, right) in enumerate(zip(queries, control, treatment)):
            for m in range(INTERLEAVINGS):
                products, sides = team_draft(left, right, DEPTH, rng)
                teams[qi, m, :len(sides)] = [1.0 if side == "treatment" else -1.0 for side in sides]
                attract[qi, m] = attraction(query, products)
        self.teams, self.attract = teams, attract

    def interleaving(self, sessions: int, rng: np.random.Generator):
        from recsys.experiments.analysis import interleaving_result

        q = rng.integers(0, self.teams.shape[0], sessions)
        m = rng.integers(0, INTERLEAVINGS, sessions)
        clicks = rng.random((sessions, DEPTH)) < EXAMINE * self.attract[q, m]
        balance = (clicks * self.teams[q, m]).sum(axis=1)
        clicked = clicks.any(axis=1)
        result = interleaving_result(int((balance < 0).sum()), int((balance > 0).sum()),
                                     int((clicked & (balance == 0)).sum()), sessions)
        return result["winner"], result["p_value"]

    def ab(self, sessions: int, rng: np.random.Generator):
        from recsys.experiments.analysis import ab_result

        arm = rng.integers(0, 2, sessions)
        q = rng.integers(0, self.single.shape[1], sessions)
        clicked = (rng.random((sessions, DEPTH)) < EXAMINE * self.single[arm, q]).any(axis=1)
        arms = [{"sessions": int((arm == a).sum()), "clicked": int(clicked[arm == a].sum())} for a in (0, 1)]
        result = ab_result(*arms)
        return result["winner"], result["p_value"]


def power_curve(simulate, better: str, runs: int, rng: np.random.Generator, budget_s: float) -> dict:
    curve, started = {}, time.perf_counter()
    for sessions in GRID:
        hits = sum(simulate(sessions, rng)[0] == better for _ in range(runs))
        curve[sessions] = hits / runs
        if curve[sessions] >= 0.95 or time.perf_counter() - started > budget_s:
            break
    return curve


def crossing(curve: dict[int, float], target: float = 0.8) -> int | None:
    """Sessions where the power curve reaches `target`, interpolated on a log scale; None if it never does."""
    points = sorted(curve.items())
    for (n0, p0), (n1, p1) in zip(points, points[1:]):
        if p0 < target <= p1:
            return int(round(np.exp(np.log(n0) + (target - p0) / (p1 - p0) * (np.log(n1) - np.log(n0))), -1))
    return points[0][0] if points and points[0][1] >= target else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200, help="simulated experiments per number of sessions")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--budget-s", type=float, default=90.0, help="time for each power curve at most")
    args = parser.parse_args()
    if data_missing():
        return 0

    from recsys.embeddings import configure_threads
    from recsys.evaluation.search import graded_qrels
    from recsys.fusion import FusionConfig
    from recsys.fusion.defaults import SEARCH

    configure_threads()
    timings = {}
    catalog, judgments = load_data()
    columns = judgments[["query", "product_id", "grade"]]
    grades = {(q, p): float(g) for q, p, g in columns.itertuples(index=False)}
    queries = sorted(judgments["query"].unique())
    weights = {"default": SEARCH["weights"], "semantic-only": {"bm25": 0.0, "semantic": 1.0},
               "semantic-heavy": {"bm25": 0.25, "semantic": 0.75},
               "bm25-only": {"bm25": 1.0, "semantic": 0.0}}
    configs = {name: FusionConfig.from_dict({**SEARCH, "weights": pair}) for name, pair in weights.items()}
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        url = fitted_shop(Path(folder), catalog)
        timings["ingest_and_fit_s"] = round(time.perf_counter() - started, 1)
        started = time.perf_counter()
        lists = rankings(url, configs, queries)
        timings["rankings_s"] = round(time.perf_counter() - started, 1)

    qrels = graded_qrels(judgments, 1.0)
    quality = {name: round(ndcg(found, queries, qrels), 4) for name, found in lists.items()}
    rng = np.random.default_rng(args.seed)
    pairs = []
    for control in ("semantic-only", "semantic-heavy", "bm25-only"):
        started = time.perf_counter()
        simulator = Simulator(lists[control], lists["default"], queries, grades, args.seed)
        better = "treatment" if quality["default"] > quality[control] else "control"
        curves = {"interleaving": power_curve(simulator.interleaving, better, args.runs, rng, args.budget_s),
                  "ab": power_curve(simulator.ab, better, args.runs, rng, args.budget_s)}
        needed = {method: crossing(curve) for method, curve in curves.items()}
        ratio = round(needed["ab"] / needed["interleaving"], 1) if all(needed.values()) else None
        pairs.append({"control": control, "treatment": "default", "better": better,
                      "ndcg@10": {control: quality[control], "default": quality["default"]},
                      "power": {method: {str(n): p for n, p in curve.items()}
                                for method, curve in curves.items()},
                      "sessions_for_80pct_power": needed, "ab_over_interleaving": ratio,
                      "seconds": round(time.perf_counter() - started, 1)})

    print(f"{len(queries):,} judged queries; nDCG@10 {quality}; {timings}")
    for pair in pairs:
        print(f"\n{pair['control']} (control) against default (treatment); better: {pair['better']}")
        print(f"{'sessions':>9}{'interleaving':>14}{'A/B':>8}")
        for n in GRID:
            cells = [pair["power"][method].get(str(n)) for method in ("interleaving", "ab")]
            if any(cell is not None for cell in cells):
                print(f"{n:>9,}" + "".join(f"{'' if cell is None else f'{cell:.2f}':>{w}}"
                                           for cell, w in zip(cells, (14, 8))))
        ratio = pair["ab_over_interleaving"]
        print(f"80% power: {pair['sessions_for_80pct_power']}"
              + ("" if ratio is None else f"; A/B needs {ratio}x the sessions"))
    result = {"benchmark": "experiments", "queries": len(queries), "runs": args.runs, "seed": args.seed,
              "click_model": "examine 1/i, click 0.05 + 0.55 * ((grade - 1) / 2) ** 2", "pairs": pairs,
              "timings": timings}
    save_result(result, RESULTS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
