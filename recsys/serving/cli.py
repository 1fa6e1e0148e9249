"""`python -m recsys serve`, `serve-grpc` and `python -m recsys apikey create|list|revoke`.

    python -m recsys serve --host 127.0.0.1 --port 8000
    python -m recsys serve-grpc --host 127.0.0.1 --port 50051   # the same calls over gRPC
    python -m recsys apikey create --name shop-frontend     # prints the key, once
    python -m recsys apikey list
    python -m recsys apikey revoke --id 3

`add_parser(subparsers)` adds the commands to the CLI's subparsers.

Like `recsys.cli`, each command imports what it runs inside its function, so that the
others start without loading the models' libraries.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

ENVIRONMENT = {  # serve's options, passed to uvicorn's worker processes through the environment
    "compute_threads": "WORKBENCH_SERVE_COMPUTE_THREADS",
    "blas_threads": "WORKBENCH_SERVE_BLAS_THREADS",
    "alerts_interval": "WORKBENCH_SERVE_ALERTS_INTERVAL",
    "follow": "WORKBENCH_SERVE_FOLLOW",
}


def add_parser(subparsers) -> None:
    """Add `serve`, `serve-grpc` and `apikey` to the CLI's subparsers."""
    serve = subparsers.add_parser(
        "serve", help="run the REST service (FastAPI on uvicorn)",
        description="Serve /search, /recommend/{user_id}, /similar/{product_id}, /health and "
                    "/metrics over the active catalog, events and presets; the schema is at /docs.")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1,
                       help="uvicorn worker processes, each with its own copy of the models (default 1)")
    add_service_options(serve)
    serve.add_argument("--log-level", default="warning",
                       choices=["critical", "error", "warning", "info", "debug"])
    serve.set_defaults(func=cmd_serve)

    serve_grpc = subparsers.add_parser(
        "serve-grpc", help="run the gRPC service (search, recommendations, similar items)",
        description="Serve the Workbench gRPC service (recsys/serving/protos/workbench.proto: Search, "
                    "Recommend, Similar) over the active catalog, events and presets, with the REST "
                    "service's keys, limits, experiments and request metrics.")
    serve_grpc.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve_grpc.add_argument("--port", type=int, default=50051)
    add_service_options(serve_grpc)
    serve_grpc.add_argument("--log-level", default="warning",
                            choices=["critical", "error", "warning", "info", "debug"])
    serve_grpc.set_defaults(func=cmd_serve_grpc)

    apikey = subparsers.add_parser("apikey", help="issue, list or revoke API keys of the REST service")
    apikey.add_argument("action", choices=["create", "list", "revoke"])
    apikey.add_argument("--name", help="who or what will use the key (create)")
    apikey.add_argument("--id", type=int, help="the key to revoke")
    apikey.add_argument("--actor", help="who is acting (default $USER)")
    apikey.set_defaults(func=cmd_apikey)


def add_service_options(parser) -> None:
    """The options `serve` and `serve-grpc` share: threads, alerts, following activations."""
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads per worker; 0: the cores divided among the workers "
                             "(default 1: with the cores busy serving several requests, 2 threads "
                             "made one search several times slower)")
    parser.add_argument("--compute-threads", type=int, default=1,
                        help="requests computed at once per worker (default 1; 0: on the event loop)")
    parser.add_argument("--blas-threads", type=int, default=1,
                        help="numpy BLAS threads (default 1: BLAS and torch sharing 2 cores slowed "
                             "single requests down)")
    parser.add_argument("--alerts-interval", type=float, default=15.0,
                        help="seconds between alert evaluations (0: do not evaluate alerts here)")
    parser.add_argument("--follow", type=float, default=2.0,
                        help="seconds between looks at what is active; a new activation is served without a "
                             "restart (0: serve what was active at the start only)")


def configure_threads(torch_threads: int, blas_threads: int) -> None:
    """Fix torch's and numpy BLAS's thread counts before the models load."""
    from threadpoolctl import threadpool_limits

    from recsys.embeddings import configure_threads as configure_torch

    configure_torch(torch_threads or None)
    if blas_threads > 0:
        threadpool_limits(blas_threads, user_api="blas")


