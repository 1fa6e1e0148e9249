"""`make run`'s one command: the app, the REST service and a job worker start together from the
Procfile, work together, and stop together on one Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

from recsys import jobs
from recsys.data import IngestOptions, ingest_file
from recsys.data.clean import CleaningConfig
from recsys.engines import fit_active
from recsys.evaluation.jobs import EvaluateSpec
from tests.conftest import ROOT, until


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(url: str) -> dict | str | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            body = answer.read().decode()
    except OSError:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return body



def test_one_command_starts_the_app_the_service_and_a_worker_and_one_ctrl_c_stops_them(
        db_url, catalog_file, events_file, tmp_path, monkeypatch):
    ingest_file(catalog_file, IngestOptions("catalog"), actor="test")
    ingest_file(events_file, IngestOptions("events", cleaning=CleaningConfig()), actor="test")
    fit_active(db_url)
    app_port, api_port = _free_port(), _free_port()
    env = {**os.environ, "DATABASE_URL": db_url, "WORKBENCH_APP_PORT": str(app_port),
           "WORKBENCH_API_PORT": str(api_port), "WORKBENCH_JOB_WORKERS": "external",
           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    log = open(tmp_path / "honcho.log", "w")
    honcho = subprocess.Popen([sys.executable, "-m", "honcho", "start", "-f", "Procfile"], cwd=ROOT, env=env,
                              stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        assert until(lambda: _get(f"http://127.0.0.1:{app_port}/_stcore/health"), 120, 0.3) == "ok"
        health = until(lambda: _get(f"http://127.0.0.1:{api_port}/health"), 120, 0.3)
        assert health["status"] == "ok" and health["following"] and health["data_versions"]["catalog"] == 1
        # A job queued by anyone is run by the standing worker: submit starts no worker of its own.
        monkeypatch.setenv("WORKBENCH_JOB_WORKERS", "external")
        spec = EvaluateSpec.from_dict({"algorithms": ["popularity"], "k": 2,
                                       "split": {"kind": "stratified", "test_frac": 0.5}})
        job_id = jobs.submit(spec, "olga", url=db_url)
        assert jobs.wait(job_id, url=db_url, timeout_s=120).status == "succeeded"
    finally:
        honcho.send_signal(signal.SIGINT)  # Ctrl-C
        try:
            honcho.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(honcho.pid, signal.SIGKILL)
            raise
    output = (tmp_path / "honcho.log").read_text()
    assert _get(f"http://127.0.0.1:{app_port}/_stcore/health") is None
    assert _get(f"http://127.0.0.1:{api_port}/health") is None
    for name in ("app", "api", "worker"):
        assert f"{name}.1" in output, output[-3000:]
