"""Ticket state changes fan out over one Redis pub/sub channel; waiters are woken, never polled.

A waiter may also be handed the finished ticket's row, read by the collector in the transaction that finished it
(under the ticket's tenant, so RLS applies), and skip reading it again: directly when it waits in the collector's
own process; else over its own process's channel, named by the token its ticket's envelope carried to the bot and
back in the result. Only control-plane logins may subscribe to any channel (bots' ACL users have none), and no row
goes to the shared channel, which carries ticket ids and statuses only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import secrets
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from oshal.control import row_wire
from oshal.logs import get_logger
from oshal.mesh.envelopes import Result
from oshal.mesh.redis_keys import EVENTS_CHANNEL, WAITER_ID_PATTERN, waiter_channel

log = get_logger(__name__)

# A row larger than this is not handed to another process (its waiter reads it): large messages could overrun the
# subscriber's output buffer in Redis, which then drops the connection and every wake-up queued on it. (Rows are
# read back only for batches of at most UNFLUSHED_BATCH_MAX results, so a message holds at most that many.)
HANDOVER_MAX_BYTES = 16 * 1024
_WAITER_ID = re.compile(WAITER_ID_PATTERN)


class EventHub:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._watchers: dict[str, set[asyncio.Queue[str]]] = {}
        self._rows: dict[str, dict[str, Any]] = {}  # finished tickets' rows, while someone here watches them
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._subscribed = False
        self._token = secrets.token_hex(16)  # names this process's own channel
        self._channel = waiter_channel(self._token)

    @property
    def token(self) -> str:
        """What an envelope carries so its finished row is handed to this process: empty while the hub is not
        subscribed (the row would go unheard)."""
        return self._token if self._subscribed else ""

    async def start(self) -> None:
        self._task = asyncio.create_task(self._listen())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ready.wait(), 5)

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._subscribed = False

    async def publish(self, changes: Sequence[tuple[str, str]]) -> None:
        if changes:
            await self._redis.publish(EVENTS_CHANNEL, json.dumps(changes))

    def queue_publish(self, pipe: Pipeline, changes: Sequence[tuple[str, str]],
                      rows: Mapping[str, dict[str, Any]] | None = None,
                      waiters: Mapping[str, str] | None = None) -> None:
        """Wake this process's waiters now (with the finished tickets' ``rows`` by id, when given), and add the
        publications for other processes to ``pipe``: each row whose ticket ``waiters`` places in another process to
        that process's channel (first, so it arrives before the status), then the statuses to everyone.

        Local waiters then hear it twice (directly and through Redis); a watcher only acts on the first.
        """
        if not changes:
            return
        self._wake(changes, rows)
        if rows and waiters:
            for token, message in self._handovers(changes, rows, waiters).items():
                pipe.publish(waiter_channel(token), message)
        pipe.publish(EVENTS_CHANNEL, json.dumps(changes))

    def watched(self, ticket_ids: Iterable[str], results: Iterable[Result] = ()) -> list[str]:
        """Those of ``ticket_ids`` someone waits on: in this process, or in another one a result's envelope names."""
        elsewhere = self.waiters(results)
        return [t for t in ticket_ids if t in self._watchers or t in elsewhere]

    def waiters(self, results: Iterable[Result]) -> dict[str, str]:
        """{ticket id: waiter token} of ``results`` whose envelope names a waiter in another process (a token of
        the form this hub makes; anything else names no process, and its ticket is not read back)."""
        return {r.envelope.ticket_id: r.envelope.waiter for r in results
                if r.envelope.waiter and r.envelope.waiter != self._token and _WAITER_ID.fullmatch(r.envelope.waiter)}

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

    @staticmethod
    def _handovers(changes: Sequence[tuple[str, str]], rows: Mapping[str, dict[str, Any]],
                   waiters: Mapping[str, str]) -> dict[str, str]:
        """{waiter token: message} handing each process the rows of the finished tickets it waits on:
        ``{"c": [[id, status], ...], "r": {id: row}}``."""
        by_token: dict[str, tuple[list[tuple[str, str]], list[str]]] = {}
        for ticket_id, status in changes:
            token, row = waiters.get(ticket_id), rows.get(ticket_id)
            if token is None or row is None or not _WAITER_ID.fullmatch(token):
                continue
            wire = row_wire.encode(row)
            if wire is None:
                continue
            text = row_wire.dumps(wire)
            if len(text) > HANDOVER_MAX_BYTES:
                continue
            statuses, texts = by_token.setdefault(token, ([], []))
            statuses.append((ticket_id, status))
            texts.append(f"{row_wire.dumps(ticket_id)}:{text}")
        return {token: f'{{"c":{row_wire.dumps(statuses)},"r":{{{",".join(texts)}}}}}'
                for token, (statuses, texts) in by_token.items()}

    async def _listen(self) -> None:
        backoff = 0.1
        while True:
            try:
                async with self._redis.pubsub() as pubsub:
                    await pubsub.subscribe(EVENTS_CHANNEL, self._channel)
                    self._subscribed = True
                    self._ready.set()
                    backoff = 0.1
                    async for message in pubsub.listen():
                        if message.get("type") == "message":
                            self._deliver(message["channel"], message["data"])
            except asyncio.CancelledError:
                raise
            except Exception as e:
                self._subscribed = False
                log.warning("event subscription lost; resubscribing", error=str(e), retry_in_s=backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    def _deliver(self, channel: bytes | str, data: bytes) -> None:
        if not self._watchers:
            return
        try:
            message = json.loads(data)
        except ValueError:
            return
        if channel not in (EVENTS_CHANNEL, EVENTS_CHANNEL.encode()):
            self._take_handover(message)
        else:
            self._wake(message)

    def _take_handover(self, message: Any) -> None:
        """Rows another process's collector handed over (:meth:`_handovers`): kept for the tickets watched here."""
        try:
            changes = [(str(ticket_id), str(status)) for ticket_id, status in message["c"]]
            wires = dict(message["r"])
        except (KeyError, TypeError, ValueError):
            return
        rows = {ticket_id: row for ticket_id, wire in wires.items()
                if ticket_id in self._watchers and (row := row_wire.decode(wire)) is not None}
        self._wake(changes, rows)

    def _wake(self, changes: Sequence[tuple[str, str]], rows: Mapping[str, dict[str, Any]] | None = None) -> None:
        for ticket_id, row in (rows or {}).items():
            if ticket_id in self._watchers:
                self._rows[ticket_id] = row
        for ticket_id, status in changes:
            for queue in self._watchers.get(ticket_id, ()):
                queue.put_nowait(status)
