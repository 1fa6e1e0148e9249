"""`python -m recsys experiments ...` and `events ...`: online experiments from the command line (JSON).

    experiments create --name N --control PRESET --treatment PRESET --method interleaving|ab [--traffic 1.0]
    experiments list
    experiments report ID [--effect E]   impressions, clicks, wins/ties or per-arm rates, p_value, winner
    experiments stop ID [--promote]      --promote: the significant winner's preset becomes the active one
    events feed-search-log               clicks and purchases after searches become a new search-log version

A PRESET is a search preset: NAME (its latest version) or NAME:VERSION.
"""

from __future__ import annotations

import json
import os
import sys

from db.engine import database_url
from db.models import EXPERIMENT_METHODS
from recsys.experiments import service


def _print(data) -> None:
    print(json.dumps(data, indent=2, default=str))


def _actor(args) -> str:
    return getattr(args, "actor", None) or os.environ.get("USER") or "cli"


def cmd_experiments(args) -> int:
    url = database_url()
    if args.action == "list":
        _print(service.list_experiments(url).to_dict("records"))
        return 0
    if args.action == "create":
        missing = [flag for flag, value in (("--name", args.name), ("--control", args.control),
                                            ("--treatment", args.treatment), ("--method", args.method))
                   if not value]
        if missing:
            raise ValueError(f"experiments create needs {', '.join(missing)}")
        created = service.create_experiment(url, args.name, args.control, args.treatment, args.method,
                                            _actor(args), traffic=args.traffic)
        _print(created.to_dict())
        return 0
    if args.id is None:
        raise ValueError(f"experiments {args.action} needs the experiment's id (see `experiments list`)")
    if args.action == "report":
        _print(service.report(url, args.id, args.effect))
    else:
        _print(service.stop_experiment(url, args.id, _actor(args), promote=args.promote))
    return 0


def cmd_events(args) -> int:
    result = service.feed_search_log(database_url(), _actor(args))
    if result is None:
        _print({"search_log_version": None,
                "note": "no clicks or purchases after searches since the last feed"})
        return 0
    if not result.ok:
        raise ValueError("; ".join(report.message() for report in result.reports))
    _print({"search_log_version": result.version_ids[0],
            "rows": result.reports[0].rows_out if result.reports else None})
    return 0


def add_parser(commands) -> None:
    experiments = commands.add_parser("experiments", help="online experiments: create, list, report, stop",
                                      description=__doc__.splitlines()[0])
    experiments.add_argument("action", choices=["create", "list", "report", "stop"])
    experiments.add_argument("id", nargs="?", type=int, help="the experiment (report, stop)")
    experiments.add_argument("--name", help="create: the experiment's name")
    experiments.add_argument("--control", help="create: the control search preset, NAME or NAME:VERSION")
    experiments.add_argument("--treatment", help="create: the treatment search preset, NAME or NAME:VERSION")
    experiments.add_argument("--method", choices=EXPERIMENT_METHODS, help="create: interleaving or ab")
    experiments.add_argument("--traffic", type=float, default=1.0,
                             help="create: the share of sessions in the experiment (default 1.0)")
    experiments.add_argument("--effect", type=float,
                             help="report: the effect to size the sessions still needed for (interleaving: "
                                  "win rate above 0.5, default 0.05; ab: relative lift, default 0.10)")
    experiments.add_argument("--promote", action="store_true",
                             help="stop: make the significant winner's preset the active search preset")
    experiments.add_argument("--actor")
    experiments.set_defaults(func=cmd_experiments)

    events = commands.add_parser("events", help="live events: feed those after searches into the search log")
    events.add_argument("action", choices=["feed-search-log"])
    events.add_argument("--actor")
    events.set_defaults(func=cmd_events)


if __name__ == "__main__":  # pragma: no cover
    sys.exit("run it as: python -m recsys experiments|events ...")
