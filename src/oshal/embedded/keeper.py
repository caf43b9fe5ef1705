"""Keeps the embedded engines running: one that dies is restarted on the same data, socket and users, with backoff.

A thread polls each engine's process. A dead one is restarted after 0.25 s, then 0.5 s, 1 s, ... up to 30 s while
restarts keep failing (e.g. Postgres refusing to start while processes of the crashed server still hold its shared
memory); the delay resets once the engine has stayed up for a minute. "Up" means ready (an authenticated
PING / ``SELECT 1`` answered), not merely running.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, Protocol

from oshal.embedded._child import Child
from oshal.logs import get_logger

log = get_logger(__name__)

State = Literal["up", "down", "starting"]


class Engine(Protocol):
    child: Child | None

    def spawn(self) -> None: ...

    def ready(self) -> bool: ...


@dataclass
class EngineStatus:
    state: State = "up"
    since: float = 0.0  # wall-clock time it last became up, or stopped being up
    restarts: int = 0
    last_exit: int | None = None


@dataclass
class _Watch:
    engine: Engine
    status: EngineStatus
    failures: int = 0
    next_attempt: float = 0.0  # monotonic
    changed_at: float = 0.0  # monotonic time of the last state change


class EngineKeeper:
    def __init__(self, engines: Mapping[str, Engine], *, poll_s: float = 0.2, first_delay_s: float = 0.25,
                 max_delay_s: float = 30.0, stable_after_s: float = 60.0, start_timeout_s: float = 120.0) -> None:
        now = time.monotonic()
        self._watches = {name: _Watch(engine, EngineStatus(since=time.time()), changed_at=now)
                         for name, engine in engines.items()}
        self.poll_s = poll_s
        self.first_delay_s = first_delay_s
        self.max_delay_s = max_delay_s
        self.stable_after_s = stable_after_s
        self.start_timeout_s = start_timeout_s
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="engine-keeper", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop watching (before the engines are stopped on purpose, so none is restarted)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.start_timeout_s)
            self._thread = None

    def status(self) -> dict[str, EngineStatus]:
        with self._lock:
            return {name: EngineStatus(**vars(w.status)) for name, w in self._watches.items()}

    def _run(self) -> None:
        while not self._stop.wait(self.poll_s):
            for name, watch in self._watches.items():
                if self._stop.is_set():
                    return
                try:
                    self._tick(name, watch, time.monotonic())
                except Exception:  # the keeper must outlive any one engine's trouble
                    log.exception("engine keeper error", engine=name)

    def _delay(self, failures: int) -> float:
        return float(min(self.first_delay_s * 2 ** failures, self.max_delay_s))

    def _set(self, watch: _Watch, state: State, now: float, *, went_up_or_down: bool) -> None:
        with self._lock:
            watch.status.state = state
            if went_up_or_down:
                watch.status.since = time.time()
        watch.changed_at = now

    def _tick(self, name: str, watch: _Watch, now: float) -> None:
        engine, status = watch.engine, watch.status
        child = engine.child
        if status.state == "up":
            if child is not None and child.running:
                if watch.failures and now - watch.changed_at >= self.stable_after_s:
                    watch.failures = 0
                return
            status.last_exit = child.exit_code if child else None
            delay = self._delay(watch.failures)
            log.warning("engine died; restarting it", engine=name, exit_code=status.last_exit, in_s=delay)
            watch.next_attempt = now + delay
            self._set(watch, "down", now, went_up_or_down=True)
        elif status.state == "down":
            if now < watch.next_attempt:
                return
            try:
                engine.spawn()
            except Exception as e:
                self._retry_later(name, watch, now, f"could not start: {e}")
                return
            with self._lock:
                status.restarts += 1
            self._set(watch, "starting", now, went_up_or_down=False)
        elif child is None or not child.running:
            status.last_exit = child.exit_code if child else None
            self._retry_later(name, watch, now, f"exited with code {status.last_exit} while starting")
        elif engine.ready():
            down_for = time.time() - status.since
            self._set(watch, "up", now, went_up_or_down=True)
            log.warning("engine restarted and ready", engine=name, pid=child.pid, down_for_s=round(down_for, 2),
                        restarts=status.restarts)
        elif now - watch.changed_at > self.start_timeout_s:
            child.stop()
            self._retry_later(name, watch, now, f"not ready after {self.start_timeout_s:.0f}s")

    def _retry_later(self, name: str, watch: _Watch, now: float, reason: str) -> None:
        watch.failures += 1
        delay = self._delay(watch.failures)
        log.warning("engine restart failed; retrying", engine=name, reason=reason, in_s=delay)
        watch.next_attempt = now + delay
        self._set(watch, "down", now, went_up_or_down=False)


__all__ = ["Engine", "EngineKeeper", "EngineStatus"]
