"""Two replicas of the REST service (`python -m recsys serve` processes) sharing one PostgreSQL and one
artifact folder, as behind a load balancer; and the artifact folder's start-up check."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import urllib.request
from datetime import timedelta
from pathlib import Path

import pytest

from db.engine import session_scope
from db.models import utc_now
from recsys.artifacts import ARTIFACTS_ENV, EXIT_STATUS
from recsys.data import IngestOptions, ingest_file
from recsys.data.clean import CleaningConfig
from recsys.engines import engines_dir, fit_active
from recsys.fusion import FusionConfig, presets
from recsys.serving.keys import issue_key
from recsys.services import monitoring
from tests.conftest import ROOT, until

CATALOG = "product_id,title,category\nP1,Red mug,kitchen\nP2,Blue mug,kitchen\nP3,Green teapot,kitchen\n"
EVENTS = ("user_id,product_id,event_type,timestamp\nu1,P1,purchase,2024-01-01\nu1,P3,purchase,2024-01-02\n"
          "u2,P1,purchase,2024-01-03\nu2,P2,purchase,2024-01-04\n")
ENGINES = "WORKBENCH_ENGINES_DIR"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _environment(**changes: str | None) -> dict:
    """This process's environment for a subprocess without the tests' engines folder (a replica
    finds the fitted engines under WORKBENCH_ARTIFACTS_DIR), with `changes` (None: unset)."""
    env = {name: value for name, value in os.environ.items() if name != ENGINES}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPATH"] = str(ROOT)
    for name, value in changes.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def _get(url: str, key: str | None = None) -> dict:
    request = urllib.request.Request(url, headers={"X-API-Key": key} if key else {})
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.load(answer)


@pytest.fixture
def shared_folder(tmp_path, monkeypatch) -> Path:
    """The artifact folder the test process and both replicas share; the engines are fitted into it."""
    folder = tmp_path / "artifacts"
    folder.mkdir()
    monkeypatch.delenv(ENGINES)
    monkeypatch.setenv(ARTIFACTS_ENV, str(folder))
    return folder


def test_two_replicas_share_postgresql_and_the_artifact_folder(pg_url, shared_folder, write, tmp_path):
    ingest_file(write("catalog.csv", CATALOG), IngestOptions("catalog"), actor="test")
    ingest_file(write("events.csv", EVENTS), IngestOptions("events", cleaning=CleaningConfig()), actor="test")
    with session_scope() as session:
        presets.ensure_default_presets(session)
    fit_active(pg_url)
    assert engines_dir() == shared_folder / "engines" and any(engines_dir().iterdir())
    key = issue_key("tests", actor="test", url=pg_url).key
    ports = [_free_port(), _free_port()]
    names = ["replica-a", f"{socket.gethostname()}:{ports[1]}"]  # the second by default: host:port
    started = utc_now() - timedelta(seconds=1)
    logs = [tmp_path / f"replica-{number}.log" for number in (1, 2)]
    processes = [subprocess.Popen(
        [sys.executable, "-m", "recsys", "serve", "--port", str(port), "--follow", "0.2",
         "--alerts-interval", "0"], cwd=ROOT,
        env=_environment(DATABASE_URL=pg_url, WORKBENCH_REPLICA=replica),
        stdout=subprocess.DEVNULL, stderr=log.open("w"))
        for port, replica, log in zip(ports, ["replica-a", None], logs, strict=True)]
    urls = [f"http://127.0.0.1:{port}" for port in ports]
    try:
        def up() -> bool:
            for process, log in zip(processes, logs, strict=True):
                if process.poll() is not None:
                    raise AssertionError(f"a replica stopped: {log.read_text()[-2000:]}")
            try:
                return all(_get(f"{url}/health")["status"] == "ok" for url in urls)
            except OSError:
                return False

        until(up, seconds=300, every_s=0.5)
        assert [_get(f"{url}/health")["replica"] for url in urls] == names
        for url in urls:  # both serve, from the engines fitted once in the shared folder
            found = _get(f"{url}/search?q=mug&k=3", key)
            assert found["preset_version"] == "default v1" and found["items"][0]["product_id"] in {"P1", "P2"}

        # An activation made through the library (no restart, no call to either replica): both follow it.
        rule = {"kind": "pin", "product_id": "P3", "position": 1, "when_query": "mug"}
        with session_scope() as session:
            presets.save_preset(session, "search", "teapot-first",
                                FusionConfig.from_dict({**presets.default_config("search").to_dict(),
                                                        "rules": [rule]}), "olga", activate=True)
        for url in urls:
            until(lambda url=url: _get(f"{url}/health")["presets"]["search"]["label"] == "teapot-first v1",
                  seconds=60)
            pinned = _get(f"{url}/search?q=mug&k=3", key)
            assert pinned["preset_version"] == "teapot-first v1" and pinned["items"][0]["product_id"] == "P3"

        # Each replica's requests are recorded under its name, and the monitoring query groups by it.
        def recorded():
            data = monitoring.load(pg_url, started, utc_now() + timedelta(seconds=1))
            table = monitoring.by_replica(data["frame"], 60)
            counts = dict(zip(table["replica"], table["requests"], strict=True))
            return (data, counts) if all(counts.get(name, 0) >= 2 for name in names) else None

        data, counts = until(recorded, seconds=30, every_s=0.2)
        assert data["replicas"] == sorted(names) and set(counts) == set(names)
        one = monitoring.load(pg_url, started, utc_now() + timedelta(seconds=1), replica="replica-a")
        assert set(one["frame"]["replica"]) == {"replica-a"} and len(one["frame"]) == counts["replica-a"]
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=60)


def _start(command: str, env: dict, as_root_without_override: bool = False) -> subprocess.CompletedProcess:
    """`python -m recsys <command>` to its end (it must refuse to start at once)."""
    argv = [sys.executable, "-m", "recsys", *command.split()]
    if as_root_without_override:
        # root writes anywhere: without these capabilities it obeys the folder's mode like anyone
        argv = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", *argv]
    return subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("command, what", [("serve --port 1", "the REST service"),
                                            ("serve-grpc --port 1", "the gRPC service"),
                                            ("worker --once", "the job worker"), ("app --port 1", "the app")])
def test_a_missing_artifact_folder_stops_each_process_at_start(tmp_path, command, what):
    missing = tmp_path / "not-mounted"
    done = _start(command, _environment(**{ARTIFACTS_ENV: str(missing)}))
    assert done.returncode == EXIT_STATUS
    assert (f"error: {what} cannot start: the artifact folder {ARTIFACTS_ENV}={missing} does not exist"
            in done.stderr)
    assert "Traceback" not in done.stderr and not missing.exists()


def test_a_read_only_artifact_folder_or_sub_folder_stops_the_service(tmp_path):
    root = os.geteuid() == 0
    if root and shutil.which("setpriv") is None:
        pytest.skip("as root, a read-only folder is checked without CAP_DAC_OVERRIDE (setpriv, util-linux)")
    read_only = tmp_path / "read-only"
    read_only.mkdir(mode=0o555)
    read_only.chmod(0o555)  # whatever the umask
    done = _start("serve --port 1", _environment(**{ARTIFACTS_ENV: str(read_only)}), root)
    assert done.returncode == EXIT_STATUS, done.stderr
    assert (f"the artifact folder {ARTIFACTS_ENV}={read_only} cannot be written by this process "
            "(Permission denied)") in done.stderr

    # A sub-folder's own setting is checked too, with its own name in the message.
    done = _start("serve --port 1", _environment(**{ARTIFACTS_ENV: str(tmp_path),
                                                    ENGINES: str(read_only)}), root)
    assert done.returncode == EXIT_STATUS
    assert f"WORKBENCH_ENGINES_DIR={read_only} cannot be written" in done.stderr
