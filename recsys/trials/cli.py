"""`python -m recsys trials ...` and `judgments ...`: search trials from the command line (JSON on stdout).

    trials create --name N --queries FILE --preset A --preset B [--depth 10] [--scale 0-3]
    trials list
    trials pool ID [--grader G]        the pairs still to grade (by G, or by anyone)
    trials score ID [--consensus mean|majority]
    judgments import --trial ID --file FILE [--grader G]   columns query, product_id, grade[, grader]
    judgments export --trial ID --out FILE.csv [--consensus mean|majority]
    judgments activate --trial ID       the consensus grades become the active judgment list
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from db.engine import database_url
from recsys.data.export import csv_text
from recsys.data.readers import read_table
from recsys.trials import querysets, service
from recsys.trials.judging import CONSENSUS, Scale


def _print(data) -> None:
    print(json.dumps(data, indent=2, default=str))


def _actor(args) -> str:
    return getattr(args, "actor", None) or os.environ.get("USER") or "cli"


def _table(path: str):
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"there is no file {path}")
    frame, _ = read_table(file.read_bytes(), file.name)
    return frame


def _preset(text: str) -> service.Configuration:
    """"NAME" or "NAME:VERSION"."""
    name, _, version = text.partition(":")
    if version and not version.isdigit():
        raise ValueError(f"--preset takes NAME or NAME:VERSION, not {text!r}")
    return service.preset_configuration(database_url(), name, int(version) if version else None)


def _scale(text: str | None) -> Scale:
    if not text:
        return Scale()
    low, sep, high = text.partition("-")
    if not sep or not low.strip().isdigit() or not high.strip().isdigit():
        raise ValueError(f"--scale takes LOW-HIGH, e.g. 0-3 or 1-3, not {text!r}")
    return Scale.spanning(int(low), int(high))


def cmd_trials(args) -> int:
    url = database_url()
    if args.action == "list":
        _print(service.list_trials(url).to_dict("records"))
        return 0
    if args.action == "create":
        missing = [flag for flag, value in (("--name", args.name), ("--queries", args.queries)) if not value]
        if missing or len(args.preset or []) < 2:
            raise ValueError("trials create needs --name, --queries FILE and two or more --preset "
                             f"(missing: {', '.join(missing + (['--preset'] if len(args.preset or []) < 2 else []))})")
        configurations = [_preset(text) for text in args.preset]
        queries = querysets.file_queries(_table(args.queries), file=args.queries)
        query_set = service.save_query_set(url, args.name, queries, "file", _actor(args))
        trial = service.create_trial(url, args.name, query_set, configurations, _actor(args), depth=args.depth,
                                     scale=_scale(args.scale))
        pool = trial.pool()
        _print({"trial_id": trial.id, "name": trial.name, "query_set": query_set.label,
                "queries": len(query_set.queries), "configs": [run.name for run in trial.runs],
                "pairs_to_grade": sum(map(len, pool.values())), "traffic_share": query_set.traffic_share})
        return 0
    if args.id is None:
        raise ValueError(f"trials {args.action} needs the trial's id (see `trials list`)")
    if args.action == "pool":
        _print(service.pairs_to_grade(url, args.id, args.grader).to_dict("records"))
    else:
        _print(service.scorecard(url, args.id, args.consensus).to_dict())
    return 0


def cmd_judgments(args) -> int:
    url = database_url()
    if args.action == "import":
        if not args.file:
            raise ValueError("judgments import needs --file (columns query, product_id, grade[, grader])")
        stored = service.import_judgments(url, args.trial, _table(args.file), args.grader or _actor(args),
                                          file=args.file)
        _print({"trial_id": args.trial, "imported": stored})
    elif args.action == "export":
        if not args.out:
            raise ValueError("judgments export needs --out FILE.csv")
        frame = service.export_judgments(url, args.trial, args.consensus)
        Path(args.out).write_text(csv_text(frame))  # opened in spreadsheets: no cell runs as a formula
        _print({"trial_id": args.trial, "out": args.out, "pairs": len(frame), "consensus": args.consensus})
    else:
        result = service.activate_judgments(url, args.trial, _actor(args), args.consensus)
        _print({"trial_id": args.trial, "judgments_version": result.version_ids[0],
                "rows": result.reports[0].rows_out if result.reports else None})
    return 0


def add_parser(commands) -> None:
    trials = commands.add_parser("trials", help="search trials: create, list, the pairs to grade, scores",
                                 description=__doc__.splitlines()[0])
    trials.add_argument("action", choices=["create", "list", "pool", "score"])
    trials.add_argument("id", nargs="?", type=int, help="the trial (pool, score)")
    trials.add_argument("--name", help="create: the trial's name (also its query set's)")
    trials.add_argument("--queries", help="create: a file of queries (CSV/TSV/Parquet; column query)")
    trials.add_argument("--preset", action="append", help="create: a search preset, NAME or NAME:VERSION "
                                                          "(twice or more; the first is the baseline)")
    trials.add_argument("--depth", type=int, default=10, help="create: each preset's top N is judged (10)")
    trials.add_argument("--scale", help="create: the grades, LOW-HIGH (default 0-3)")
    trials.add_argument("--grader", help="pool: the pairs this grader has not judged yet")
    trials.add_argument("--consensus", choices=CONSENSUS, default="mean")
    trials.add_argument("--actor")
    trials.set_defaults(func=cmd_trials)

    judgments = commands.add_parser("judgments", help="a trial's judgments: import, export, make active")
    judgments.add_argument("action", choices=["import", "export", "activate"])
    judgments.add_argument("--trial", type=int, required=True)
    judgments.add_argument("--file", help="import: CSV/TSV/Parquet with query, product_id, grade[, grader]")
    judgments.add_argument("--grader", help="import: who graded, where the file has no grader column")
    judgments.add_argument("--out", help="export: the CSV to write (query, product_id, grade)")
    judgments.add_argument("--consensus", choices=CONSENSUS, default="mean",
                           help="export, activate: each pair's grade is the graders' mean, or majority")
    judgments.add_argument("--actor")
    judgments.set_defaults(func=cmd_judgments)


if __name__ == "__main__":  # pragma: no cover
    sys.exit("run it as: python -m recsys trials|judgments ...")
