"""`python -m recsys ...`: the workbench from the command line.

Commands print JSON on stdout; errors a user can cause print a message on
stderr and exit with status 1, never a traceback.

Each command imports the modules it runs when it runs, inside its function: torch, transformers,
LightGBM and the engines take seconds to import, which `versions list` or a worker's start should
not pay for. This is the one place (with the other command-line modules) where the library imports
its own modules inside functions.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys

from db.models import ROLES
from recsys.data.report import IngestError

INGEST_KINDS = ("catalog", "events", "search_log", "judgments", "online_retail")


def _print_json(data) -> None:
    print(json.dumps(data, indent=2, default=str))


def _mapping(pairs: list[str]) -> dict[str, str]:
    mapping = {}
    for pair in pairs:
        source, sep, target = pair.partition("=")
        if not sep or not source.strip() or not target.strip():
            raise SystemExit(f"error: --map takes SOURCE=TARGET, e.g. StockCode=product_id; got {pair!r}")
        mapping[source.strip()] = target.strip()
    return mapping


def cmd_db(args) -> int:
    from db.engine import database_url, upgrade

    upgrade()
    _print_json({"database": _redact(database_url()), "migrated": True})
    return 0


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def cmd_init(args) -> int:
    """Migrate, create the first admin, and load the demo data into an empty database."""
    from db import queries
    from db.engine import session_scope, upgrade
    from recsys.accounts import ADMIN_USERNAME, ensure_admin

    upgrade()
    from recsys.privacy.keys import current_pseudonym_key

    key = current_pseudonym_key()  # made (and kept encrypted) at the first start, if not set
    protected = _protect_stored()
    password = ensure_admin()
    if password:
        print(f"Created the admin account '{ADMIN_USERNAME}' with the password: {password}\n"
              "It is shown only this once; keep it, or set WORKBENCH_ADMIN_PASSWORD before "
              "the first start.", file=sys.stderr)
    from recsys.fusion.presets import ensure_default_presets

    from recsys.alerts import ensure_default_rules

    with session_scope() as session:
        empty = not queries.has_data(session)
        presets = [preset.scope for preset in ensure_default_presets(session)]
        rules = ensure_default_rules(session)
    loaded = None
    if empty and not args.no_demo:
        print("Loading the Online Retail demo data (about 15 s)...", file=sys.stderr)
        from recsys.data.online_retail import ingest_online_retail

        result = ingest_online_retail(actor="system")
        loaded = [r.message() for r in result.reports]
    fitted = []
    if not args.no_fit:
        from db.engine import database_url
        from recsys import engines

        # Fitted now rather than on the first page view: the pages then load them in a second.
        url = database_url()
        if not all(map(engines.is_fitted, engines.active_specs(url).values())):
            print("Fitting the search and recommendation engines (under a minute on the demo; later "
                  "starts reuse them)...", file=sys.stderr, flush=True)
        fitted = engines.fit_active(url, lambda _, message: print(f"  {message}", file=sys.stderr, flush=True))
    _print_json({"migrated": True, "pseudonymisation_key": key.fingerprint,
                 "stored_data_protected": protected,
                 "admin_created": password is not None, "demo_loaded": loaded,
                 "default_presets_created": presets, "default_alert_rules_created": rules,
                 "engines_fitted": [item["what"] for item in fitted]})
    return 0


def _protect_stored() -> dict:
    """Customer ids and typed text stored before they were pseudonymised and masked, protected now
    (a no-op once done); the fitted engines that hold such ids are removed, to be fitted again."""
    from db.engine import database_url
    from recsys import engines
    from recsys.privacy.stored import protect_stored

    done = protect_stored()
    changed = {what: rows for what, rows in done["rows"].items() if rows}
    if changed:
        removed = engines.remove_fitted_on(database_url(), set(done["dataset_versions"]))
        print(f"Protected data stored before pseudonymisation and masking: {changed}; "
              f"{len(removed)} fitted engines removed (fitted again).", file=sys.stderr)
    return changed


def _refit(actor: str) -> int | None:
    """After an activation: the background job fitting the new active engines, if it was started."""
    from db.engine import database_url
    from recsys import engines

    return engines.request_fit(database_url(), actor) if engines.fit_on_activate() else None


def cmd_ingest(args) -> int:
    from recsys.data.clean import CleaningConfig
    from recsys.data.ingest import IngestOptions, ingest_file

    actor = args.actor or os.environ.get("USER") or "cli"
    if args.kind == "online_retail":
        from recsys.data.online_retail import ingest_online_retail

        result = ingest_online_retail(args.file, actor=actor, dry_run=args.dry_run,
                                      activate=not args.no_activate)
    else:
        cleaning = CleaningConfig(id_case=args.id_case, default_event_type=args.event_type)
        if args.non_product_codes is not None:
            cleaning.non_product_codes = tuple(
                code.strip() for code in args.non_product_codes.split(",") if code.strip())
        options = IngestOptions(kind=args.kind, mapping=_mapping(args.map), fmt=args.format,
                                encoding=args.encoding, sep=args.sep,
                                skip_invalid_rows=args.skip_invalid_rows,
                                activate=not args.no_activate, cleaning=cleaning, merge=args.merge)
        result = ingest_file(args.file, options, actor=actor, dry_run=args.dry_run)
    for report in result.reports:
        print(report.message(), file=sys.stderr)
    activated = result.version_ids and not args.dry_run and not args.no_activate
    change = getattr(result, "catalog_change", None)
    _print_json({"ok": result.ok, "dry_run": args.dry_run, "versions": result.version_ids,
                 "engines_job": _refit(actor) if activated else None,
                 "catalog_change": None if change is None else vars(change),
                 "reports": [{"kind": r.kind, "rows_in": r.rows_in, "rows_out": r.rows_out,
                              "cleaning": {c.rule: {"action": c.action, "rows": c.rows}
                                           for c in r.cleaning}} for r in result.reports]})
    return 0


def cmd_versions(args) -> int:
    from db import queries
    from db.engine import session_scope

    actor = args.actor or os.environ.get("USER") or "cli"
    with session_scope() as session:
        if args.action == "list":
            frame = queries.list_versions(session, args.kind)
            _print_json(frame.to_dict("records"))
            return 0
        if args.action == "activate":
            version = queries.activate_version(session, args.id, actor)
        else:
            version = queries.rollback(session, args.kind, actor)
        active = {"kind": version.kind, "version": version.id}
    _print_json({"active": active, "engines_job": _refit(actor)})
    return 0


def cmd_presets(args) -> int:
    """Fusion presets from the command line: list, save, activate, roll back (JSON on stdout)."""
    from pathlib import Path

    from db.engine import session_scope
    from recsys.fusion import presets

    actor = args.actor or os.environ.get("USER") or "cli"
    with session_scope() as session:
        if args.action == "list":
            rows = []
            for scope in (args.scope,) if args.scope else presets.PRESET_SCOPES:
                for row in presets.list_presets(session, scope).to_dict("records"):
                    rows.append({"scope": scope, **row})
            _print_json(rows)
            return 0
        if args.action == "save":
            source = Path(args.config)
            text = source.read_text(encoding="utf-8") if source.is_file() else args.config
            try:
                config = json.loads(text)
            except json.JSONDecodeError as error:
                raise ValueError(f"--config is neither a file nor JSON: {error}") from None
            preset = presets.save_preset(session, args.scope, args.name, config, actor, args.note or "",
                                         args.activate)
        elif args.action == "activate":
            preset = presets.activate(session, presets.get_preset(session, args.scope, args.name, args.version).id,
                                      actor)
        else:
            preset = presets.roll_back(session, args.scope, actor)
        saved = {"scope": preset.scope, "name": preset.name, "version": preset.version, "id": preset.id,
                 "active": args.action != "save" or args.activate, "config": preset.config.to_dict()}
    changed = args.action != "save" or args.activate
    _print_json({**saved, "engines_job": _refit(actor) if changed else None})
    return 0


def cmd_models(args) -> int:
    """The model registry from the command line: list, activate, roll back, back to the shipped
    model (JSON on stdout). The REST service follows an activation within seconds."""
    from recsys import model_registry as registry

    actor = args.actor or os.environ.get("USER") or "cli"
    if args.action == "list":
        frame = registry.list_models(args.kind)
        _print_json([] if frame.empty else frame.to_dict("records"))
        return 0
    if args.action == "activate":
        if args.id is None and (args.kind is None or args.version is None):
            raise ValueError("models activate needs --id, or --kind and --version (see `models list`)")
        model_id = args.id if args.id is not None else _model_id(registry, args.kind, args.version)
        model = registry.activate_model(model_id, actor)
    elif args.kind is None:
        raise ValueError(f"models {args.action} needs --kind ({' or '.join(registry.MODEL_KINDS)})")
    elif args.action == "rollback":
        model = registry.rollback_model(args.kind, actor)
    else:
        registry.use_base_model(args.kind, actor)
        model = None
    kind = model.kind if model is not None else args.kind
    served = {"kind": kind, "version": None if model is None else model.version,
              "id": None if model is None else model.id,
              "path": None if model is None else str(model.folder)}
    _print_json({"active": served, "engines_job": _refit(actor) if kind == "embedding" else None})
    return 0


def _model_id(registry, kind: str, version: int) -> int:
    frame = registry.list_models(kind)
    match = frame[frame["version"] == version] if not frame.empty else frame
    if match.empty:
        raise LookupError(f"there is no {kind} model v{version} (see `models list --kind {kind}`)")
    return int(match["id"].iloc[0])


def cmd_accounts(args) -> int:
    from recsys import accounts

    actor = args.actor or os.environ.get("USER") or "cli"
    if args.action == "list":
        _print_json(accounts.list_accounts().to_dict("records"))
        return 0
    if not args.username:
        raise ValueError(f"accounts {args.action} needs --username")
    if args.action in ("create", "set-role") and not args.role:
        raise ValueError(f"accounts {args.action} needs --role")

    def new_password() -> str:
        return os.environ.get("WORKBENCH_NEW_PASSWORD") or getpass.getpass(f"Password for {args.username}: ")

    if args.action == "create":
        accounts.create_account(args.username, new_password(), args.role, actor=actor,
                                advertiser=args.advertiser)
    elif args.action == "set-role":
        accounts.set_role(args.username, args.role, actor=actor, advertiser=args.advertiser)
    elif args.action in ("deactivate", "reactivate"):
        accounts.set_active(args.username, args.action == "reactivate", actor=actor)
    elif args.action == "reset-password":
        accounts.reset_password(args.username, new_password(), actor=actor)
    else:
        accounts.unlock(args.username, actor=actor)
    _print_json({"username": args.username, "action": args.action, "role": args.role})
    return 0


def cmd_forget(args) -> int:
    from db.engine import database_url
    from recsys.erasure import forget

    actor = args.actor or os.environ.get("USER") or "cli"
    _print_json(forget(database_url(), args.customer, actor, refit=not args.no_refit).to_dict())
    return 0


def cmd_retention(args) -> int:
    from db.engine import database_url
    from recsys.erasure import apply_retention, retention_days

    days = args.days or retention_days()
    if days is None:
        raise ValueError("retention needs --days N or WORKBENCH_RETENTION_DAYS")
    actor = args.actor or os.environ.get("USER") or "cli"
    _print_json(apply_retention(database_url(), days, actor, refit=not args.no_refit).to_dict())
    return 0


def cmd_keys(args) -> int:
    """Where the keys come from (fingerprints, never the keys), and their rotation."""
    from recsys.privacy import keys

    actor = args.actor or os.environ.get("USER") or "cli"
    if args.action == "status":
        master, pseudonym = keys.master_key(), keys.pseudonym_key()
        _print_json({"master_key": {"from": master.where, "fingerprint": master.fingerprint},
                     "pseudonymisation_key": {"from": pseudonym.where, "fingerprint": pseudonym.fingerprint}})
        return 0
    if args.action == "new-master":
        print(keys.new_master_key())
        return 0
    if args.action == "rotate-master":
        from_environment = bool(os.environ.get(keys.MASTER_ENV, "").strip())
        old, new = keys.rotate_master(args.new_key)
        _audit_keys(actor, "rotate_master_key", old, new)
        _print_json({"master_key": {"was": old.fingerprint, "now": new.fingerprint}, "where": old.where})
        if from_environment:
            print(f"Set {keys.MASTER_ENV}={new.secret.decode()} wherever the workbench runs, then "
                  "restart it: the stored secrets are encrypted with the new key now.", file=sys.stderr)
        return 0
    if not args.unlink:
        raise ValueError("a new pseudonymisation key gives every customer a new pseudonym; the stored "
                         "behaviour keeps the old ones (the workbench keeps no raw ids to re-hash), so it "
                         "is no longer linked to the customers' future requests. Run again with --unlink "
                         "to do that (then re-upload the behaviour data to link it again)")
    old, new = keys.rotate_pseudonym_key()
    _audit_keys(actor, "rotate_pseudonymisation_key", old, new)
    _print_json({"pseudonymisation_key": {"was": old.fingerprint, "now": new.fingerprint},
                 "restart": "the app, the REST service and the job workers read the key when they start"})
    return 0


def _audit_keys(actor: str, action: str, old, new) -> None:
    from db import queries
    from db.engine import session_scope

    with session_scope() as session:
        queries.audit(session, actor, action, new.name, was=old.fingerprint, now=new.fingerprint)


def cmd_worker(args) -> int:
    from recsys import jobs

    if args.job_id is None:
        print("worker: running queued jobs as they come (Ctrl-C stops)", file=sys.stderr, flush=True)
        try:
            ran = jobs.work(once=args.once)
        except KeyboardInterrupt:
            return 0
        print(json.dumps({"jobs_run": ran}))
        return 0
    status = jobs.run_job(args.job_id)
    print(json.dumps({"job": args.job_id, "status": status}))
    return 0 if status in ("succeeded", "cancelled") else 1


def cmd_jobs(args) -> int:
    from recsys import jobs

    actor = args.actor or os.environ.get("USER") or "cli"
    if args.action == "list":
        listed = ("id", "kind", "status", "progress", "message", "created_by", "created_at", "started_at",
                  "finished_at", "worker")
        _print_json([{key: getattr(job, key) for key in listed}
                     for job in jobs.list_jobs(args.kind, limit=args.limit)])
        return 0
    if args.id is None:
        raise ValueError(f"jobs {args.action} needs --id (see `jobs list`)")
    if args.action == "show":
        _print_json({**jobs.get_job(args.id).to_dict(), "logs": jobs.job_logs(args.id)})
    elif args.action == "cancel":
        jobs.cancel(args.id, actor)
        _print_json({"job": args.id, "cancel_requested": True})
    else:
        _print_json({"job": args.id, "retried_as": jobs.retry(args.id, actor)})
    return 0


def cmd_cluster(args) -> int:
    """The Ray cluster that jobs run on: check the one in force (or --address), name it, clear it.
    An unreachable cluster: a message on stderr and exit status 2."""
    from recsys import cluster

    actor = args.actor or os.environ.get("USER") or "cli"
    args.address = args.address or args.named
    if args.action == "set":
        if args.clear == bool(args.address):
            raise ValueError("cluster set takes an ADDRESS (HOST:PORT, ray://HOST:PORT or local) or --clear")
        cluster.set_ray_address(None if args.clear else args.address, actor)
        address, source = cluster.address_in_force()
        shown = {"setting": None if args.clear else args.address.strip(), "in_force": address, "from": source}
        if source == "environment":
            shown["note"] = f"${cluster.RAY_ADDRESS_ENV} is set here and wins over the setting"
        _print_json(shown)
        return 0
    address, source = (args.address, "argument") if args.address else cluster.address_in_force()
    if address is None:
        _print_json({"address": None, "from": None,
                     "jobs": "no Ray cluster is named: jobs run in their worker's process"})
        return 0
    try:
        status = cluster.check(address)
    except cluster.ClusterUnavailable as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    _print_json({**status.to_dict(), "from": source})
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m recsys", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    db = commands.add_parser("db", help="database migrations")
    db.add_argument("action", choices=["upgrade"])
    db.set_defaults(func=cmd_db)

    init = commands.add_parser("init", help="migrate, create the first admin, load the demo data")
    init.add_argument("--no-demo", action="store_true", help="do not load the demo data")
    init.add_argument("--no-fit", action="store_true",
                      help="do not fit the search and recommendation engines of the active data now")
    init.set_defaults(func=cmd_init)

    ingest = commands.add_parser("ingest", help="upload a file as a new dataset version")
    ingest.add_argument("--kind", required=True, choices=INGEST_KINDS)
    ingest.add_argument("--file", required=True)
    ingest.add_argument("--map", action="append", default=[], metavar="SOURCE=TARGET",
                        help="map a file column to a canonical one, e.g. StockCode=product_id "
                             "(repeat; unmapped files are guessed from column names)")
    ingest.add_argument("--format", choices=["csv", "tsv", "parquet", "jsonl"])
    ingest.add_argument("--encoding", help="text encoding, e.g. latin-1 (default UTF-8)")
    ingest.add_argument("--sep", help="delimiter of a CSV file (guessed when not given)")
    ingest.add_argument("--event-type", choices=["view", "click", "cart", "purchase", "rating"],
                        help="event type of rows without one")
    ingest.add_argument("--id-case", choices=["keep", "upper"], default="keep")
    ingest.add_argument("--non-product-codes", metavar="CODES",
                        help="comma-separated product ids that are charges, not products "
                             "(default: POST, SHIPPING, FEE, BANK CHARGES and the like)")
    ingest.add_argument("--skip-invalid-rows", action="store_true",
                        help="drop rows with values of the wrong type instead of rejecting the file")
    ingest.add_argument("--merge", action="store_true",
                        help="catalogs: add the file's products to the active catalog and update the ones it "
                             "has, instead of replacing it")
    ingest.add_argument("--no-activate", action="store_true", help="store without activating")
    ingest.add_argument("--dry-run", action="store_true", help="validate and clean, store nothing")
    ingest.add_argument("--actor", help="who is uploading (default $USER)")
    ingest.set_defaults(func=cmd_ingest)

    versions = commands.add_parser("versions", help="list, activate or roll back dataset versions")
    versions.add_argument("action", choices=["list", "activate", "rollback"])
    versions.add_argument("--kind", choices=["catalog", "events", "search_log", "judgments"])
    versions.add_argument("--id", type=int)
    versions.add_argument("--actor")
    versions.set_defaults(func=cmd_versions)

    presets_ = commands.add_parser("presets", help="list, save, activate or roll back fusion presets")
    presets_.add_argument("action", choices=["list", "save", "activate", "rollback"])
    presets_.add_argument("--scope", choices=["search", "recommendations"])
    presets_.add_argument("--name", help="the preset's name (save, activate)")
    presets_.add_argument("--version", type=int, help="activate this version (default: the latest)")
    presets_.add_argument("--config", metavar="JSON_OR_FILE",
                          help='save: a FusionConfig as JSON, e.g. \'{"weights": {"bm25": 0.6, "semantic": 0.4}}\', '
                               "or a file holding it")
    presets_.add_argument("--activate", action="store_true", help="save: serve it at once")
    presets_.add_argument("--note", help="save: a note kept with the version")
    presets_.add_argument("--actor")
    presets_.set_defaults(func=cmd_presets)

    models = commands.add_parser("models", help="list, activate or roll back fine-tuned models")
    models.add_argument("action", choices=["list", "activate", "rollback", "use-base"],
                        help="use-base: serve the shipped all-MiniLM-L6-v2 (embedding) or no reranker")
    models.add_argument("--kind", choices=["embedding", "reranker"])
    models.add_argument("--id", type=int, help="activate: the model's id (see `models list`)")
    models.add_argument("--version", type=int, help="activate: the version of --kind")
    models.add_argument("--actor")
    models.set_defaults(func=cmd_models)

    forget_ = commands.add_parser("forget", help="erase a customer everywhere (events, search logs, live "
                                                 "traffic), mark what was built from it; prints counts")
    forget_.add_argument("--customer", required=True,
                         help="the customer's id as the shop knows it, or its pseudonym (c-...)")
    forget_.add_argument("--no-refit", action="store_true",
                         help="do not start fitting the active engines again now")
    forget_.add_argument("--actor")
    forget_.set_defaults(func=cmd_forget)

    retention = commands.add_parser("retention", help="delete behaviour older than N days everywhere now "
                                                      "(the worker does it daily); prints counts")
    retention.add_argument("--days", type=int, help="default: $WORKBENCH_RETENTION_DAYS")
    retention.add_argument("--no-refit", action="store_true")
    retention.add_argument("--actor")
    retention.set_defaults(func=cmd_retention)

    keys_ = commands.add_parser("keys", help="the master and pseudonymisation keys: where they come from "
                                             "(fingerprints), a new master key, rotation")
    keys_.add_argument("action", choices=["status", "new-master", "rotate-master", "rotate-pseudonyms"])
    keys_.add_argument("--new-key", help="rotate-master: the new master key (default: a new one)")
    keys_.add_argument("--unlink", action="store_true",
                       help="rotate-pseudonyms: accept that stored behaviour is unlinked from customers")
    keys_.add_argument("--actor")
    keys_.set_defaults(func=cmd_keys)

    accounts = commands.add_parser("accounts", help="list, create, deactivate or reactivate accounts, change "
                                                    "roles, reset passwords, unlock after wrong passwords")
    accounts.add_argument("action", choices=["list", "create", "set-role", "deactivate", "reactivate",
                                             "reset-password", "unlock"])
    accounts.add_argument("--username")
    accounts.add_argument("--role", choices=ROLES, help="create, set-role")
    accounts.add_argument("--advertiser", help="create, set-role: the advertiser an account of role advertiser "
                                               "acts for (a supplier or brand)")
    accounts.add_argument("--actor")
    accounts.set_defaults(func=cmd_accounts)

    from recsys.evaluation import recs_cli

    recs_cli.add_parser(commands)
    recs_cli.add_tune_parser(commands)
    from recsys.evaluation import search as search_evaluation

    search_evaluation.add_parser(commands)
    from recsys import alerts

    alerts.add_parser(commands)
    from recsys.serving import cli as serving_cli

    serving_cli.add_parser(commands)
    from recsys import onnx_encoder

    onnx_encoder.add_parser(commands)
    from recsys import embeddings

    embeddings.add_parser(commands)
    from recsys.training import cli as training_cli

    training_cli.add_parser(commands)
    training_cli.add_ranker_parser(commands)
    from recsys import engines

    engines.add_parser(commands)
    from recsys.trials import cli as trials_cli

    trials_cli.add_parser(commands)
    from recsys.experiments import cli as experiments_cli

    experiments_cli.add_parser(commands)
    from recsys.ads import cli as ads_cli

    ads_cli.add_parser(commands)
    worker = commands.add_parser("worker", help="run queued background jobs (or the one JOB_ID)")
    worker.add_argument("job_id", type=int, nargs="?", help="run only this job (what the app starts per job)")
    worker.add_argument("--once", action="store_true", help="stop when no job is queued")
    worker.set_defaults(func=cmd_worker)

    jobs_ = commands.add_parser("jobs", help="list, show, cancel or retry background jobs")
    jobs_.add_argument("action", choices=["list", "show", "cancel", "retry"])
    jobs_.add_argument("--id", type=int)
    jobs_.add_argument("--kind", help="list: only jobs of this kind (evaluate, finetune, fit_engines, ...)")
    jobs_.add_argument("--limit", type=int, default=20)
    jobs_.add_argument("--actor")
    jobs_.set_defaults(func=cmd_jobs)

    cluster_ = commands.add_parser("cluster", help="the Ray cluster jobs run on: check it, name it (the "
                                                   "'ray' setting) or clear it; $RAY_ADDRESS wins over it")
    cluster_.add_argument("action", choices=["check", "set"])
    cluster_.add_argument("address", nargs="?", help="set: HOST:PORT of the head, ray://HOST:PORT or local; "
                                                     "check: this one instead of the one in force")
    cluster_.add_argument("--address", dest="named", help="the same as ADDRESS")
    cluster_.add_argument("--clear", action="store_true", help="set: no cluster (jobs run in their worker)")
    cluster_.add_argument("--actor")
    cluster_.set_defaults(func=cmd_cluster)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "versions":
        if args.action == "activate" and args.id is None:
            parser.error("versions activate needs --id")
        if args.action == "rollback" and args.kind is None:
            parser.error("versions rollback needs --kind")
    if args.command == "presets" and args.action != "list":
        needed = {"save": ("scope", "name", "config"), "activate": ("scope", "name"), "rollback": ("scope",)}
        missing = [f"--{name}" for name in needed[args.action] if getattr(args, name) is None]
        if missing:
            parser.error(f"presets {args.action} needs {', '.join(missing)}")
    from sqlalchemy.exc import OperationalError

    from recsys.accounts import AccountError

    try:
        return args.func(args)
    except IngestError as error:
        print(f"error: {error.report.message()}", file=sys.stderr)
        return 1
    except (AccountError, LookupError, ValueError, FileNotFoundError, PermissionError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except OperationalError as error:
        print(f"error: the database cannot be used: {error.orig}", file=sys.stderr)
        return 1
