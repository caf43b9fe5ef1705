"""The bot side of tool calls: a client for the control plane's tool gateway, bound to one delivery.

A bot never holds a connector credential. It sends the gateway its own bot token and the envelope it was
dispatched (whose control-plane signature ties the call to one tenant and ticket) and gets a normalized result.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from oshal.bots.harnesses.base import HarnessError
from oshal.mesh.envelopes import Envelope

MAX_TOOL_CALLS = 20


class ToolClient:
    def __init__(self, base_url: str, bot_token: str, *, timeout_s: float = 120.0) -> None:
        self._http = httpx.AsyncClient(base_url=base_url, timeout=timeout_s,
                                       headers={"X-Oshal-Bot-Token": bot_token})

    def session(self, envelope: Envelope) -> ToolSession:
        return ToolSession(self, envelope)

    async def call(self, envelope: Envelope, connector: str, operation: str,
                   arguments: Mapping[str, Any]) -> dict[str, Any]:
        body = {"envelope": {"t": envelope.ticket_id, "p": envelope.phase_id, "a": envelope.attempt,
                             "n": envelope.tenant_id, "b": envelope.bot, "g": envelope.sig},
                "connector": connector, "operation": operation, "arguments": dict(arguments)}
        try:
            response = await self._http.post("/v1/tools/call", json=body)
        except httpx.HTTPError as e:
            raise HarnessError(f"tool gateway unreachable: {type(e).__name__}", retryable=True) from e
        if response.status_code >= 400:
            try:
                error = response.json()
            except ValueError:
                error = {"message": response.text[:200]}
            raise HarnessError(f"tool call {connector}.{operation} refused: {error.get('message', '')}",
                               hint=error.get("hint"), retryable=response.status_code >= 500)
        result: dict[str, Any] = response.json()
        return result

    async def aclose(self) -> None:
        await self._http.aclose()


class ToolSession:
    """Tool calls on behalf of one delivery, capped at :data:`MAX_TOOL_CALLS`."""

    def __init__(self, client: ToolClient, envelope: Envelope) -> None:
        self._client = client
        self._envelope = envelope
        self.calls = 0

    async def call(self, connector: str, operation: str, arguments: Mapping[str, Any]) -> dict[str, Any]:
        if self.calls >= MAX_TOOL_CALLS:
            raise HarnessError(f"more than {MAX_TOOL_CALLS} tool calls in one job; stopping")
        self.calls += 1
        return await self._client.call(self._envelope, connector, operation, arguments)
