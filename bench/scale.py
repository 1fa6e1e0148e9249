"""Benchmark: the workbench at scale, catalogs of 54,667 to 1,000,000 products and 0.5 to 20 million events.

Data, grown deterministically (seeded) into ``var/scale/`` (git-ignored; nothing from it is committed):

- Catalogs from Home Depot's 54,667 real titles (``../shared/data/homedepot/products.csv``, read at run
  time; the benchmark skips, exit status 0, when it is absent). The first 54,667 products are the real
  titles; each further product is a real title with one to three attributes appended, the attributes
  being words and phrases that occur in the titles themselves: sizes ("5 gal.", "3/4 in."), colours,
  materials and pack counts ("(6-Pack)"), so that every text is realistic and unique.
- Event logs from Online Retail's purchases (``data/online_retail.parquet``, cleaned as the ingest
  cleans it): shards of whole customers (10% each, with all their baskets), each shard with new
  customer and basket ids, its dates shifted by up to two years, and Online Retail's products mapped
  onto the grown catalog's ids by a mapping of its own, until the log has the size asked for.

Each step runs in a child process of its own, so its peak resident memory (``ru_maxrss``) is its own,
under a time budget (``--budget-s``) and a memory cap (``--max-rss-gb``); a step whose estimate (the
previous size's time scaled by the size ratio) exceeds what is left is skipped, and the table says so.

1. ``ingest``: `recsys.data.ingest_file` of the catalog CSV and then of the events Parquet into a fresh
   SQLite database (read, validate, clean, pseudonymise, store): seconds and peak MB.
2. ``encode``: titles/s of ``python -m recsys embed`` (onnx-int8) and of
   `recsys.ray_embed.encode_on_ray` (Ray Data, 2 workers), both on a seeded sample of the catalog's
   titles (``--encode-sample``).
3. ``fit search``: the shipped search preset's hybrid (BM25 + semantic, `recsys.factory.build_retriever`)
   fitted on the catalog. The catalog's vectors are given, as an ``embed`` job would have made them: the
   real titles' own onnx-int8 vectors, and for a grown title normalise(v(title) + w * sum v(attribute)),
   w chosen on the encode sample, whose agreement with the grown titles' real vectors is reported
   (``approx_cosine``). Seconds, peak MB, and the nearest-neighbour index builds inside it
   (which index, seconds).
4. ``fit recs``: the shipped recommendation preset (hybrid of EASE and semantic,
   `recsys.factory.build_recommender`) on the events' interactions; when EASE refuses the catalog (its
   items x items matrix), the reason is reported and the hybrid of ALS and semantic is fitted instead.
5. ``serve``: a fresh process loads both fitted engines, as the service does: its resident memory,
   then search p50/p95 (``search(query, k=10)``, query encoding and explanations included, over
   ``--queries`` seeded Home Depot dev queries) and recommend p50/p95 (``recommend(user, k=10)`` over
   ``--users`` seeded customers), each after a warm-up.

    python bench/scale.py --sizes small                  # smoke check, a couple of minutes
    python bench/scale.py                                # 54,667, 250,000 and 1,000,000 products
    python bench/scale.py --sizes 54k,250k --budget-s 900
    python bench/scale.py --sizes 1m --update            # one size again, keeping the others' figures
    python bench/scale.py --report --charts              # the table and charts of the last results

Prints a table and writes bench/results/scale.json (each size's figures and skips), and with
``--charts`` the figures against size as docs/scale_*.svg.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = Path(os.environ.get("WORKBENCH_HOMEDEPOT_DIR") or ROOT.parent / "shared" / "data" / "homedepot")
RETAIL = ROOT / "data" / "online_retail.parquet"
WORK = ROOT / "var" / "scale"
RESULTS = ROOT / "bench" / "results" / "scale.json"
SIZES = {"small": (20_000, 100_000), "54k": (54_667, 500_000), "250k": (250_000, 5_000_000),
         "1m": (1_000_000, 20_000_000)}
SEED = 42
SHARD_CUSTOMERS = 0.10  # the share of Online Retail's customers in one shard of a grown log
BASE_ID_OFFSET = 1_000_000  # grown products' ids: this plus their row
COLOURS = ("White", "Black", "Gray", "Grey", "Brown", "Red", "Blue", "Green", "Yellow", "Beige", "Ivory",
           "Almond", "Bronze", "Silver", "Gold", "Chrome", "Nickel", "Brushed Nickel", "Oil-Rubbed Bronze",
           "Satin Nickel", "Stainless Steel", "Biscuit", "Tan", "Clear", "Natural", "Espresso", "Cherry",
           "Oak", "Walnut", "Mahogany", "Orange", "Pink", "Purple", "Charcoal", "Sand", "Slate", "Cedar")
MATERIALS = ("Steel", "Aluminum", "Brass", "Copper", "Wood", "Pine", "Cedar", "Vinyl", "PVC", "Plastic",
             "Ceramic", "Porcelain", "Glass", "Fiberglass", "Concrete", "Stone", "Granite", "Marble",
             "Polyester", "Nylon", "Rubber", "Cast Iron", "Zinc", "Resin", "Bamboo", "Cotton", "Leather")
SIZE_PATTERN = re.compile(r"\b\d+(?:[./-]\d+)?(?:-| )"
                          r"(?:in\.|ft\.|gal\.|qt\.|oz\.|lb\.|sq\. ft\.|mm|cu\. ft\.|Watt|Volt|Amp|BTU|GPM)",
                          re.IGNORECASE)
PACK_PATTERN = re.compile(r"\(\d+-Pack\)")


def peak_mb() -> float:
    """This process's peak resident memory so far (Linux reports KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def rss_mb() -> float:
    import psutil

    return round(psutil.Process().memory_info().rss / 2**20, 1)


