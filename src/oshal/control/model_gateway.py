"""The model-call gateway: what a bot asks before and tells after each model call.

Before: the control plane reserves the call's maximum cost against every budget above it (or refuses it, and
the ticket pauses), unless the ticket is a replay, in which case it answers with the recorded response and no
provider is called. After: the call's request and response are recorded (never its headers, so never a key).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from oshal.control.budgets import BudgetService
from oshal.errors import Conflict, Forbidden, NotFound
from oshal.mesh.envelopes import Envelope
from oshal.store import recordings as repo
from oshal.store.db import Database
from oshal.types import TERMINAL_STATUSES

Identify = Callable[[str | None, Envelope], Awaitable[tuple[str, UUID, UUID]]]


@dataclass(frozen=True, slots=True)
class CallStart:
    """What a bot says before a model call: which call of its job, to what model, and how big it may get."""

    envelope: Envelope
    seq: int
    provider: str
    model: str
    input_bytes: int
    max_output_tokens: int
    request_sha256: str


@dataclass(frozen=True, slots=True)
class CallEnd:
    envelope: Envelope
    seq: int
    request: Any
    response: Any
    usage: Any
    started_at: dt.datetime
    duration_ms: float


class ModelGateway:
    def __init__(self, db: Database, identify: Identify, budgets: BudgetService) -> None:
        self.db = db
        self.identify = identify
        self.budgets = budgets

    async def begin(self, bot_token: str | None, start: CallStart) -> dict[str, Any]:
        bot, tenant, ticket = await self.identify(bot_token, start.envelope)
        phase = UUID(start.envelope.phase_id)
        async with self.db.tenant(tenant) as conn:
            context = await repo.replay_context(conn, ticket, phase, bot)
            if context is None:
                raise NotFound(f"ticket {ticket} not found")
            if context["killed"] is not None:
                raise Forbidden(str(context["killed"]), hint="an operator releases it with `oshal kill release`")
            if context["status"] in TERMINAL_STATUSES:
                raise Conflict(f"ticket {ticket} is {context['status']}; it makes no more model calls")
            if context["replay_of"] is not None:
                return await self._replayed(conn, tenant, ticket, phase, context, start)
        reservation = await self.budgets.reserve(tenant, ticket, bot, provider=start.provider, model=start.model,
                                                 input_bytes=start.input_bytes,
                                                 max_output_tokens=start.max_output_tokens)
        return {"reservation": str(reservation.id), "amount_micros": reservation.amount}

    async def _replayed(self, conn: Any, tenant: UUID, ticket: UUID, phase: UUID, context: dict[str, Any],
                        start: CallStart) -> dict[str, Any]:
        recorded = await repo.find(conn, context["replay_of"], context["phase_seq"], "model", start.seq)
        if recorded is None:
            raise NotFound(f"replay diverged: the original ticket made no model call #{start.seq} in step "
                           f"{context['step'] or '(plain ticket)'}", hint="compare the two with "
                           f"`oshal ticket replay-diff {ticket}`")
        # Whether the request still matches the recorded one is for the replay's diff to say, not this answer.
        return {"replay": {"response": recorded["response"]}}

    async def end(self, bot_token: str | None, end: CallEnd) -> None:
        _, tenant, ticket = await self.identify(bot_token, end.envelope)
        async with self.db.tenant(tenant) as conn:
            await repo.save(conn, [repo.Recording(tenant, ticket, UUID(end.envelope.phase_id), "model", end.seq,
                                                  end.request, end.response, end.usage, end.started_at,
                                                  end.duration_ms)])

