"""Benchmark: how well `recsys.privacy.masking` masks personal data in search queries, and what it
masks that it should not.

- False positives: Home Depot's real search queries (`../shared/data/homedepot/judgments_dev.csv`,
  read from there, never copied; skipped with a message when absent) hold no personal data, so
  every query masked is a false positive. Only counts and kinds are printed, never the queries.
- Recall: seeded synthetic personal data (e-mail addresses, UK and US phone numbers in the ways
  people write them, Luhn-valid card numbers, IBANs, US social security numbers, UK postcodes)
  put into shop queries ("drill <x>", "<x> about my order"); a case is found when the value is
  gone from the masked text and its kind is counted.
- Speed: rows a second for a column of queries (masked once per distinct text).

    python bench/masking.py            # about 5 s

Prints one JSON object (also written to bench/results/masking.json).
"""

from __future__ import annotations

import json
import random
import sys
import time
from collections import Counter
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from recsys.privacy.masking import KINDS, mask_series, mask_text  # noqa: E402

HOMEDEPOT = ROOT.parent / "shared" / "data" / "homedepot" / "judgments_dev.csv"
RESULTS = ROOT / "bench" / "results" / "masking.json"
TEMPLATES = ["drill {}", "{} about my order", "where is my parcel {}", "{}", "return lamp {} thanks"]


def _card(rng: random.Random) -> str:
    from stdnum import luhn

    body = "4" + "".join(rng.choice("0123456789") for _ in range(14))
    number = body + luhn.calc_check_digit(body)
    return rng.choice([number, " ".join(number[i:i + 4] for i in range(0, 16, 4)),
                       "-".join(number[i:i + 4] for i in range(0, 16, 4))])


def _iban(rng: random.Random) -> str:
    from stdnum import iban

    bban = "WEST" + "".join(rng.choice("0123456789") for _ in range(14))
    check = iban.calc_check_digits("GB00" + bban)
    value = f"GB{check}{bban}"
    return rng.choice([value, " ".join(value[i:i + 4] for i in range(0, len(value), 4))])


def _phone(rng: random.Random) -> str:
    digits = lambda n: "".join(rng.choice("0123456789") for _ in range(n))  # noqa: E731
    return rng.choice([
        f"020 7{digits(3)} {digits(4)}", f"07{digits(3)} {digits(6)}", f"+44 7{digits(3)} {digits(6)}",
        f"07{digits(9)}", f"(212) 55{digits(1)}-{digits(4)}", f"212-55{digits(1)}-{digits(4)}",
        f"+1 415 55{digits(1)} {digits(4)}", f"0161 {digits(3)} {digits(4)}"])


def _value(kind: str, rng: random.Random) -> str:
    letters = "abcdefghijklmnopqrstuvwxyz"
    if kind == "email":
        name = "".join(rng.choice(letters) for _ in range(rng.randint(3, 9)))
        domain = rng.choice(["example.com", "mail.co.uk"])
        return f"{name}{rng.choice(['', '.smith', '+shop', '99'])}@{domain}"
    if kind == "card":
        return _card(rng)
    if kind == "iban":
        return _iban(rng)
    if kind == "national-id":
        return f"{rng.randint(100, 899)}-{rng.randint(10, 99)}-{rng.randint(1000, 9999)}"
    if kind == "phone":
        return _phone(rng)
    outward = rng.choice(["SW1A", "EC1A", "M1", "B33", "CR2", "DN55", "W1A"])
    inward = "ABDEFGHJLNPQRSTUWXYZ"
    postcode = f"{outward} {rng.randint(0, 9)}{rng.choice(inward)}{rng.choice(inward)}"
    return rng.choice([postcode, postcode.lower()])


def recall(cases_per_kind: int = 200, seed: int = 7) -> dict:
    rng = random.Random(seed)
    found: dict[str, int] = {}
    for kind in KINDS:
        hits = 0
        for _ in range(cases_per_kind):
            value = _value(kind, rng)
            masked, counts = mask_text(rng.choice(TEMPLATES).format(value))
            hits += value not in masked and counts.get(kind, 0) >= 1
        found[kind] = hits
    return {"cases_per_kind": cases_per_kind, "found": found,
            "recall": round(sum(found.values()) / (cases_per_kind * len(KINDS)), 4)}


def false_positives() -> dict | None:
    if not HOMEDEPOT.exists():
        print(f"skipped the false-positive part: {HOMEDEPOT} is absent", file=sys.stderr)
        return None
    queries = pd.read_csv(HOMEDEPOT)["query"].astype(str)
    distinct = queries.drop_duplicates()
    kinds: Counter = Counter()
    masked = 0
    for text in distinct:
        counts = mask_text(text)[1]
        masked += bool(counts)
        kinds.update(counts)
    started = time.perf_counter()
    mask_series(queries)
    seconds = time.perf_counter() - started
    return {"distinct_queries": len(distinct), "masked": masked, "kinds": dict(kinds),
            "rows": len(queries), "column_seconds": round(seconds, 3),
            "rows_per_second": round(len(queries) / seconds)}


def main() -> None:
    summary = {"benchmark": "masking", "recall": recall(), "homedepot_false_positives": false_positives()}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