# --- growing the data ---------------------------------------------------------------------------------


def attribute_values(titles: list[str]) -> list[tuple[str, str]]:
    """(kind, text) of the attributes a grown title may get, every one taken from the titles' own words:
    the sizes and pack counts most often written in them, the colours and materials they mention."""
    from collections import Counter

    sizes = Counter(m.group(0) for t in titles for m in SIZE_PATTERN.finditer(t))
    packs = Counter(m.group(0) for t in titles for m in PACK_PATTERN.finditer(t))
    joined = "\n".join(titles)
    values = [("size", s) for s, _ in sizes.most_common(150)]
    values += [("colour", c) for c in COLOURS if re.search(rf"\b{re.escape(c)}\b", joined)]
    values += [("material", m) for m in MATERIALS if re.search(rf"\b{re.escape(m)}\b", joined)]
    values += [("pack", p) for p, _ in packs.most_common(20)]
    return values


def grow_catalog(n: int, folder: Path) -> tuple[Path, Path]:
    """The catalog of `n` products as catalog_<n>.csv (product_id, title) and its parts (base title row
    and attribute indices of each product, -1 for none) as parts_<n>.npz; reused when already there."""
    import numpy as np
    import pandas as pd

    path, parts_path = folder / f"catalog_{n}.csv", folder / f"parts_{n}.npz"
    if path.exists() and parts_path.exists():
        return path, parts_path
    base = pd.read_csv(DATA / "products.csv", dtype={"product_uid": str, "product_title": str},
                       keep_default_na=False)
    titles = base["product_title"].str.strip().tolist()
    rng = np.random.default_rng(SEED)
    values = attribute_values(titles)
    kinds = ("size", "colour", "material", "pack")
    by_kind = {kind: np.array([i for i, (k, _) in enumerate(values) if k == kind]) for kind in kinds}
    if n <= len(titles):
        rows = np.sort(rng.choice(len(titles), n, replace=False)) if n < len(titles) else np.arange(n)
        ids = base["product_uid"].to_numpy()[rows].tolist()
        out_titles = [titles[i] for i in rows]
        parts = np.column_stack([rows, np.full((n, len(kinds)), -1)])
    else:
        seen = set(titles)
        ids, out_titles = base["product_uid"].tolist(), list(titles)
        parts_rows = [np.column_stack([np.arange(len(titles)), np.full((len(titles), len(kinds)), -1)])]
        while len(out_titles) < n:
            want = int((n - len(out_titles)) * 1.05) + 16
            chosen = rng.integers(0, len(titles), want)
            attrs = np.full((want, len(kinds)), -1)
            present = rng.random((want, len(kinds))) < 0.45
            present[np.arange(want), rng.integers(0, len(kinds), want)] = True  # at least one attribute
            for column, kind in enumerate(kinds):
                picks = by_kind[kind][rng.integers(0, len(by_kind[kind]), want)]
                attrs[:, column] = np.where(present[:, column], picks, -1)
            fresh = []
            for row in range(want):
                words = [values[a][1] for a in attrs[row] if a >= 0]
                text = titles[chosen[row]] + ", " + " ".join(words)
                if text not in seen and len(out_titles) < n:
                    seen.add(text)
                    out_titles.append(text)
                    fresh.append(row)
            fresh = np.array(fresh, dtype=np.int64)
            parts_rows.append(np.column_stack([chosen[fresh], attrs[fresh]]))
        parts = np.vstack(parts_rows)
        ids += [str(BASE_ID_OFFSET + row) for row in range(len(titles), n)]
    pd.DataFrame({"product_id": ids, "title": out_titles}).to_csv(path, index=False)
    np.savez(parts_path, parts=parts.astype(np.int32), attributes=np.array([v for _, v in values]))
    return path, parts_path


def retail_events():
    """Online Retail's purchase events as the ingest cleans them (`prepare_online_retail`)."""
    from recsys.data.online_retail import prepare_online_retail
    from recsys.data.readers import read_table

    frame, fmt = read_table(RETAIL)
    _, events = prepare_online_retail(frame, file=RETAIL.name, fmt=fmt)
    return events.frame


