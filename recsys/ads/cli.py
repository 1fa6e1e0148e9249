"""`python -m recsys ads ...`: sponsored-products campaigns from the command line (JSON on stdout).

    ads campaigns create --advertiser NAME --name N --products ID[,ID...] --max-cpc X --daily-budget X
        [--total-budget X] [--keywords w1,w2] [--categories c1,c2] [--starts ISO] [--ends ISO]
    ads campaigns list [--advertiser NAME]
    ads campaigns pause|resume|end ID
    ads report [--campaign ID]      impressions, clicks, click-through, spend, cost per click, per campaign

The command line acts as an operator (it manages every advertiser's campaigns), named in the audit
log by --actor or $USER.
"""

from __future__ import annotations

import json
import os
import sys

from db.engine import database_url
from recsys.accounts import Identity
from recsys.ads import campaigns


def _print(data) -> None:
    print(json.dumps(data, indent=2, default=str))


def _operator(args) -> Identity:
    return Identity(getattr(args, "actor", None) or os.environ.get("USER") or "cli", "operator")


def _listed(text: str | None) -> list[str]:
    """"a,b, c" -> ["a", "b", "c"]; None -> []."""
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def cmd_campaigns(args) -> int:
    url, who = database_url(), _operator(args)
    if args.action == "list":
        _print([found.to_dict() for found in campaigns.list_campaigns(who, args.advertiser, url=url)])
        return 0
    if args.action == "create":
        missing = [flag for flag, value in (("--advertiser", args.advertiser), ("--name", args.name),
                                            ("--products", args.products), ("--max-cpc", args.max_cpc),
                                            ("--daily-budget", args.daily_budget)) if value is None]
        if missing:
            raise ValueError(f"ads campaigns create needs {', '.join(missing)}")
        created = campaigns.create_campaign(
            who, advertiser=args.advertiser, name=args.name, products=_listed(args.products),
            max_cpc=args.max_cpc, daily_budget=args.daily_budget, total_budget=args.total_budget,
            starts_at=args.starts, ends_at=args.ends, keywords=_listed(args.keywords),
            categories=_listed(args.categories), url=url)
        _print(created.to_dict())
        return 0
    if args.id is None:
        raise ValueError(f"ads campaigns {args.action} needs the campaign's id (see `ads campaigns list`)")
    change = {"pause": campaigns.pause_campaign, "resume": campaigns.resume_campaign,
              "end": campaigns.end_campaign}[args.action]
    _print(change(who, args.id, url=url).to_dict())
    return 0


def cmd_report(args) -> int:
    _print(campaigns.report(_operator(args), args.campaign, url=database_url()).to_dict())
    return 0


def add_parser(commands) -> None:
    ads = commands.add_parser("ads", help="sponsored products: campaigns and their report",
                              description=__doc__.splitlines()[0])
    what = ads.add_subparsers(dest="ads_command", required=True)
    managed = what.add_parser("campaigns", help="create, list, pause, resume or end campaigns")
    managed.add_argument("action", choices=["create", "list", "pause", "resume", "end"])
    managed.add_argument("id", nargs="?", type=int, help="the campaign (pause, resume, end)")
    managed.add_argument("--advertiser", help="create: the advertiser (a supplier or brand); list: only its")
    managed.add_argument("--name", help="create: the campaign's name")
    managed.add_argument("--products", help="create: the promoted product ids, comma-separated")
    managed.add_argument("--max-cpc", type=float, help="create: the most one click may cost")
    managed.add_argument("--daily-budget", type=float, help="create: the most spent in one UTC day")
    managed.add_argument("--total-budget", type=float,
                         help="create: the most spent in all (default: no limit)")
    managed.add_argument("--keywords", help="create: queries to show the ads for, comma-separated")
    managed.add_argument("--categories", help="create: categories to show the ads in, comma-separated "
                                              "(no keywords and no categories: targeted by relevance)")
    managed.add_argument("--starts", help="create: when it starts, ISO 8601 (default: now; naive is UTC)")
    managed.add_argument("--ends", help="create: when it ends, ISO 8601 (default: never)")
    managed.add_argument("--actor")
    managed.set_defaults(func=cmd_campaigns)

    reported = what.add_parser("report", help="impressions, clicks, click-through, spend and budget use")
    reported.add_argument("--campaign", type=int, help="only this campaign")
    reported.add_argument("--actor")
    reported.set_defaults(func=cmd_report)


if __name__ == "__main__":  # pragma: no cover
    sys.exit("run it as: python -m recsys ads ...")
