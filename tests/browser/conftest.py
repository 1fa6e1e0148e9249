"""The browser tests' server and browser: Streamlit over a fresh database holding the full demo
data, as `make run` starts it, and Debian's Chromium driven by Playwright."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import ROOT

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PASSWORD = "browser-test-pass"
IDLE = '[data-testid="stApp"][data-test-script-state="notRunning"]'


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    """What `make run` starts, on free ports, over a fresh database holding the full demo data:
    `recsys init` (the demo loaded, its engines fitted), then the Procfile's app, REST service and
    job worker. Yields (app URL, folder, service URL); shared by the browser tests, in file order."""
    if not Path(CHROMIUM).exists():
        pytest.skip("Chromium is not installed (Debian: apt-get install chromium; `make test` does it)")
    folder = tmp_path_factory.mktemp("browser")
    app_port, api_port = _free_port(), _free_port()
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{folder / 'demo.db'}",
           "WORKBENCH_ADMIN_PASSWORD": PASSWORD, "HF_HUB_OFFLINE": "1", "WORKBENCH_WARM_UP": "1",
           "WORKBENCH_APP_PORT": str(app_port), "WORKBENCH_API_PORT": str(api_port),
           "WORKBENCH_JOB_WORKERS": "external", "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    subprocess.run([sys.executable, "-m", "recsys", "init"], cwd=ROOT, env=env, check=True,
                   capture_output=True, timeout=600)
    log = open(folder / "run.log", "w")
    process = subprocess.Popen([sys.executable, "-m", "honcho", "start", "-f", "Procfile"], cwd=ROOT, env=env,
                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url, service = f"http://127.0.0.1:{app_port}", f"http://127.0.0.1:{api_port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            if all(urllib.request.urlopen(probe, timeout=2).status == 200
                   for probe in (f"{url}/_stcore/health", f"{service}/health")):
                break
        except OSError:
            time.sleep(0.5)
    else:
        os.killpg(process.pid, signal.SIGKILL)
        pytest.fail(f"the app or the service did not start: {(folder / 'run.log').read_text()[-3000:]}")
    yield url, folder, service
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)


@pytest.fixture
def page(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(60_000)
        yield page
        browser.close()


def log_in(page, url: str, password: str = PASSWORD) -> None:
    page.goto(url)
    page.get_by_label("Username", exact=True).fill("admin")
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Log in").click()


def settle(page) -> None:
    """Wait until the script run that the last action started has finished."""
    page.wait_for_timeout(300)
    page.wait_for_selector(IDLE)