def app_from_environment():
    """The app of one uvicorn worker, configured by `serve` through the environment."""
    from recsys.serving.app import create_app

    configure_threads(int(os.environ.get("WORKBENCH_THREADS", 0)),
                      int(os.environ.get(ENVIRONMENT["blas_threads"], 1)))
    interval = float(os.environ.get(ENVIRONMENT["alerts_interval"], 15.0))
    follow = float(os.environ.get(ENVIRONMENT["follow"], 2.0))
    return create_app(compute_threads=int(os.environ.get(ENVIRONMENT["compute_threads"], 1)),
                      alerts_interval_s=interval if interval > 0 else None,
                      follow_s=follow if follow > 0 else None)


def cmd_serve(args) -> int:
    import uvicorn

    from db.engine import upgrade
    from recsys.artifacts import exit_if_unusable
    from recsys.serving.service import REPLICA_ENV, replica_name

    if args.workers < 1 or args.compute_threads < 0 or args.threads < 0:
        print("error: --workers must be at least 1, --threads and --compute-threads 0 or more",
              file=sys.stderr)
        return 1
    exit_if_unusable("the REST service")
    os.environ[REPLICA_ENV] = replica_name(args.port)  # ValueError for a bad $WORKBENCH_REPLICA
    upgrade()
    threads = args.threads or max(1, (os.cpu_count() or 1) // args.workers)
    os.environ["WORKBENCH_THREADS"] = str(threads)
    os.environ[ENVIRONMENT["compute_threads"]] = str(args.compute_threads)
    os.environ[ENVIRONMENT["blas_threads"]] = str(args.blas_threads)
    os.environ[ENVIRONMENT["alerts_interval"]] = str(args.alerts_interval)
    os.environ[ENVIRONMENT["follow"]] = str(args.follow)
    print(f"serving on http://{args.host}:{args.port} (schema: http://{args.host}:{args.port}/docs); "
          f"{args.workers} worker(s), {threads} torch thread(s) each", file=sys.stderr)
    uvicorn.run("recsys.serving.cli:app_from_environment", factory=True, host=args.host,
                port=args.port, workers=args.workers, log_level=args.log_level,
                access_log=False, timeout_graceful_shutdown=30)
    return 0


def cmd_serve_grpc(args) -> int:
    import asyncio
    import logging
    import signal

    from db.engine import upgrade
    from recsys.artifacts import exit_if_unusable
    from recsys.serving.service import REPLICA_ENV, replica_name
    from recsys.serving.grpc_service import serve

    if args.compute_threads < 0 or args.threads < 0:
        print("error: --threads and --compute-threads must be 0 or more", file=sys.stderr)
        return 1
    exit_if_unusable("the gRPC service")
    os.environ[REPLICA_ENV] = replica_name(args.port)
    logging.basicConfig(level=args.log_level.upper())
    upgrade()
    threads = args.threads or (os.cpu_count() or 1)
    os.environ["WORKBENCH_THREADS"] = str(threads)  # what the ONNX query encoder reads, as under serve
    configure_threads(threads, args.blas_threads)

    async def main() -> None:
        stop = asyncio.Event()
        for number in (signal.SIGINT, signal.SIGTERM):  # stop gracefully: the writers flush
            asyncio.get_running_loop().add_signal_handler(number, stop.set)
        await serve(args.host, args.port, stop=stop,
                    ready=lambda port: print(f"serving gRPC on {args.host}:{port}", file=sys.stderr),
                    compute_threads=args.compute_threads,
                    alerts_interval_s=args.alerts_interval if args.alerts_interval > 0 else None,
                    follow_s=args.follow if args.follow > 0 else None)

    asyncio.run(main())
    return 0


def cmd_apikey(args) -> int:
    from recsys.serving.keys import issue_key, list_keys, revoke_key

    actor = args.actor or os.environ.get("USER") or "cli"
    if args.action == "create":
        if not args.name or not args.name.strip():
            print("error: apikey create needs --name, e.g. --name shop-frontend", file=sys.stderr)
            return 1
        issued = issue_key(args.name, actor=actor)
        print("This key is shown only this once; only its hash is kept. Store it now.",
              file=sys.stderr)
        print(json.dumps({"id": issued.id, "name": issued.name, "prefix": issued.prefix,
                          "key": issued.key}))
    elif args.action == "list":
        print(json.dumps(list_keys().to_dict("records"), default=str, indent=2))
    else:
        if args.id is None:
            print("error: apikey revoke needs --id (see `apikey list`)", file=sys.stderr)
            return 1
        revoke_key(args.id, actor=actor)
        print(json.dumps({"revoked": args.id}))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run these commands alone: `python -m recsys.serving.cli serve ...` (used by bench/)."""
    parser = argparse.ArgumentParser(prog="python -m recsys.serving.cli")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except LookupError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
