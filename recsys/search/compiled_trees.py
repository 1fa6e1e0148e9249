"""A LightGBM model compiled to machine code, for the learned ranker's predictions in every search.

LightGBM's `predict` walks each tree node by node through generic code: 0.64 ms for the 100
candidates of a search over the 160 trees of the Home Depot ranker, a third of what the ranker adds
to a search. treelite reads the LightGBM model file and tl2cgen writes it out as C (each tree a
nest of if-else on the features) that the system's C compiler builds into a shared library: the
same scores to the last bit, in 0.2-0.3 ms (docs/benchmarks.md, "Learned ranker").

A library is compiled once per model file and kind of machine, under ``<artifact folder>/compiled``
(``$WORKBENCH_COMPILED_DIR``), named by the file's content hash: replicas sharing the folder
compile a ranker once, and a model trained again gets a library of its own. Compiling takes about
2 s; training a ranker does it before the folder is used. Where no C compiler is installed (gcc
or clang), or ``$WORKBENCH_COMPILE_TREES=0``, `compiled_trees` returns None, says why once in the
log, and the ranker predicts with LightGBM: slower, the same scores. treelite is pinned to 4.1.2,
the version tl2cgen 1.0 is built with (a model read by a newer treelite loads with a warning).

>>> trees = compiled_trees("var/models/hd-ranker/ranker.txt")       # doctest: +SKIP
>>> trees.predict(features)                                          # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import platform
import shutil
import threading
import uuid
from functools import lru_cache
from pathlib import Path

import numpy as np

from recsys.artifacts import artifact_path

COMPILE_ENV = "WORKBENCH_COMPILE_TREES"  # "0": predict with LightGBM, compile nothing
TOOLCHAINS = ("gcc", "clang")            # what tl2cgen can drive, in the order tried
log = logging.getLogger(__name__)


class CompilerMissing(RuntimeError):
    """No C compiler tl2cgen can drive is on the PATH."""


def library_path(model_file: Path) -> Path:
    """Where the compiled library of `model_file` lives: its content hash, the machine's kind and
    tl2cgen's version name it (a library built by another version or for another CPU is not
    reused)."""
    import tl2cgen

    digest = hashlib.sha256(model_file.read_bytes()).hexdigest()[:16]
    return (artifact_path("compiled", "WORKBENCH_COMPILED_DIR")
            / f"trees-{digest}-{platform.machine()}-tl2cgen{tl2cgen.__version__}.so")


def compile_library(model_file: str | os.PathLike) -> Path:
    """The compiled library of the LightGBM model in `model_file`, built first when missing.

    The library is written under a private name and renamed into place, so a process loading it
    never sees half a file and two processes compiling at once both succeed. Raises
    CompilerMissing without a C compiler, and treelite's or tl2cgen's error on a model they cannot
    read or a compiler failure."""
    model_file = Path(model_file)
    target = library_path(model_file)
    if target.is_file():
        return target
    toolchain = next((name for name in TOOLCHAINS if shutil.which(name)), None)
    if toolchain is None:
        raise CompilerMissing(f"no C compiler ({' or '.join(TOOLCHAINS)}) is on the PATH")
    import tl2cgen
    import treelite

    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.stem}-{os.getpid()}-{uuid.uuid4().hex[:8]}.so")
    model = treelite.frontend.load_lightgbm_model(str(model_file))
    threads = os.cpu_count() or 1
    # tl2cgen's native library prints its log lines with Python's `print`, to standard output,
    # where commands such as `train-ranker` write their JSON: they go to this module's log instead.
    said = io.StringIO()
    try:
        with contextlib.redirect_stdout(said):
            # The trees split into a few C files compiled side by side: 2.1 s on two cores,
            # against 3.5 s for one file.
            tl2cgen.export_lib(model, toolchain=toolchain, libpath=str(temporary),
                               params={"parallel_comp": 2 * threads}, nthread=threads)
        temporary.replace(target)
    finally:
        temporary.unlink(missing_ok=True)
        if said.getvalue().strip():
            log.debug("tl2cgen: %s", said.getvalue().strip())
    return target


class CompiledTrees:
    """The predictions of one compiled model; `predict` may be called from several threads."""

    def __init__(self, library: Path):
        import tl2cgen

        self.library = library
        self._predictor = tl2cgen.Predictor(str(library), nthread=1)
        self._lock = threading.Lock()  # tl2cgen's predictor takes one thread at a time

    def predict(self, rows: np.ndarray) -> np.ndarray:
        """The model's raw score of each row (what LightGBM's `predict` gives a ranker)."""
        import tl2cgen

        matrix = tl2cgen.DMatrix(np.ascontiguousarray(rows, dtype=np.float64))
        with self._lock:
            scores = self._predictor.predict(matrix, pred_margin=True)
        return np.asarray(scores, dtype=np.float64).reshape(len(rows))


@lru_cache(maxsize=8)
def _cached(model_file: str, identity: str) -> CompiledTrees | None:
    """`compiled_trees` for one version of `model_file` (`identity`: its size and time)."""
    try:
        return CompiledTrees(compile_library(model_file))
    except Exception as error:  # no compiler, a compile error, a library that does not load
        log.warning("the trees of %s are not compiled (%s): LightGBM predicts them, about 2-3 times "
                    "slower, with the same scores", model_file, error)
        return None


def compiled_trees(model_file: str | os.PathLike) -> CompiledTrees | None:
    """The compiled predictions of the LightGBM model in `model_file`, compiled on first use; None
    where trees are not compiled (no C compiler, or ``$WORKBENCH_COMPILE_TREES=0``): the caller
    predicts with LightGBM."""
    if os.environ.get(COMPILE_ENV, "").strip() == "0":
        return None
    path = Path(model_file).resolve()
    stat = path.stat()
    return _cached(str(path), f"{stat.st_size}-{stat.st_mtime_ns}")
