"""The REST service follows the active state while it runs: no restart after an activation.

A `Follower` thread reads the active state (`recsys.active.read`, a handful of small queries)
every `interval_s`. When what the service should serve differs from what it serves (another data
version or embedding model, another preset version of a scope), it builds the new
`ServingEngine` beside the one serving, answers one request of each kind with it, and swaps it
in with one assignment. A request takes the engine once when it starts, so it is answered by one
engine from start to end, and its answer names the versions of that engine; no request waits
for a swap or fails because of one.

Engines whose data changed are loaded from their fitted folders (`recsys.engines`). While the fit
job started by the activation is still running, the follower waits for it (the old engine goes
on serving); when no job is fitting them, it fits them itself. A preset alone changes nothing that
is fitted: the loaded engines are reused under the new fusion config.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone

from recsys import active as active_state
from recsys import engines as store
from recsys.erasure import erasures
from recsys.serving.engine import ServingEngine

logger = logging.getLogger(__name__)
SERVED_KINDS = ("search", "recommendations")


def served_key(state: active_state.Active) -> str:
    """What an engine built from `state` serves, as a string: equal strings, equal answers."""
    specs = store.specs_of(state)
    return json.dumps({"engines": {kind: specs[kind].key for kind in SERVED_KINDS if kind in specs},
                       "presets": {scope: [preset.label, preset.config.to_dict()]
                                   for scope, preset in sorted(state.presets.items())},
                       "experiment": None if state.experiment is None else state.experiment.key},
                      sort_keys=True)


class Follower:
    """Builds the engine of the active state of database `url` (`build`), then keeps `swap(engine)`
    fed with a new one whenever the active state changes (`start`)."""

    def __init__(self, url: str, interval_s: float = 2.0):
        self.url = url
        self.swap: Callable[[ServingEngine], None] | None = None
        self.current: str | None = None  # the served_key of the engine serving now
        self.interval_s = interval_s
        self.loaded: dict[str, object] = {}  # spec key -> fitted engine, the ones serving now
        self.swapped_at: datetime | None = None
        self.swaps = 0
        self.waiting_for: str | None = None  # why the newest state is not served yet
        # Called when customers were forgotten or old behaviour deleted (`recsys.erasure`), so that
        # what the service keeps in memory of recent behaviour is built again from SQL.
        self.on_erasure: Callable[[], None] | None = None
        self.erasures: int | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="follow-activations", daemon=True)

    def build(self) -> ServingEngine:
        """The engine of the active state now (LookupError without an active catalog and events)."""
        state = active_state.read(self.url)
        engine = ServingEngine.from_active(state, load=self._load)
        self.current = served_key(state)
        self.erasures = erasures(self.url)
        return engine

    def start(self, swap: Callable[[ServingEngine], None]) -> Follower:
        """Follow the active state from now on, handing each new engine to `swap`."""
        self.swap = swap
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.step()
            except Exception:  # noqa: BLE001 - the old engine goes on serving; the next step tries again
                logger.exception("could not follow the active state")

    def _load(self, spec: store.EngineSpec):
        if spec.key not in self.loaded:
            self.loaded[spec.key] = store.load_or_fit(spec, self.url)
        return self.loaded[spec.key]

    def step(self) -> bool:
        """Serve the active state if it is not served yet; True when a new engine was swapped in."""
        count = erasures(self.url)
        if count != self.erasures:
            if self.on_erasure is not None and self.erasures is not None:
                self.on_erasure()
            self.erasures = count
        state = active_state.read(self.url)
        wanted = served_key(state)
        if wanted == self.current:
            self.waiting_for = None
            return False
        specs = store.specs_of(state)
        missing = [specs[kind] for kind in SERVED_KINDS if kind in specs and not store.is_fitted(specs[kind])]
        if missing and store.running_fit(self.url) is not None:
            self.waiting_for = f"the fit job of {', '.join(spec.describe() for spec in missing)}"
            return False
        started = time.perf_counter()
        engine = ServingEngine.from_active(state, load=self._load)
        engine.warm_up()
        self.swap(engine)
        keep = {specs[kind].key for kind in SERVED_KINDS if kind in specs}
        self.loaded = {key: value for key, value in self.loaded.items() if key in keep}
        self.current, self.waiting_for = wanted, None
        self.swapped_at = datetime.now(timezone.utc)
        self.swaps += 1
        logger.warning("now serving %s (presets %s), built in %.1f s", engine.model_version,
                       ", ".join(f"{scope} {preset.label}" for scope, preset in engine.presets.items()),
                       time.perf_counter() - started)
        return True
