"""The bot side of tool calls: a client for the control plane's tool gateway, bound to one delivery.

A bot never holds a connector credential. It sends the gateway its own bot token and the envelope it was
dispatched (whose control-plane signature ties the call to one tenant and ticket) and gets a normalized result.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from oshal.errors import HarnessError
from oshal.mesh.envelopes import Envelope

if TYPE_CHECKING:
    import httpx

MAX_TOOL_CALLS = 20


class ToolClient:
    def __init__(self, base_url: str, bot_token: str, *, timeout_s: float = 120.0) -> None:
        self._base_url = base_url
        self._bot_token = bot_token
        self._timeout_s = timeout_s
        self._client: httpx.AsyncClient | None = None

    @property
    def _http(self) -> httpx.AsyncClient:
        """Made at the first call: httpx (about 4 MB resident) is imported by a node whose bots call the gateway,
        not by one whose bots never do."""
        if self._client is None:
            import httpx

            self._client = httpx.AsyncClient(base_url=self._base_url, timeout=self._timeout_s,
                                             headers={"X-Oshal-Bot-Token": self._bot_token})
        return self._client

    def session(self, envelope: Envelope) -> ToolSession:
        return ToolSession(self, envelope)

    @staticmethod
    def _wire(envelope: Envelope) -> dict[str, Any]:
        return {"t": envelope.ticket_id, "p": envelope.phase_id, "a": envelope.attempt, "n": envelope.tenant_id,
                "b": envelope.bot, "g": envelope.sig}

    async def _post(self, path: str, body: dict[str, Any], what: str) -> Any:
        import httpx

        try:
            response = await self._http.post(path, json=body)
        except httpx.HTTPError as e:
            raise HarnessError(f"tool gateway unreachable: {type(e).__name__}", retryable=True) from e
        _raise_for(response, what)
        return response.json() if response.content else None

    async def list(self, envelope: Envelope) -> list[dict[str, Any]]:
        """The tools this bot may use for this delivery: connector, operation, description, JSON schema."""
        tools: list[dict[str, Any]] = await self._post("/v1/tools/list", {"envelope": self._wire(envelope)},
                                                       "tool listing")
        return tools

    async def call(self, envelope: Envelope, connector: str, operation: str,
                   arguments: Mapping[str, Any], *, seq: int | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"envelope": self._wire(envelope), "connector": connector, "operation": operation,
                                "arguments": dict(arguments)}
        if seq is not None:
            body["seq"] = seq
        result: dict[str, Any] = await self._post("/v1/tools/call", body, f"tool call {connector}.{operation}")
        return result

    async def put_artifact(self, envelope: Envelope, name: str, data: bytes, content_type: str) -> dict[str, Any]:
        """Store a file on the envelope's ticket through the gateway (the bot holds no storage credential)."""
        import httpx

        headers = {"X-Oshal-Envelope": json.dumps(self._wire(envelope)), "Content-Type": content_type}
        try:
            response = await self._http.put(f"/v1/artifacts/gateway/{name}", content=data, headers=headers)
        except httpx.HTTPError as e:
            raise HarnessError(f"artifact gateway unreachable: {type(e).__name__}", retryable=True) from e
        _raise_for(response, f"storing artifact {name}")
        stored: dict[str, Any] = response.json()
        return stored

    async def get_artifact(self, envelope: Envelope, name: str) -> bytes:
        import httpx

        headers = {"X-Oshal-Envelope": json.dumps(self._wire(envelope))}
        try:
            response = await self._http.get(f"/v1/artifacts/gateway/{name}", headers=headers)
        except httpx.HTTPError as e:
            raise HarnessError(f"artifact gateway unreachable: {type(e).__name__}", retryable=True) from e
        _raise_for(response, f"reading artifact {name}")
        return response.content

    async def model_begin(self, envelope: Envelope, body: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = await self._post("/v1/models/begin", {"envelope": self._wire(envelope), **body},
                                                  "model call")
        return result

    async def model_end(self, envelope: Envelope, body: dict[str, Any]) -> None:
        await self._post("/v1/models/end", {"envelope": self._wire(envelope), **body}, "recording a model call")

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()


def _raise_for(response: httpx.Response, what: str) -> None:
    if response.status_code < 400:
        return
    try:
        error = response.json()
    except ValueError:
        error = {"message": response.text[:200]}
    # 4xx: the gateway refused the call; 5xx: it could not make it (unreachable, DNS, timeout) and says why.
    verdict = "failed" if response.status_code >= 500 else "refused"
    raise HarnessError(f"{what} {verdict}: {error.get('message', '')}", hint=error.get("hint"),
                       retryable=response.status_code >= 500)


class ToolSession:
    """Tool calls on behalf of one delivery, capped at :data:`MAX_TOOL_CALLS`."""

    def __init__(self, client: ToolClient, envelope: Envelope) -> None:
        self._client = client
        self._envelope = envelope
        self.calls = 0

    async def list(self) -> list[dict[str, Any]]:
        return await self._client.list(self._envelope)

    async def put_artifact(self, name: str, data: bytes, content_type: str) -> dict[str, Any]:
        return await self._client.put_artifact(self._envelope, name, data, content_type)

    async def get_artifact(self, name: str) -> bytes:
        return await self._client.get_artifact(self._envelope, name)

    async def call(self, connector: str, operation: str, arguments: Mapping[str, Any]) -> dict[str, Any]:
        if self.calls >= MAX_TOOL_CALLS:
            raise HarnessError(f"more than {MAX_TOOL_CALLS} tool calls in one job; stopping")
        self.calls += 1
        return await self._client.call(self._envelope, connector, operation, arguments, seq=self.calls - 1)

    async def model_begin(self, *, seq: int, provider: str, model: str, input_bytes: int, max_output_tokens: int,
                          request_sha256: str) -> dict[str, Any]:
        """Before a model call: a budget reservation, or (for a replay) the recorded response."""
        return await self._client.model_begin(self._envelope, {
            "seq": seq, "provider": provider, "model": model, "input_bytes": input_bytes,
            "max_output_tokens": max_output_tokens, "request_sha256": request_sha256})

    async def model_end(self, seq: int, request: Any, response: Any, usage: Any, started_at: Any,
                        duration_ms: float) -> None:
        """After a model call: its request and response are recorded (for replay)."""
        await self._client.model_end(self._envelope, {
            "seq": seq, "request": request, "response": response, "usage": usage,
            "started_at": started_at.isoformat(), "duration_ms": duration_ms})
