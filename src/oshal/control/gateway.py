"""The tool gateway: the per-agent auth gate in front of every tool call a bot makes.

Order of checks, all fail-closed: the bot's identity; the dispatch signature tying the call to a ticket the
bot was given (which also fixes the tenant); the ticket still being open; then the broker (connector state,
operation enabled, tool policy, approvals) issues a grant. The connector service redeems that grant, resolves
the credential inside this process and calls the API. The bot only ever sees the normalized result.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from oshal.connectors.broker import Broker, GrantRequest
from oshal.control.bot_tokens import BotTokens
from oshal.control.connector_service import ConnectorService
from oshal.errors import Conflict, Forbidden, NotFound
from oshal.mesh.envelopes import Envelope
from oshal.mesh.signing import DispatchSigner
from oshal.store import tickets as tickets_repo
from oshal.store.db import Database
from oshal.types import TERMINAL_STATUSES


@dataclass(frozen=True, slots=True)
class ToolCall:
    envelope: Envelope  # routing fields and signature of the delivery the bot is working on
    connector_id: str
    operation: str
    arguments: Mapping[str, Any]


class ToolGateway:
    def __init__(self, db: Database, signer: DispatchSigner, tokens: BotTokens, broker: Broker,
                 connectors: ConnectorService) -> None:
        self.db = db
        self.signer = signer
        self.tokens = tokens
        self.broker = broker
        self.connectors = connectors

    async def call(self, bot_token: str | None, call: ToolCall) -> dict[str, Any]:
        bot = self.tokens.verify(bot_token)
        env = call.envelope
        if env.bot != bot or not self.signer.verify(env):
            raise Forbidden("this bot was not dispatched that ticket", hint="call tools only for the envelope you hold")
        tenant, ticket = UUID(env.tenant_id), UUID(env.ticket_id)
        rows = await self.db.call(tickets_repo.get(tenant, ticket))
        if not rows:
            raise NotFound(f"ticket {ticket} not found")
        if rows[0]["status"] in TERMINAL_STATUSES:
            raise Conflict(f"ticket {ticket} is {rows[0]['status']}; its tools are closed")
        request = GrantRequest(tenant, bot, ticket, call.connector_id, call.operation, dict(call.arguments))
        grant = await self.broker.issue(request)
        return await self.connectors.execute(grant.token, request)
