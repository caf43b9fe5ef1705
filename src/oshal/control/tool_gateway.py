"""The tool gateway: the per-agent auth gate in front of every tool call a bot makes.

Order of checks, all fail-closed: the bot's identity; the dispatch signature tying the call to a ticket the
bot was given (which also fixes the tenant); the ticket still being open; then the broker (connector state,
operation enabled, tool policy, approvals) issues a grant. The connector service redeems that grant, resolves
the credential inside this process and calls the API. The bot only ever sees the normalized result.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from oshal.audit import trail
from oshal.connectors.broker import ApprovalRequired, Broker, Grant, GrantRequest
from oshal.connectors.manifest import ConnectorManifest, Operation
from oshal.control.batches import TenantBatches
from oshal.control.bot_tokens import BotTokens
from oshal.control.connector_calls import ConnectorService
from oshal.control.node_tokens import NodeTokens, is_node_token
from oshal.errors import Conflict, Forbidden, Invalid, NotFound
from oshal.mesh.envelopes import Envelope
from oshal.mesh.signing import DispatchSigner
from oshal.store import connectors as connectors_repo
from oshal.store import recordings as recordings_repo
from oshal.store import tickets as tickets_repo
from oshal.store.db import Conn, Database
from oshal.store.recordings import Recording
from oshal.types import TERMINAL_STATUSES


def flat_parameters(op: Operation) -> dict[str, Any]:
    """One JSON schema object for a model: each path/query/header parameter by name, the body as ``body``."""
    properties: dict[str, Any] = {}
    required: list[str] = []
    for param in op.parameters:
        properties[param.name] = {**param.json_schema, **({"description": param.description} if param.description
                                                          else {})}
        if param.required:
            required.append(param.name)
    if op.body_schema is not None:
        properties["body"] = op.body_schema
        if op.body_required:
            required.append("body")
    return {"type": "object", "properties": properties, "required": required}


@dataclass(frozen=True, slots=True)
class ToolCall:
    envelope: Envelope  # routing fields and signature of the delivery the bot is working on
    connector_id: str
    operation: str
    arguments: Mapping[str, Any]
    seq: int | None = None  # the call's place in its job: recorded, and looked up when replaying


class ToolGateway:
    def __init__(self, db: Database, signer: DispatchSigner, tokens: BotTokens, broker: Broker,
                 connectors: ConnectorService, recorder: TenantBatches[Recording], *,
                 on_approval_needed: Callable[[UUID, UUID, str], Awaitable[None]] | None = None,
                 node_tokens: NodeTokens | None = None) -> None:
        self.recorder = recorder
        self.node_tokens = node_tokens
        self.on_approval_needed = on_approval_needed
        self.db = db
        self.signer = signer
        self.tokens = tokens
        self.broker = broker
        self.connectors = connectors

    async def identify(self, bot_token: str | None, env: Envelope) -> tuple[str, UUID, UUID]:
        """(bot, tenant, ticket) once the bot token and the dispatch signature check out (no I/O for a bot's own
        token; a remote node's is checked against its row, briefly cached, so a revoked node is refused)."""
        if self.node_tokens is not None and bot_token is not None and is_node_token(bot_token):
            bot = await self.node_tokens.verify(bot_token)
        else:
            bot = self.tokens.verify(bot_token)
        if env.bot != bot or not self.signer.verify(env):
            raise Forbidden("this bot was not dispatched that ticket", hint="call tools only for the envelope you hold")
        return bot, UUID(env.tenant_id), UUID(env.ticket_id)

    @staticmethod
    async def _require_open(conn: Conn, ticket: UUID) -> UUID | None:
        """The ticket is open for tools; returns who created it (whose own credentials a call prefers)."""
        row = await tickets_repo.status_and_creator(conn, ticket)
        if row is None:
            raise NotFound(f"ticket {ticket} not found")
        status = str(row["status"])
        if status in TERMINAL_STATUSES:
            raise Conflict(f"ticket {ticket} is {status}; its tools are closed")
        return row["created_by"]  # type: ignore[no-any-return]

    async def _authenticate(self, bot_token: str | None, env: Envelope) -> tuple[str, UUID, UUID]:
        """(bot, tenant, ticket) once the bot token, the dispatch signature and the ticket's state check out."""
        bot, tenant, ticket = await self.identify(bot_token, env)
        async with self.db.tenant(tenant) as conn:
            await self._require_open(conn, ticket)
        return bot, tenant, ticket

    async def tools(self, bot_token: str | None, env: Envelope) -> list[dict[str, Any]]:
        """The operations this bot may call for this ticket (policy auto or ask, connector enabled), as tools."""
        bot, tenant, _ = await self._authenticate(bot_token, env)
        async with self.db.tenant(tenant) as conn:
            policies = [p for p in await connectors_repo.policies(conn, bot) if p["mode"] in ("auto", "ask")]
            rows = {row["id"]: row for row in await connectors_repo.connectors(conn) if row["state"] == "enabled"}
        tools = []
        for policy in policies:
            row = rows.get(policy["connector_id"])
            op = ConnectorManifest.model_validate(row["manifest"]).operation(policy["operation"]) if row else None
            if op is None or not op.enabled:
                continue
            tools.append({"connector": policy["connector_id"], "operation": op.name, "mode": policy["mode"],
                          "risk": op.risk, "description": (op.summary or op.description)[:1000],
                          "parameters": flat_parameters(op)})
        return tools

    async def call(self, bot_token: str | None, call: ToolCall) -> dict[str, Any]:
        bot, tenant, ticket = await self.identify(bot_token, call.envelope)
        request = GrantRequest(tenant, bot, ticket, call.connector_id, call.operation, dict(call.arguments))
        started, began = dt.datetime.now(dt.UTC), time.perf_counter()
        try:
            prepared = await self.connectors.prepare_auto(request)
            if prepared is not None:
                result = await self.connectors.run(prepared, request)
            else:
                replayed = await self._replayed(request, call)
                if replayed is not None:
                    return replayed
                result = await self._general_call(request)
        except ApprovalRequired:
            raise  # not a refusal: the approval request is recorded, and an operator decides
        except (Forbidden, NotFound, Conflict, Invalid) as refused:
            # Recorded in a transaction of its own (a refused one rolled back). If even this cannot be written,
            # the call is still refused: the error propagates either way.
            await trail.record_now(self.db, trail.Entry(
                request.tenant_id, f"bot:{request.bot}", "tool.denied",
                f"{request.connector_id}.{request.operation}",
                {"ticket": str(request.ticket_id), "reason": refused.message[:500]}))
            raise
        if call.seq is not None:
            self.recorder.add(Recording(request.tenant_id, request.ticket_id, UUID(call.envelope.phase_id), "tool",
                                        call.seq, _tool_request(call), result, None, started,
                                        (time.perf_counter() - began) * 1000))
        return result

    async def _replayed(self, request: GrantRequest, call: ToolCall) -> dict[str, Any] | None:
        """For a replay ticket: the original ticket's recorded answer to this call (nothing external is called).
        None for any other ticket."""
        phase = UUID(call.envelope.phase_id)
        async with self.db.tenant(request.tenant_id) as conn:
            context = await recordings_repo.replay_context(conn, request.ticket_id, phase, request.bot)
            if context is None or context["replay_of"] is None:
                return None
            _check_open(request.ticket_id, {"ticket_status": context["status"]})
            recorded = None if call.seq is None else await recordings_repo.find(
                conn, context["replay_of"], context["phase_seq"], "tool", call.seq)
            if recorded is None:
                raise NotFound(f"replay diverged: the original ticket made no tool call #{call.seq} in step "
                               f"{context['step'] or '(plain ticket)'}")
            answer: dict[str, Any] = recorded["response"]
            await recordings_repo.save(conn, [Recording(request.tenant_id, request.ticket_id, phase, "tool",
                                                        call.seq or 0, _tool_request(call), answer, None,
                                                        dt.datetime.now(dt.UTC), 0.0)])
        return answer

    async def _general_call(self, request: GrantRequest) -> dict[str, Any]:
        """Every case the one-statement path leaves: ask, refusals (with their reasons), a changed manifest."""
        tenant, ticket = request.tenant_id, request.ticket_id
        # One transaction for the ticket check, the grant (issued by the broker) and its redemption with the
        # reads the call needs; the external call itself happens after it commits.
        async with self.db.tenant(tenant) as conn:
            context = await connectors_repo.call_context(conn, ticket, request.connector_id, request.bot,
                                                         request.operation)
            _check_open(ticket, context)
            assert context is not None
            issued = await self.broker.issue_in(conn, request, context)
            if isinstance(issued, Grant):
                prepared = await self.connectors.redeem(conn, issued.token, request, user_id=context["created_by"],
                                                        context=context)
        if isinstance(issued, ApprovalRequired):
            if self.on_approval_needed is not None:
                await self.on_approval_needed(tenant, ticket, issued.message)
            raise issued  # only now: the transaction holding the approval request has committed
        return await self.connectors.run(prepared, request)


def _check_open(ticket: UUID, context: dict[str, Any] | None) -> None:
    if context is None:
        raise NotFound(f"ticket {ticket} not found")
    status = str(context["ticket_status"])
    if status in TERMINAL_STATUSES:
        raise Conflict(f"ticket {ticket} is {status}; its tools are closed")


def _tool_request(call: ToolCall) -> dict[str, Any]:
    return {"connector": call.connector_id, "operation": call.operation, "arguments": dict(call.arguments)}
