"""Shared fixtures: a fresh migrated database per test, PostgreSQL when available,
and small files written the way users write them."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parent.parent
# Float32 results (embeddings, BLAS products, scores) differ in their last bits between CPUs,
# instruction sets and batch positions (3e-7 relative seen on a fresh x86-64 machine): compare
# them with this tolerance, never exactly, unless both sides ran the very same computation.
FLOAT32 = {"rtol": 1e-5, "atol": 1e-6}
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Tests never touch the real embedding cache under var/.
os.environ.setdefault("WORKBENCH_EMBEDDINGS_DIR", tempfile.mkdtemp(prefix="workbench-embeddings-"))
# ... nor the models folder: fine-tunes started by tests write to a temporary one.
os.environ.setdefault("WORKBENCH_MODELS_DIR", tempfile.mkdtemp(prefix="workbench-models-"))
# ... nor the fitted engines; and an activation does not start a background fit job: the tests
# that want fitted engines fit them in place (`recsys.engines.fit_active`) or say so.
os.environ.setdefault("WORKBENCH_ENGINES_DIR", tempfile.mkdtemp(prefix="workbench-engines-"))
os.environ.setdefault("WORKBENCH_FIT_ON_ACTIVATE", "0")
# ... nor the rankers' compiled trees (one library per model file, shared by the tests).
os.environ.setdefault("WORKBENCH_COMPILED_DIR", tempfile.mkdtemp(prefix="workbench-compiled-"))
# ... nor the keys: the master key and the pseudonymisation key are created at the first start
# (as on a new machine) in a temporary folder shared by the tests' subprocesses.
_KEYS = tempfile.mkdtemp(prefix="workbench-keys-")
os.environ.setdefault("WORKBENCH_KEYS_DIR", _KEYS)
os.environ.setdefault("WORKBENCH_SECRETS_FILE", os.path.join(_KEYS, "secrets.toml"))
# AppTests start no warm-up thread per database (ui.warmup); the browser tests' server does.
os.environ.setdefault("WORKBENCH_WARM_UP", "0")


@pytest.fixture
def db_url(tmp_path, monkeypatch) -> str:
    """A migrated SQLite database of its own, set as DATABASE_URL."""
    from db.engine import upgrade

    url = f"sqlite:///{tmp_path / 'test.db'}"
    monkeypatch.setenv("DATABASE_URL", url)
    upgrade(url)
    return url


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _postgres_bin() -> Path | None:
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return candidates[-1].parent if candidates else None


@pytest.fixture(scope="session")
def postgres_server():
    """A throw-away PostgreSQL server on a free port, or TEST_DATABASE_URL when set."""
    if os.environ.get("TEST_DATABASE_URL"):
        yield os.environ["TEST_DATABASE_URL"]
        return
    bindir = _postgres_bin()
    if bindir is None:
        pytest.skip("PostgreSQL is not installed (Debian: apt-get install postgresql; "
                    "`make test` does it); set TEST_DATABASE_URL to use another server")
    data = Path(tempfile.mkdtemp(prefix="workbench-pg-"))
    port = _free_port()
    # initdb refuses to run as root: run the server as the postgres user then.
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_user:
        shutil.chown(data, "postgres")
    run = lambda *cmd: subprocess.run([*as_user, *cmd], check=True, capture_output=True)  # noqa: E731
    run(str(bindir / "initdb"), "-D", str(data / "db"), "-A", "trust", "-U", "workbench")
    run(str(bindir / "pg_ctl"), "-D", str(data / "db"), "-l", str(data / "log"), "-w",
        "-o", f"-p {port} -k {data} -c listen_addresses=127.0.0.1 -c fsync=off", "start")
    try:
        yield f"postgresql+psycopg://workbench@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", str(data / "db"), "-m", "fast",
                        "stop"], capture_output=True)
        shutil.rmtree(data, ignore_errors=True)


@pytest.fixture
def pg_url(postgres_server, monkeypatch) -> str:
    """A fresh, migrated PostgreSQL database for one test."""
    from sqlalchemy import create_engine, text

    from db.engine import upgrade

    name = f"t{int(time.time() * 1000)}_{os.getpid()}"
    admin = create_engine(postgres_server, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f"CREATE DATABASE {name}"))
    admin.dispose()
    url = postgres_server.rsplit("/", 1)[0] + f"/{name}"
    monkeypatch.setenv("DATABASE_URL", url)
    upgrade(url)
    return url


@pytest.fixture
def write(tmp_path):
    """write("name.csv", text_or_bytes_or_frame) -> path, as a user would save it."""

    def _write(name: str, content) -> Path:
        path = tmp_path / name
        if isinstance(content, pd.DataFrame):
            if name.endswith(".parquet"):
                content.to_parquet(path, index=False)
            elif name.endswith((".jsonl", ".json")):
                content.to_json(path, orient="records", lines=True)
            else:
                content.to_csv(path, index=False, sep="\t" if name.endswith(".tsv") else ",")
        elif isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        return path

    return _write


CATALOG_CSV = """product_id,title,category,price
P1,Red mug,kitchen,3.50
P2,Blue mug,kitchen,3.00
P3,Green teapot,kitchen,12.00
P4,Garden chair,garden,45.00
"""

EVENTS_CSV = """user_id,product_id,event_type,value,timestamp
u1,P1,view,1,2024-01-01 10:00
u1,P1,purchase,2,2024-01-01 10:05
u2,P2,cart,1,2024-01-02 09:00
u2,P3,purchase,1,2024-01-02 09:10
u3,P4,rating,4,2024-01-03 12:00
"""


@pytest.fixture
def catalog_file(write) -> Path:
    return write("catalog.csv", CATALOG_CSV)


@pytest.fixture
def events_file(write) -> Path:
    return write("events.csv", EVENTS_CSV)


@pytest.fixture
def demo_sample(write) -> Path:
    """The first 5,000 invoice lines of the shipped Online Retail file."""
    frame = pd.read_parquet(ROOT / "data" / "online_retail.parquet").head(5000)
    return write("retail_sample.parquet", frame)


@pytest.fixture(autouse=True)
def navigation_as_served(monkeypatch):
    """Make AppTest run app.py on every run, as a server does.

    AppTest forgets before each run that app.py calls st.navigation, and then finds the pages/
    folder and runs the current page's script alone (multipage apps of the old kind), skipping
    app.py and its login gate. A server stops looking at pages/ once st.navigation has run.
    """
    from streamlit.runtime.pages_manager import PagesManager

    original = PagesManager.__init__

    def served(self, *args, **kwargs):
        original(self, *args, **kwargs)
        PagesManager.uses_pages_directory = False

    monkeypatch.setattr(PagesManager, "__init__", served)


@pytest.fixture(scope="session")
def ray_local():
    """A Ray instance inside the test process with 2 CPUs, started once for the session (about
    5 s) and shut down at its end; the address to give the code under test ("local")."""
    pytest.importorskip("ray")
    from recsys import cluster

    os.environ["WORKBENCH_RAY_CPUS"] = "2"
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    cluster.connect(cluster.LOCAL)
    yield cluster.LOCAL
    cluster.disconnect()


def until(check, seconds: float = 60.0, every_s: float = 0.05):
    """What `check()` returns once it is truthy, polling every `every_s`; AssertionError after `seconds`."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        found = check()
        if found:
            return found
        time.sleep(every_s)
    raise AssertionError(f"not so within {seconds:g} s")


def pseudonym(customer_id: str) -> str:
    """`customer_id` as the workbench stores it: pseudonymised with the tests' key."""
    from recsys.privacy.pseudonyms import pseudonymise

    return pseudonymise(customer_id)


# The ONNX exports, shared by tests/test_onnx_encoder.py and tests/test_embed.py (one export a session).
@pytest.fixture(scope="session")
def onnx_dir(tmp_path_factory):
    """Exports go to a temporary folder for the whole session; encoders are made afresh."""
    from recsys import onnx_encoder

    folder = tmp_path_factory.mktemp("onnx")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("WORKBENCH_ONNX_DIR", str(folder))
        onnx_encoder.cached_encoder.cache_clear()
        yield folder
        onnx_encoder.cached_encoder.cache_clear()


@pytest.fixture(scope="session")
def encoders(onnx_dir):
    """{"fp32": ..., "int8": ...}: the shipped MiniLM exported once and loaded."""
    from recsys.onnx_encoder import load_encoder

    return {precision: load_encoder(None, precision) for precision in ("fp32", "int8")}