def grow_events(rows: int, catalog_path: Path, folder: Path) -> Path:
    """An event log of `rows` purchases onto the catalog at `catalog_path` (see the module docstring),
    as events_<products>_<rows>.parquet; reused when already there."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    catalog_ids = pd.read_csv(catalog_path, usecols=["product_id"], dtype=str)["product_id"].to_numpy()
    path = folder / f"events_{len(catalog_ids)}_{rows}.parquet"
    if path.exists():
        return path
    events = retail_events()
    users, user_codes = np.unique(events["user_id"].to_numpy(dtype=str), return_inverse=True)
    products, product_codes = np.unique(events["product_id"].to_numpy(dtype=str), return_inverse=True)
    baskets, basket_codes = np.unique(events["session_id"].to_numpy(dtype=str), return_inverse=True)
    stamps = events["timestamp"].to_numpy().astype("datetime64[s]").astype(np.int64)
    values = events["value"].to_numpy(dtype=np.float64)
    rng = np.random.default_rng(SEED)
    parts, total, shard = [], 0, 0
    while total < rows:
        kept = (rng.random(len(users)) < SHARD_CUSTOMERS)[user_codes]
        mapping = rng.integers(0, len(catalog_ids), len(products))
        shift = int(rng.integers(0, 730)) * 86_400
        take = min(int(kept.sum()), rows - total)
        index = np.flatnonzero(kept)[:take]
        parts.append({"user": shard * len(users) + user_codes[index],
                      "product": mapping[product_codes[index]],
                      "session": shard * len(baskets) + basket_codes[index],
                      "stamp": stamps[index] + shift, "value": values[index]})
        total += take
        shard += 1
    joined = {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
    table = pa.table({
        "user_id": pa.array(np.char.add("c", joined["user"].astype(str))),
        "product_id": pa.array(catalog_ids[joined["product"]]),
        "value": joined["value"],
        "timestamp": pa.array(joined["stamp"].astype("datetime64[s]")),
        "session_id": pa.array(np.char.add("b", joined["session"].astype(str))),
    })
    pq.write_table(table, path)
    return path


# --- the child processes -----------------------------------------------------------------------------


def child_ingest(args) -> dict:
    """Migrate a fresh database, then time the catalog's and the events' ingest."""
    from db.engine import upgrade
    from recsys.data import IngestOptions, ingest_file
    from recsys.data.clean import CleaningConfig
    from recsys.privacy.keys import current_pseudonym_key

    url = f"sqlite:///{args.db}"
    upgrade(url)
    current_pseudonym_key()
    started = time.perf_counter()
    catalog = ingest_file(args.catalog, IngestOptions("catalog"), actor="bench", url=url)
    catalog_s = time.perf_counter() - started
    result = {"catalog_s": round(catalog_s, 2), "peak_mb": peak_mb(),
              "catalog_rows": catalog.reports[0].rows_out}
    if args.events is None:  # the events' ingest was not started (see the harness's budget)
        return {**result, "db_mb": round(Path(args.db).stat().st_size / 2**20, 1)}
    mapping = {"user_id": "user_id", "product_id": "product_id", "value": "value", "timestamp": "timestamp",
               "session_id": "session_id"}
    started = time.perf_counter()
    events = ingest_file(args.events, IngestOptions(
        "events", mapping, cleaning=CleaningConfig(default_event_type="purchase")), actor="bench", url=url)
    events_s = time.perf_counter() - started
    return {**result, "events_s": round(events_s, 2), "seconds": round(catalog_s + events_s, 2),
            "peak_mb": peak_mb(), "events_rows": events.reports[0].rows_out,
            "db_mb": round(Path(args.db).stat().st_size / 2**20, 1)}


def child_ray(args) -> dict:
    """Titles/s of Ray Data encoding (2 workers) on the sample. Each call starts its pool of encoder
    actors (each loads the model), so a call of 256 titles is timed too, and the rate past that fixed
    cost is (titles - 256) / (seconds - seconds of 256)."""
    import pandas as pd

    try:
        from recsys.ray_embed import encode_on_ray
    except ImportError as error:
        return {"skipped": f"recsys.ray_embed is not in this checkout yet ({error})"}
    texts = pd.read_csv(args.catalog, dtype=str, keep_default_na=False)["title"].tolist()
    encode_on_ray(texts[:16], model_path=None, backend="onnx-int8", workers=2, batch_size=256)  # Ray up
    timed = {}
    for count in (256, len(texts)):
        started = time.perf_counter()
        vectors = encode_on_ray(texts[:count], model_path=None, backend="onnx-int8", workers=2,
                                batch_size=256)
        timed[count] = time.perf_counter() - started
    seconds = timed[len(texts)]
    steady = (len(texts) - 256) / (seconds - timed[256]) if seconds > timed[256] else None
    return {"titles": len(texts), "seconds": round(seconds, 2),
            "titles_per_s": round(len(texts) / seconds, 1), "seconds_256": round(timed[256], 2),
            "titles_per_s_past_startup": steady and round(steady, 1),
            "shape": list(vectors.shape), "peak_mb": peak_mb()}


def catalog_vectors(catalog, parts_path: Path, sample_folder: Path | None) -> tuple:
    """The catalog's unit vectors (rows in catalog order) as described in the module docstring, and what
    was measured of the approximation: (vectors, {"weight", "approx_cosine", "checked"})."""
    import numpy as np

    from recsys.embeddings import cached_encode, read_embeddings

    loaded = np.load(parts_path)
    parts, attributes = loaded["parts"], loaded["attributes"].tolist()
    import pandas as pd

    base = pd.read_csv(DATA / "products.csv", dtype=str, keep_default_na=False)["product_title"].str.strip()
    base_vectors = cached_encode(base.tolist(), backend="onnx-int8")
    attribute_vectors = cached_encode(attributes, backend="onnx-int8")
    grown = (parts[:, 1:] >= 0).any(axis=1)
    # One row of zeros stands for "no attribute" (-1), so each row's attributes add up without a mask.
    attribute_vectors = np.vstack([attribute_vectors, np.zeros_like(attribute_vectors[:1])])

    def combine(rows, weight):  # row by row in blocks: no second catalog-sized matrix
        vectors = base_vectors[parts[rows, 0]]
        for column in range(1, parts.shape[1]):
            vectors += weight * attribute_vectors[parts[rows, column]]
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    measured = {"weight": None, "approx_cosine": None, "checked": 0}
    weight = 0.5
    if grown.any() and sample_folder is not None and (sample_folder / "meta.json").exists():
        ids, exact, _ = read_embeddings(sample_folder)
        row_of = {pid: i for i, pid in enumerate(catalog["product_id"].astype(str))}
        rows = np.array([row_of[pid] for pid in ids])
        keep = grown[rows]
        rows, exact = rows[keep], exact[keep]
        if len(rows):
            cosines = {w: float(np.mean(np.sum(combine(rows, w) * exact, axis=1)))
                       for w in (0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.6)}
            weight = max(cosines, key=cosines.get)
            measured = {"weight": weight, "approx_cosine": round(cosines[weight], 4),
                        "checked": int(len(rows))}
    vectors = np.empty((len(parts), base_vectors.shape[1]), dtype=np.float32)
    for start in range(0, len(parts), 200_000):
        rows = np.arange(start, min(start + 200_000, len(parts)))
        vectors[rows] = combine(rows, weight)
    return vectors, measured


def given_vectors(catalog, vectors):
    """`cached_encode` answering from `vectors` (rows of `catalog`) by title, encoding anything else."""
    import numpy as np

    from recsys import embeddings

    row_of = {title: i for i, title in enumerate(catalog["title"].astype(str).str.strip())}
    real = embeddings.cached_encode

    def cached_encode(texts, model_path=None, cache_dir=None, backend="torch"):
        rows = [row_of.get(t.strip(), -1) for t in texts]
        if min(rows, default=0) < 0:
            return real(texts, model_path, cache_dir, backend)
        return np.ascontiguousarray(vectors[np.array(rows)])

    return cached_encode


def timed_index_builds() -> list[dict]:
    """Wrap the nearest-neighbour index builders so that each build's size, kind and seconds are recorded
    (the outermost call only: `build_index` may call `NearestIndex.build`)."""
    import recsys.ann as ann
    import recsys.recommenders.semantic as semantic_recs
    import recsys.search.dense as dense

    builds: list[dict] = []
    depth = [0]

    def timing(function):
        def timed(*args, **kwargs):
            depth[0] += 1
            started = time.perf_counter()
            try:
                index = function(*args, **kwargs)
            finally:
                depth[0] -= 1
            if depth[0] == 0:
                vectors = kwargs.get("vectors", args[0] if args else None)
                builds.append({"vectors": None if vectors is None else int(len(vectors)),
                               "index": getattr(index, "kind", None) or type(index).__name__,
                               "seconds": round(time.perf_counter() - started, 2)})
            return index
        return timed

    ann.NearestIndex.build = staticmethod(timing(ann.NearestIndex.build))  # the bound classmethod
    for module in (ann, dense, semantic_recs):
        if hasattr(module, "build_index"):
            module.build_index = timing(module.build_index)
    return builds


def child_fit_search(args) -> dict:
    import pandas as pd

    import recsys.embeddings as embeddings
    from recsys.factory import build_retriever
    from recsys.fusion import defaults

    catalog = pd.read_csv(args.catalog, dtype=str, keep_default_na=False)
    vectors, measured = catalog_vectors(catalog, args.parts, args.sample_vectors)
    embeddings.cached_encode = given_vectors(catalog, vectors)
    builds = timed_index_builds()
    baseline = peak_mb()
    started = time.perf_counter()
    retriever = build_retriever(catalog, defaults.SEARCH)
    fit_s = time.perf_counter() - started
    del vectors
    retriever.save(args.engines / "search")
    return {"seconds": round(fit_s, 2), "peak_mb": peak_mb(), "before_fit_peak_mb": baseline,
            "index_builds": builds, "index_s": round(sum(b["seconds"] for b in builds), 2), **measured}


def child_fit_recs(args) -> dict:
    import pandas as pd

    import recsys.recommenders.semantic as semantic_recs
    from recsys import recommenders
    from recsys.data.interactions import ImplicitWeights, to_interactions
    from recsys.factory import build_recommender
    from recsys.fusion import defaults

    catalog = pd.read_csv(args.catalog, dtype=str, keep_default_na=False)
    vectors, _ = catalog_vectors(catalog, args.parts, args.sample_vectors)
    semantic_recs.cached_encode = given_vectors(catalog, vectors)
    builds = timed_index_builds()
    events = pd.read_parquet(args.events).assign(event_type="purchase")
    started = time.perf_counter()
    interactions = to_interactions(events, ImplicitWeights()).rename(columns={"last_timestamp": "timestamp"})
    del events
    prepare_s = time.perf_counter() - started
    result = {"interactions": len(interactions), "users": int(interactions["user_id"].nunique()),
              "products_with_events": int(interactions["product_id"].nunique()),
              "prepare_s": round(prepare_s, 2)}
    started = time.perf_counter()
    try:
        recommender = build_recommender(interactions, catalog)
        result["model"] = "hybrid ease + semantic (the shipped preset)"
    except (ValueError, MemoryError) as error:
        result["shipped_refused"] = str(error)
        fusion = {**defaults.RECOMMENDATIONS, "weights": {"als": 0.85, "semantic": 0.15}}
        started = time.perf_counter()
        recommender = recommenders.get("hybrid")(sources=["als", "semantic"], fusion=fusion).fit(
            interactions, catalog)
        result["model"] = "hybrid als + semantic (EASE refused)"
    result["seconds"] = round(time.perf_counter() - started, 2)
    del vectors
    recommender.save(args.engines / "recs")
    users = interactions["user_id"].drop_duplicates().sample(
        min(args.users, interactions["user_id"].nunique()), random_state=SEED)
    (args.engines / "users.json").write_text(json.dumps(users.astype(str).tolist()))
    return {**result, "peak_mb": peak_mb(), "index_builds": builds}


def percentiles(values: list[float]) -> dict:
    import numpy as np

    return {name: round(float(np.percentile(values, q)), 2) for name, q in (("p50", 50), ("p95", 95))}


def child_serve(args) -> dict:
    """Load both engines as the service does; memory, then search and recommend latencies."""
    import pandas as pd

    from recsys import embeddings
    from recsys.recommenders.base import Recommender
    from recsys.search.base import Retriever

    embeddings.configure_threads()
    before = rss_mb()
    started = time.perf_counter()
    retriever = Retriever.load(args.engines / "search")
    recommender = Recommender.load(args.engines / "recs") if (args.engines / "recs").exists() else None
    load_s = time.perf_counter() - started
    judgments = pd.read_csv(DATA / "judgments_dev.csv", dtype=str, keep_default_na=False)
    queries = judgments["query"].drop_duplicates().sample(args.queries, random_state=SEED).tolist()
    for query in queries[:10]:
        retriever.search(query, k=10)
    loaded_rss = rss_mb()
    search_ms = []
    for query in queries:
        started = time.perf_counter()
        retriever.search(query, k=10)
        search_ms.append((time.perf_counter() - started) * 1000)
    result = {"load_s": round(load_s, 2), "process_mb_before_load": before,
              "search_ms": percentiles(search_ms), "queries": len(queries)}
    if recommender is not None:
        users = json.loads((args.engines / "users.json").read_text())
        for user in users[:10]:
            recommender.recommend(user, k=10)
        recommend_ms = []
        for user in users:
            started = time.perf_counter()
            recommender.recommend(user, k=10)
            recommend_ms.append((time.perf_counter() - started) * 1000)
        result.update(recommend_ms=percentiles(recommend_ms), users=len(users))
    return {**result, "service_mb": max(loaded_rss, rss_mb()), "peak_mb": peak_mb()}


CHILDREN = {"ingest": child_ingest, "ray": child_ray, "fit-search": child_fit_search,
            "fit-recs": child_fit_recs, "serve": child_serve}


# --- the harness -------------------------------------------------------------------------------------


def run_child(command: list[str], timeout_s: float, max_rss_mb: float, env: dict) -> dict:
    """Run `command`, killing it past `timeout_s` or when its resident memory (with its children's)
    passes `max_rss_mb`; its last stdout line is its JSON result."""
    import psutil

    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        process = subprocess.Popen(command, stdout=out, stderr=err, cwd=ROOT, env=env)
        watched, observed, stopped = psutil.Process(process.pid), 0.0, None
        while process.poll() is None:
            try:
                rss = sum(p.memory_info().rss for p in [watched, *watched.children(recursive=True)]) / 2**20
            except psutil.Error:
                rss = 0.0
            observed = max(observed, rss)
            elapsed = time.perf_counter() - started
            if rss > max_rss_mb or elapsed > timeout_s:
                stopped = (f"stopped at {rss:,.0f} MB, over the {max_rss_mb:,.0f} MB cap" if rss > max_rss_mb
                           else f"stopped after {elapsed:.0f} s, over its {timeout_s:.0f} s budget")
                for child in watched.children(recursive=True):
                    child.kill()
                process.kill()
                process.wait()
                break
            time.sleep(0.5)
        wall = round(time.perf_counter() - started, 1)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if stopped:
        return {"failed": stopped, "wall_s": wall, "observed_mb": round(observed)}
    if process.returncode != 0:
        tail = stderr.strip().splitlines()[-3:]
        return {"failed": f"exit status {process.returncode}: {' | '.join(tail)}", "wall_s": wall}
    result = json.loads(stdout.strip().splitlines()[-1])
    return {**result, "wall_s": wall, "observed_mb": round(observed)}


class Budget:
    """The overall time left, and each step's estimate from the size before."""

    def __init__(self, total_s: float, step_s: float):
        self.deadline = time.perf_counter() + total_s
        self.step_s = step_s
        self.previous: dict[str, tuple[int, float]] = {}

    def left(self) -> float:
        return self.deadline - time.perf_counter()

    def refusal(self, step: str, size: int) -> str | None:
        """Why `step` at `size` is not started, or None; the estimate scales the previous time linearly."""
        limit = min(self.step_s, self.left())
        if limit < 10:
            return f"skipped: the overall budget is spent ({self.left():.0f} s left)"
        if step in self.previous:
            size_before, seconds = self.previous[step]
            estimate = seconds * size / size_before
            if estimate > limit:
                return (f"skipped: estimated {estimate:.0f} s ({seconds:.0f} s at {size_before:,}, "
                        f"scaled linearly) > {limit:.0f} s left for it")
        return None

    def record(self, step: str, size: int, seconds: float) -> None:
        self.previous[step] = (size, seconds)

    def learn(self, rows: list[dict]) -> None:
        """Take the estimates from earlier results (`--update`), the largest size of each step."""
        for row in sorted(rows, key=lambda row: row["products"]):
            sizes = {"ingest": row["products"] + row["events"], "encode_local": 1, "encode_ray": 1,
                     "fit_search": row["products"], "fit_recs": row["events"], "serve": row["products"]}
            for step, size in sizes.items():
                result = row.get(step) or {}
                if "wall_s" in result and "failed" not in result and "skipped" not in result:
                    if step != "ingest" or "events_s" in result:
                        self.record(step, size, result["wall_s"])
                    if step == "ingest":
                        self.record("ingest_catalog", row["products"], result["catalog_s"])


def run_size(label: str, products: int, events: int, args, budget: Budget, env: dict) -> dict:
    WORK.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    catalog_path, parts_path = grow_catalog(products, WORK)
    events_path = grow_events(events, catalog_path, WORK)
    row = {"size": label, "products": products, "events": events,
           "grow_s": round(time.perf_counter() - started, 1)}
    print(f"[{label}] grown in {row['grow_s']} s: {catalog_path.name}, {events_path.name}", file=sys.stderr)
    me = [sys.executable, str(Path(__file__).resolve())]
    cap = args.max_rss_gb * 1024

    def step(name: str, size: int, command: list[str], **extra_env: str) -> dict:
        reason = budget.refusal(name, size)
        if reason:
            result = {"failed": reason}
        else:
            result = run_child(command, min(budget.step_s, budget.left()), cap, {**env, **extra_env})
            if "failed" not in result and "skipped" not in result:
                budget.record(name, size, result["wall_s"])
        print(f"[{label}] {name}: {json.dumps(result)[:400]}", file=sys.stderr, flush=True)
        return result

    with tempfile.TemporaryDirectory(prefix="bench-scale-") as folder:
        folder = Path(folder)
        keys = {"WORKBENCH_KEYS_DIR": str(folder), "WORKBENCH_SECRETS_FILE": str(folder / "secrets.toml")}
        env = {**env, **keys}
        if "ingest" in args.steps:
            command = [*me, "--child", "ingest", "--db", str(folder / "bench.db"),
                       "--catalog", str(catalog_path)]
            refused = budget.refusal("ingest", products + events)
            if refused:  # the catalog alone, which takes a small part of it
                row["ingest"] = step("ingest_catalog", products, command)
                row["ingest"]["events_skipped"] = refused
            else:
                row["ingest"] = step("ingest", products + events, [*command, "--events", str(events_path)])
                if "catalog_s" in row["ingest"]:
                    budget.record("ingest_catalog", products, row["ingest"]["catalog_s"])
        import pandas as pd

        sample = pd.read_csv(catalog_path, dtype=str, keep_default_na=False).sample(
            min(args.encode_sample, products), random_state=SEED)
        sample_path = folder / "sample.csv"
        sample.to_csv(sample_path, index=False)
        sample_vectors = folder / "sample-vectors"
        if "encode" in args.steps:
            row["encode_local"] = step("encode_local", 1, [
                sys.executable, "-m", "recsys", "embed", "--catalog", str(sample_path),
                "--id-col", "product_id", "--text-col", "title", "--backend", "onnx-int8",
                "--out", str(sample_vectors)])
            # A Ray of its own: ray.init() without an address joins any head `ray start` left on the machine.
            row["encode_ray"] = step("encode_ray", 1, [*me, "--child", "ray", "--catalog", str(sample_path)],
                                     RAY_ADDRESS="local")
        engines = folder / "engines"
        engines.mkdir()
        common = ["--catalog", str(catalog_path), "--parts", str(parts_path), "--engines", str(engines),
                  "--sample-vectors", str(sample_vectors)]
        if "search" in args.steps:
            row["fit_search"] = step("fit_search", products, [*me, "--child", "fit-search", *common])
        if "recs" in args.steps:
            row["fit_recs"] = step("fit_recs", events, [
                *me, "--child", "fit-recs", *common, "--events", str(events_path),
                "--users", str(args.users)])
        if "fit_search" in row and "failed" not in row["fit_search"]:
            row["serve"] = step("serve", products, [*me, "--child", "serve", "--engines", str(engines),
                                                    "--queries", str(args.queries)])
    return row


def cell(result: dict | None, key: str, fmt: str = "{:,.1f}") -> str:
    if not result:
        return "not run"
    if "failed" in result or "skipped" in result:
        return "—"
    value = result
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return "—" if value is None else fmt.format(value)


COLUMNS = (("catalog ingest s", "ingest", "catalog_s", "{:,.1f}"),
           ("events ingest s", "ingest", "events_s", "{:,.1f}"),
           ("ingest peak MB", "ingest", "peak_mb", "{:,.0f}"),
           ("embed titles/s", "encode_local", "titles_per_s", "{:,.0f}"),
           ("Ray titles/s", "encode_ray", "titles_per_s", "{:,.0f}"),
           ("search fit s", "fit_search", "seconds", "{:,.1f}"),
           ("index s", "fit_search", "index_s", "{:,.1f}"),
           ("recs fit s", "fit_recs", "seconds", "{:,.1f}"),
           ("search p50/p95 ms", "serve", "search_ms", None),
           ("recommend p50/p95 ms", "serve", "recommend_ms", None),
           ("service MB", "serve", "service_mb", "{:,.0f}"))


def table(rows: list[dict]) -> str:
    """The results as a Markdown table, then each skip or failure with its reason."""
    lines = ["| products | events | " + " | ".join(c[0] for c in COLUMNS) + " |",
             "| ---: | ---: | " + " | ".join("---:" for _ in COLUMNS) + " |"]
    notes = []
    for row in rows:
        cells = []
        for title, step, key, fmt in COLUMNS:
            result = row.get(step)
            if fmt is None:
                value = (result or {}).get(key) if result and "failed" not in result else None
                cells.append(f"{value['p50']:.1f} / {value['p95']:.1f}" if value else cell(result, key))
            else:
                cells.append(cell(result, key, fmt))
        lines.append(f"| {row['products']:,} | {row['events']:,} | " + " | ".join(cells) + " |")
        for step in ("ingest", "encode_local", "encode_ray", "fit_search", "fit_recs", "serve"):
            result = row.get(step) or {}
            why = result.get("failed") or result.get("skipped")
            if why:
                notes.append(f"- {row['products']:,} products, {step}: {why}")
            if result.get("events_skipped"):
                notes.append(f"- {row['products']:,} products, the events' ingest (the catalog's ran): "
                             f"{result['events_skipped']}")
        refused = (row.get("fit_recs") or {}).get("shipped_refused")
        if refused:
            notes.append(f"- {row['products']:,} products: the shipped recommender refused ({refused}); "
                         "measured: " + row["fit_recs"]["model"])
    return "\n".join(lines + ([""] + notes if notes else []))


def charts(rows: list[dict], folder: Path) -> list[Path]:
    """One SVG per figure against the catalog's size, log-log."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figures = {
        "ingest": ("ingest into SQLite, seconds", [("ingest", "catalog_s", "catalog"),
                                                   ("ingest", "events_s", "events")]),
        "memory": ("peak / resident memory, MB", [("ingest", "peak_mb", "ingest peak"),
                                                 ("fit_search", "peak_mb", "search fit peak"),
                                                 ("fit_recs", "peak_mb", "recs fit peak"),
                                                 ("serve", "service_mb", "service resident")]),
        "fit": ("fitting, seconds", [("fit_search", "seconds", "search engine fit"),
                                     ("fit_search", "index_s", "of which index builds"),
                                     ("fit_recs", "seconds", "recommender fit")]),
        "latency": ("latency, ms", [("serve", "search_ms.p50", "search p50"),
                                    ("serve", "search_ms.p95", "search p95"),
                                    ("serve", "recommend_ms.p50", "recommend p50"),
                                    ("serve", "recommend_ms.p95", "recommend p95")]),
        "encode": ("encoding, titles/s (sample)", [("encode_local", "titles_per_s", "embed, onnx-int8"),
                                                   ("encode_ray", "titles_per_s", "Ray Data, 2 workers")]),
    }
    written = []
    for name, (title, series) in figures.items():
        figure, axes = plt.subplots(figsize=(5.5, 3.6))
        for step, key, label in series:
            points = []
            for row in rows:
                value = row.get(step) or {}
                for part in key.split("."):
                    value = value.get(part) if isinstance(value, dict) else None
                if isinstance(value, (int, float)):
                    points.append((row["products"], value))
            if points:
                axes.plot(*zip(*points), marker="o", label=label)
        axes.set_xscale("log")
        axes.set_yscale("log")
        axes.set_xlabel("products in the catalog (events: 0.5M, 5M, 20M)")
        axes.set_title(title, fontsize=10)
        axes.grid(True, which="both", alpha=0.3)
        axes.legend(fontsize=8)
        figure.tight_layout()
        path = folder / f"scale_{name}.svg"
        figure.savefig(path, format="svg", metadata={"Date": None})
        plt.close(figure)
        written.append(path)
    return written


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="54k,250k,1m", help=f"comma-separated, of {', '.join(SIZES)}")
    parser.add_argument("--steps", default="ingest,encode,search,recs", help="which steps to run")
    parser.add_argument("--budget-s", type=float, default=2400, help="overall seconds (default 40 minutes)")
    parser.add_argument("--step-budget-s", type=float, default=900, help="seconds one step may take")
    parser.add_argument("--max-rss-gb", type=float, default=14.0,
                        help="a step past this much memory is stopped")
    parser.add_argument("--encode-sample", type=int, default=2000,
                        help="titles encoded per size for titles/s")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--update", action="store_true",
                        help="keep bench/results/scale.json's figures of steps and sizes not run now")
    parser.add_argument("--report", action="store_true",
                        help="run nothing: print the table of bench/results/scale.json (and its charts)")
    parser.add_argument("--charts", action="store_true", help="write docs/scale_*.svg from the results")
    parser.add_argument("--child", choices=sorted(CHILDREN), help=argparse.SUPPRESS)
    for name in ("--db", "--catalog", "--events", "--parts", "--engines", "--sample-vectors"):
        parser.add_argument(name, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        import contextlib

        with contextlib.redirect_stdout(sys.stderr):
            result = CHILDREN[args.child](args)
        print(json.dumps(result, default=str))
        return 0
    if args.report:
        rows = json.loads(RESULTS.read_text())["rows"]
        print(table(rows))
        for path in charts(rows, ROOT / "docs") if args.charts else []:
            print(f"chart: {path.relative_to(ROOT)}")
        return 0
    if not (DATA / "products.csv").exists():
        print(f"skipped: the Home Depot data is not at {DATA} (it is never copied into the repo; "
              "WORKBENCH_HOMEDEPOT_DIR names another folder)", file=sys.stderr)
        return 0
    args.steps = set(args.steps.split(","))
    budget = Budget(args.budget_s, args.step_budget_s)
    threads = os.environ.get("WORKBENCH_THREADS", "2")
    env = {**os.environ, "WORKBENCH_THREADS": threads, "WORKBENCH_FIT_ON_ACTIVATE": "0",
           "PYTHONPATH": str(ROOT),
           "WORKBENCH_RAY_CPUS": os.environ.get("WORKBENCH_RAY_CPUS", "2")}
    load_before = os.getloadavg()
    rows = json.loads(RESULTS.read_text())["rows"] if args.update and RESULTS.exists() else []
    budget.learn(rows)
    for label in args.sizes.split(","):
        products, events = SIZES[label]
        fresh = run_size(label, products, events, args, budget, env)
        earlier = next((row for row in rows if row["size"] == label), None)
        if earlier is None:
            rows.append(fresh)
        else:
            earlier.update(fresh)
        rows.sort(key=lambda row: row["products"])
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps({"bench": "scale", "rows": rows}, indent=2, default=str))
    summary = {"bench": "scale", "rows": rows, "budget_s": args.budget_s, "step_budget_s": args.step_budget_s,
               "max_rss_gb": args.max_rss_gb, "encode_sample": args.encode_sample, "queries": args.queries,
               "users": args.users, "threads": threads, "cpus": os.cpu_count(),
               "python": platform.python_version(),
               "loadavg_before": [round(x, 2) for x in load_before],
               "loadavg_after": [round(x, 2) for x in os.getloadavg()]}
    RESULTS.write_text(json.dumps(summary, indent=2, default=str))
    print(table(rows))
    if args.charts:
        for path in charts(rows, ROOT / "docs"):
            print(f"chart: {path.relative_to(ROOT)}")
    print(f"written to {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
