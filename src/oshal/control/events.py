"""Ticket state changes fan out over one Redis pub/sub channel; waiters are woken, never polled.

A waiter in the collector's own process may also be handed the finished ticket's row, read by the collector in the
transaction that finished it (under the ticket's tenant, so RLS applies), and skip reading it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from oshal.logs import get_logger
from oshal.mesh.redis_keys import EVENTS_CHANNEL

log = get_logger(__name__)


class EventHub:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._watchers: dict[str, set[asyncio.Queue[str]]] = {}
        self._rows: dict[str, dict[str, Any]] = {}  # finished tickets' rows, while someone here watches them
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._listen())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ready.wait(), 5)

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def publish(self, changes: Sequence[tuple[str, str]]) -> None:
        if changes:
            await self._redis.publish(EVENTS_CHANNEL, json.dumps(changes))

    def queue_publish(self, pipe: Pipeline, changes: Sequence[tuple[str, str]],
                      rows: Mapping[str, dict[str, Any]] | None = None) -> None:
        """Wake this process's waiters now (with the finished tickets' ``rows`` by id, when given), and add the
        publication for other processes to ``pipe`` (statuses only: they read the ticket themselves).

        Local waiters then hear it twice (directly and through Redis); a watcher only acts on the first.
        """
        if changes:
            self._wake(changes, rows)
            pipe.publish(EVENTS_CHANNEL, json.dumps(changes))

    def watched(self, ticket_ids: Iterable[str]) -> list[str]:
        """Those of ``ticket_ids`` someone in this process is waiting on."""
        return [t for t in ticket_ids if t in self._watchers]

    def finished_row(self, ticket_id: str) -> dict[str, Any] | None:
        """The row the collector read when ``ticket_id`` finished, if it was handed over here. The caller checks it is
        its own tenant's before using it."""
        return self._rows.get(ticket_id)

    @contextlib.asynccontextmanager
    async def watch(self, ticket_id: str) -> AsyncIterator[asyncio.Queue[str]]:
        """A queue receiving each new status of ``ticket_id`` while the block is open."""
        queue: asyncio.Queue[str] = asyncio.Queue()
        self._watchers.setdefault(ticket_id, set()).add(queue)
        try:
            yield queue
        finally:
            watchers = self._watchers.get(ticket_id)
            if watchers is not None:
                watchers.discard(queue)
                if not watchers:
                    del self._watchers[ticket_id]
                    self._rows.pop(ticket_id, None)

    async def _listen(self) -> None:
        backoff = 0.1
        while True:
            try:
                async with self._redis.pubsub() as pubsub:
                    await pubsub.subscribe(EVENTS_CHANNEL)
                    self._ready.set()
                    backoff = 0.1
                    async for message in pubsub.listen():
                        if message.get("type") == "message":
                            self._deliver(message["data"])
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.warning("event subscription lost; resubscribing", error=str(e), retry_in_s=backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    def _deliver(self, data: bytes) -> None:
        if not self._watchers:
            return
        try:
            changes = json.loads(data)
        except ValueError:
            return
        self._wake(changes)

    def _wake(self, changes: Sequence[tuple[str, str]], rows: Mapping[str, dict[str, Any]] | None = None) -> None:
        for ticket_id, row in (rows or {}).items():
            if ticket_id in self._watchers:
                self._rows[ticket_id] = row
        for ticket_id, status in changes:
            for queue in self._watchers.get(ticket_id, ()):
                queue.put_nowait(status)
