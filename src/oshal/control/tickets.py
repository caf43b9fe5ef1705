"""The ticket service: the platform without HTTP. Create (commit, then dispatch), read, wait, cancel, requeue."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from redis.asyncio import Redis
from redis.exceptions import RedisError

from oshal.control.bots import BotRegistry
from oshal.control.events import EventHub
from oshal.errors import Conflict, Invalid, NotFound, TooLarge
from oshal.logs import get_logger
from oshal.mesh import lanes
from oshal.mesh.envelopes import Envelope
from oshal.mesh.signing import DispatchSigner
from oshal.store import tickets as repo
from oshal.store.db import Database
from oshal.types import TERMINAL_STATUSES, TicketStatus, new_id

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class TicketRequest:
    bot: str
    input: Any
    idempotency_key: str | None = None


@dataclass(frozen=True, slots=True)
class Created:
    id: UUID
    status: str
    created: bool  # False when an idempotency key returned an existing ticket


class TicketService:
    def __init__(self, db: Database, redis: Redis, registry: BotRegistry, events: EventHub,
                 signer: DispatchSigner, *, max_input_bytes: int) -> None:
        self.db = db
        self.redis = redis
        self.registry = registry
        self.events = events
        self.signer = signer
        self.max_input_bytes = max_input_bytes

    def _envelope(self, tenant: UUID, ticket: UUID, phase: UUID, attempt: int, bot: str, value: Any) -> Envelope:
        env = Envelope(str(ticket), str(phase), attempt, str(tenant), bot, value)
        return Envelope(env.ticket_id, env.phase_id, attempt, env.tenant_id, bot, value, self.signer.sign(env))

    async def create(self, tenant: UUID, principal: UUID | None, requests: Sequence[TicketRequest]) -> list[Created]:
        """Commit tickets and their dispatch records in one transaction, then append them to their lanes.

        A crash between the commit and the append loses nothing: the sweeper re-drives dispatched phases
        that make no progress.
        """
        created, envelopes = await self._commit(tenant, principal, requests)
        await self._dispatch(envelopes)
        return created

    async def create_and_wait(self, tenant: UUID, principal: UUID | None, request: TicketRequest,
                              timeout_s: float) -> tuple[Created, dict[str, Any]]:
        """Create one ticket and wait for it; the watch starts before dispatch, so no result can slip past."""
        [created], envelopes = await self._commit(tenant, principal, [request])
        if not created.created:
            return created, await self.wait(tenant, created.id, timeout_s)
        async with self.events.watch(str(created.id)) as changes:
            await self._dispatch(envelopes)
            return created, await self._until_terminal(tenant, created.id, changes, timeout_s, None)

    async def _commit(self, tenant: UUID, principal: UUID | None,
                      requests: Sequence[TicketRequest]) -> tuple[list[Created], list[Envelope]]:
        if not requests:
            raise Invalid("no tickets given", hint="send at least one ticket")
        await self.registry.require({r.bot for r in requests})
        rows: list[repo.NewTicket] = []
        seen_keys: dict[str, bytes] = {}
        for n, request in enumerate(requests):
            body = repo.dumps(request.input)
            if len(body) > self.max_input_bytes:
                raise TooLarge(
                    f"ticket {n}: input is {len(body)} bytes; the limit is {self.max_input_bytes}",
                    hint="send large payloads by reference, or raise OSHAL_MAX_INPUT_BYTES")
            key = request.idempotency_key
            digest = None
            if key is not None:  # the request hash only serves to compare idempotent retries
                digest = hashlib.sha256(f"{request.bot}\x00{json.dumps(request.input, sort_keys=True)}"
                                        .encode()).digest()
                if key in seen_keys and seen_keys[key] != digest:
                    raise Conflict(f"idempotency key {key!r} is used twice in this batch with different bodies")
                seen_keys[key] = digest
            rows.append(repo.NewTicket(new_id(), new_id(), request.bot, body, key, digest))

        inserted = {row["id"] for row in await self.db.call(repo.insert_dispatched(tenant, principal, rows))}
        existing: dict[str, dict[str, Any]] = {}
        if len(inserted) < len(rows):  # idempotency keys seen before: those tickets are committed already
            async with self.db.tenant(tenant) as conn:
                existing = await repo.by_idempotency_keys(
                    conn, [r.idempotency_key for r in rows if r.id not in inserted and r.idempotency_key])
        result: list[Created] = []
        envelopes: list[Envelope] = []
        for row, request in zip(rows, requests, strict=True):
            if row.id in inserted:
                result.append(Created(row.id, TicketStatus.DISPATCHED, True))
                envelopes.append(self._envelope(tenant, row.id, row.phase_id, 1, row.bot, request.input))
                continue
            assert row.idempotency_key is not None
            prior = existing[row.idempotency_key]
            if bytes(prior["request_hash"]) != row.request_hash:
                raise Conflict(
                    f"idempotency key {row.idempotency_key!r} was already used for a different request",
                    hint="use a new key for a new request; resend the same body to get the same ticket")
            result.append(Created(prior["id"], str(prior["status"]), False))
        return result, envelopes

    async def _dispatch(self, envelopes: Sequence[Envelope]) -> None:
        try:
            await lanes.dispatch(self.redis, envelopes)
        except RedisError as e:
            # Committed already: the sweeper re-drives these once Redis is back. Accepted work is kept.
            log.warning("dispatch deferred to sweeper", tickets=len(envelopes), error=str(e))

    async def get(self, tenant: UUID, ticket_id: UUID) -> dict[str, Any]:
        rows = await self.db.call(repo.get(tenant, ticket_id))
        if not rows:
            raise NotFound(f"ticket {ticket_id} not found")
        return rows[0]

    async def wait(self, tenant: UUID, ticket_id: UUID, timeout_s: float) -> dict[str, Any]:
        """Return once the ticket is terminal or ``timeout_s`` passed; woken by events, not polling."""
        async with self.events.watch(str(ticket_id)) as changes:
            row = await self.get(tenant, ticket_id)
            return await self._until_terminal(tenant, ticket_id, changes, timeout_s, row)

    async def _until_terminal(self, tenant: UUID, ticket_id: UUID, changes: asyncio.Queue[str], timeout_s: float,
                              row: dict[str, Any] | None) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while row is None or row["status"] not in TERMINAL_STATUSES:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                status = await asyncio.wait_for(changes.get(), remaining)
            except TimeoutError:
                break
            if status in TERMINAL_STATUSES:
                row = await self.get(tenant, ticket_id)
        return row if row is not None else await self.get(tenant, ticket_id)

    async def list(self, tenant: UUID, *, status: str | None, bot: str | None, cursor: UUID | None,
                   limit: int) -> tuple[list[dict[str, Any]], UUID | None]:
        async with self.db.tenant(tenant) as conn:
            rows = await repo.page(conn, status=status, bot=bot, before=cursor, limit=limit + 1)
        more = len(rows) > limit
        rows = rows[:limit]
        return rows, (rows[-1]["id"] if more else None)

    async def counts(self, tenant: UUID) -> dict[str, int]:
        async with self.db.tenant(tenant) as conn:
            return await repo.counts(conn)

    async def cancel(self, tenant: UUID, ticket_id: UUID) -> dict[str, Any]:
        async with self.db.tenant(tenant) as conn:
            cancelled = await repo.cancel(conn, ticket_id)
            state = None if cancelled else await repo.status(conn, ticket_id)
        if not cancelled:
            if state is None:
                raise NotFound(f"ticket {ticket_id} not found")
            raise Conflict(f"ticket {ticket_id} is already {state}; only queued or dispatched tickets cancel")
        await self.events.publish([(str(ticket_id), TicketStatus.CANCELLED)])
        return await self.get(tenant, ticket_id)

    async def requeue(self, tenant: UUID, ticket_id: UUID) -> dict[str, Any]:
        """Operator action: run a dead-lettered or failed ticket again as a new attempt."""
        async with self.db.tenant(tenant) as conn:
            phase = await repo.phase_of(conn, ticket_id)
            if phase is None:
                raise NotFound(f"ticket {ticket_id} not found")
            rows = await repo.redispatch(conn, [phase["id"]], from_status=["dead_letter", "failed"])
        if not rows:
            raise Conflict(f"ticket {ticket_id} is {phase['status']}; only dead_letter or failed tickets requeue")
        row = rows[0]
        await self._dispatch([self._envelope(tenant, row["ticket_id"], row["phase_id"], row["attempt"],
                                             str(row["bot"]), row["input"])])
        await self.events.publish([(str(ticket_id), TicketStatus.DISPATCHED)])
        return await self.get(tenant, ticket_id)
