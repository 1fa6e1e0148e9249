"""The layers of the code, as pyproject.toml's import-linter contracts write them down: pages, then
ui, then the library (its command line and service, the job runners and services, the engines, their
building blocks), then db; only the library reaches SQL, and it knows nothing of Streamlit; the REST
and gRPC front ends share one service core and never import each other."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT


def test_every_import_keeps_to_the_layers():
    lint = Path(sys.executable).parent / "lint-imports"
    done = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "Contracts: 5 kept, 0 broken." in done.stdout
