"""The engines as the control plane sees them: which one is down, since when, and what to do when Redis comes back.

A probe runs every second and on every ``/readyz``. Postgres is ready when it answers ``SELECT 1``; Redis when it
answers an authenticated PING (redis-py raises ``BusyLoadingError`` while it is still loading its data, and an
``AuthenticationError`` for a refused login, so neither counts). When Redis answers as a new server (its ``run_id``
changed: a restart, a failover), ``on_new_redis`` runs for it at once, to give back bot identities it lacks before
the bots' next login attempt; it runs again every ``recheck_s`` in case users vanish from a running server.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis

from oshal.logs import get_logger
from oshal.store.db import Database

log = get_logger(__name__)

ENGINES = ("postgres", "redis")


@dataclass
class EngineState:
    ready: bool = True
    since: float = field(default_factory=time.time)  # wall-clock time of the last change between ready and not
    error: str | None = None  # the exception type only: /readyz is public, the details go to the log

    def summary(self) -> str:
        if self.ready:
            return "ok"
        return f"down since {_iso(self.since)} ({time.time() - self.since:.0f}s): {self.error}"

    def as_dict(self) -> dict[str, Any]:
        return {"ready": self.ready, "since": _iso(self.since), "for_s": round(time.time() - self.since, 1),
                "error": self.error}


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class EngineHealth:
    def __init__(self, db: Database, redis: Redis, on_new_redis: Callable[[], Awaitable[None]], *,
                 interval_s: float = 1.0, timeout_s: float = 2.0, recheck_s: float = 15.0) -> None:
        self.db = db
        self.redis = redis
        self.on_new_redis = on_new_redis
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self.recheck_s = recheck_s
        self.states = {name: EngineState() for name in ENGINES}
        self._postgres_server: object = None  # the server's start time at the last probe
        self._redis_server: str | None = None  # run_id of the server on_new_redis last succeeded for ...
        self._restored_at = 0.0  # ... and when (monotonic)
        self._failed_for: str | None = None  # run_id whose on_new_redis failure was logged
        self._new_redis_lock = asyncio.Lock()
        self._probing = asyncio.Lock()
        self._checked_at = -math.inf  # monotonic time of the last probe (never yet)

    async def check(self) -> dict[str, EngineState]:
        """Probe both engines now; returns their states (each with the time it last changed)."""
        async with self._probing:
            results = await asyncio.gather(self._timed(self._probe_postgres()), self._timed(self._probe_redis()))
            for name, error in zip(ENGINES, results, strict=True):
                self._record(name, error)
            self._checked_at = time.monotonic()
        return dict(self.states)

    async def current(self) -> dict[str, EngineState]:
        """The states as of the last probe, probing only when that is older than the interval: the public
        readiness probe answers from here, so a flood of requests costs the engines nothing more."""
        if time.monotonic() - self._checked_at < self.interval_s:
            return dict(self.states)
        async with self._probing:  # concurrent callers wait for the one probe in flight ...
            fresh = time.monotonic() - self._checked_at < self.interval_s
        return dict(self.states) if fresh else await self.check()  # ... and use it

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.check()
            except Exception:
                log.exception("engine health check failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval_s)

    async def _timed(self, probe: Awaitable[None]) -> Exception | None:
        try:
            await asyncio.wait_for(probe, self.timeout_s)
        except Exception as e:
            return e
        return None

    async def _probe_postgres(self) -> None:
        try:
            started = await self.db.server_started()
        except Exception:
            # Idle connections from before a server restart are broken: drop them all, then ask again.
            await self.db.drop_broken()
            started = await self.db.server_started()
        if started != self._postgres_server:
            if self._postgres_server is not None:  # restarted since the last probe: check the idle connections
                await self.db.drop_broken()
            self._postgres_server = started

    async def _probe_redis(self) -> None:
        await self.redis.ping()
        server = (await self.redis.info("server")).get("run_id")
        if not self._needs_restore(server):
            return
        async with self._new_redis_lock:
            if not self._needs_restore(server):
                return
            try:
                await self.on_new_redis()
            except Exception as e:
                if self._failed_for != server:  # once per server; retried on every probe
                    log.warning("could not restore bot identities on Redis; retrying", error=str(e))
                    self._failed_for = server
                return
            self._redis_server, self._restored_at = str(server), time.monotonic()

    def _needs_restore(self, server: object) -> bool:
        return server != self._redis_server or time.monotonic() - self._restored_at >= self.recheck_s

    def _record(self, name: str, error: Exception | None) -> None:
        state = self.states[name]
        if error is None:
            if not state.ready:
                log.warning("engine available again", engine=name, down_for_s=round(time.time() - state.since, 2))
                state.ready, state.since, state.error = True, time.time(), None
            return
        kind = "TimeoutError" if isinstance(error, TimeoutError) else type(error).__name__
        if state.ready:
            log.warning("engine unavailable", engine=name, error=f"{kind}: {error}")
            state.ready, state.since = False, time.time()
        state.error = kind


__all__ = ["EngineHealth", "EngineState"]
