"""Where heavy work runs: in this process (the embedded default), or on a Ray cluster.

A Ray cluster is named by ``$RAY_ADDRESS`` or, when that is unset, by the setting ``ray`` in SQL
(``{"address": ...}``, edited on the Jobs page by accounts with "settings"); with neither, nothing
here starts Ray and every job runs as it always has. An address is what ``ray.init`` takes:
``HOST:PORT`` of a cluster's head (its GCS port, 6379 by default), ``ray://HOST:PORT`` (Ray
Client), or ``local`` for a Ray instance started inside this process (tests, a single GPU box),
with ``$WORKBENCH_RAY_CPUS`` / ``$WORKBENCH_RAY_GPUS`` CPUs and GPUs (default: what the machine
has).

`connect` first opens a TCP connection to the head (3 s), so that an unreachable address fails at
once with the reason, where ``ray.init`` alone would wait for minutes.

Ray is an optional extra at run time (``pip install "ray[data,train]"``; requirements.txt pins it
for the tests): importing this module does not import Ray.

>>> parse_address("ray://head.internal:10001")
('head.internal', 10001)
>>> parse_address("10.0.0.5")
('10.0.0.5', 6379)
>>> parse_address("local") is None
True
"""

from __future__ import annotations

import os
import socket
import threading
from dataclasses import dataclass

from db import queries
from db.engine import session_scope

RAY_ADDRESS_ENV = "RAY_ADDRESS"
SETTING_KEY = "ray"
LOCAL = "local"
CONNECT_TIMEOUT_S = 3.0
DEFAULT_GCS_PORT = 6379
INSTALL_HINT = 'Ray is not installed here: pip install "ray[data,train]==2.60.0"'

_lock = threading.Lock()
_connected: str | None = None


class ClusterUnavailable(RuntimeError):
    """The Ray cluster that the settings name cannot be used (unreachable, or Ray missing)."""


def ray_address(url: str | None = None) -> str | None:
    """The Ray address in force: ``$RAY_ADDRESS``, else the ``ray`` setting's address, else None
    (no cluster: jobs run in their worker process, as without Ray)."""
    return address_in_force(url)[0]


def address_in_force(url: str | None = None) -> tuple[str | None, str | None]:
    """(the Ray address in force, where it comes from: "environment" for ``$RAY_ADDRESS``,
    "setting" for the ``ray`` setting), or (None, None) when no cluster is named."""
    address = os.environ.get(RAY_ADDRESS_ENV, "").strip()
    if address:
        return address, "environment"
    address = setting_address(url)
    return address, "setting" if address else None


def setting_address(url: str | None = None) -> str | None:
    """The address the ``ray`` setting names (None: none), whether or not ``$RAY_ADDRESS`` wins."""
    try:
        with session_scope(url) as session:
            setting = queries.get_setting(session, SETTING_KEY) or {}
    except Exception:  # noqa: BLE001 - a database without the settings table has no cluster either
        return None
    return (setting.get("address") or "").strip() or None


def set_ray_address(address: str | None, actor: str, url: str | None = None) -> None:
    """Store the ``ray`` setting (None or "": no cluster). The address must parse; whether it is
    reachable is `check`'s business, so a cluster that is down for maintenance can be named."""
    address = (address or "").strip() or None
    if address is not None:
        parse_address(address)
    with session_scope(url) as session:
        queries.set_setting(session, SETTING_KEY, {"address": address}, actor)


def parse_address(address: str) -> tuple[str, int] | None:
    """(host, port) of a cluster's head, or None for ``local`` (ValueError naming a bad address)."""
    address = address.strip()
    if address == LOCAL:
        return None
    rest = address.removeprefix("ray://")
    host, colon, port = rest.rpartition(":")
    if not colon:
        host, port = rest, str(DEFAULT_GCS_PORT)
    if not host or not port.isdigit() or not 0 < int(port) < 65536 or "/" in host:
        raise ValueError(f"{address!r} is not a Ray address: write HOST:PORT, ray://HOST:PORT or {LOCAL!r}")
    return host, int(port)


def reachable(address: str, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """Raise ClusterUnavailable when the head named by `address` does not accept a TCP connection."""
    head = parse_address(address)
    if head is None:
        return
    try:
        with socket.create_connection(head, timeout=timeout_s):
            pass
    except OSError as error:
        reason = "timed out" if isinstance(error, TimeoutError) else (error.strerror or str(error))
        raise ClusterUnavailable(f"cannot reach the Ray cluster at {address} ({reason}); check "
                                 f"${RAY_ADDRESS_ENV} or the Ray address on the Jobs page") from None


def connect(address: str) -> None:
    """Join the Ray cluster at `address` from this process (once; again only for another address).

    ClusterUnavailable, with the reason, when Ray is missing or the head cannot be reached.
    """
    global _connected
    with _lock:
        try:
            import ray
        except ImportError:
            raise ClusterUnavailable(INSTALL_HINT) from None
        if ray.is_initialized() and _connected == address:
            return
        reachable(address)
        if ray.is_initialized():
            ray.shutdown()
        options = {"log_to_driver": False, "include_dashboard": False, "runtime_env": runtime_env()}
        try:
            if address == LOCAL:
                cpus, gpus = os.environ.get("WORKBENCH_RAY_CPUS"), os.environ.get("WORKBENCH_RAY_GPUS")
                ray.init(num_cpus=int(cpus) if cpus else None, num_gpus=int(gpus) if gpus else None,
                         **options)
            else:
                ray.init(address=address, **options)
        except Exception as error:  # noqa: BLE001 - Ray's own errors vary by version; the reason is kept
            raise ClusterUnavailable(f"could not join the Ray cluster at {address}: {error}") from error
        _connected = address


FORWARDED_PREFIXES = ("WORKBENCH_", "DATABASE_URL", "HF_", "TRANSFORMERS_", "TOKENIZERS_")


def runtime_env() -> dict:
    """What Ray's workers get: the project's packages (`recsys`, `db`, shipped by Ray to every node
    of the cluster, so the nodes need only the requirements installed) and this process's
    settings (the database, the model and artifact folders, offline mode)."""
    import db
    import recsys

    forwarded = {name: value for name, value in os.environ.items() if name.startswith(FORWARDED_PREFIXES)}
    return {"py_modules": [recsys, db], "env_vars": forwarded}


def disconnect() -> None:
    global _connected
    with _lock:
        try:
            import ray
        except ImportError:
            return
        if ray.is_initialized():
            ray.shutdown()
        _connected = None


@dataclass(frozen=True)
class ClusterStatus:
    address: str
    nodes: int
    cpus: float
    gpus: float
    ray_version: str

    def to_dict(self) -> dict:
        return {"address": self.address, "nodes": self.nodes, "cpus": self.cpus, "gpus": self.gpus,
                "ray_version": self.ray_version}


def check(address: str) -> ClusterStatus:
    """Join `address` and say what it offers (ClusterUnavailable with the reason when it cannot)."""
    connect(address)
    import ray

    resources = ray.cluster_resources()
    nodes = sum(1 for node in ray.nodes() if node.get("Alive"))
    return ClusterStatus(address, nodes, float(resources.get("CPU", 0)), float(resources.get("GPU", 0)),
                         ray.__version__)
