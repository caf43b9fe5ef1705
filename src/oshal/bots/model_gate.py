"""Every model request a bot makes passes here, at the HTTP boundary of the provider SDK.

Before a request goes out, the control plane reserves its maximum cost against the budgets above the ticket (or
refuses it: the job fails and the ticket pauses). For a replay ticket the control plane answers with the recorded
response instead, and nothing leaves the node. After a response, its request and body are recorded (headers, and
so keys, never are). SDK retries of the same request reuse the same place and reservation.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import hashlib
import importlib
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from oshal import jsontext
from oshal.bots.tools import ToolSession
from oshal.errors import HarnessError
from oshal.logs import get_logger

log = get_logger(__name__)


@dataclass
class _Pending:
    digest: str
    seq: int
    reservation: str | None
    replay: dict[str, Any] | None


@dataclass
class ModelCalls:
    """One job's model calls: their places (seq), and what the last one was made under."""

    session: ToolSession
    provider: str
    model: str
    default_max_tokens: int
    seq: int = 0
    pending: _Pending | None = None
    last_reservation: str | None = None
    last_replayed: bool = False
    refused: HarnessError | None = None  # why the control plane refused the latest call, for the harness to raise


_CURRENT: contextvars.ContextVar[ModelCalls | None] = contextvars.ContextVar("oshal_model_calls", default=None)


@contextmanager
def model_calls(session: ToolSession | None, provider: str, model: str, default_max_tokens: int
                ) -> Iterator[ModelCalls | None]:
    """Bind the model calls of the running job (each job runs in its own task, so jobs never mix)."""
    calls = ModelCalls(session, provider, model, default_max_tokens) if session is not None else None
    token = _CURRENT.set(calls)
    try:
        yield calls
    finally:
        _CURRENT.reset(token)


def raise_if_refused() -> None:
    """Re-raise the control plane's refusal of the latest call (a budget, a kill switch, a replay that diverged).
    The gate answers a refused call with a plain 400 so that no SDK retries it; the harness, seeing the SDK's
    error, calls this first so the real reason, not "HTTP 400", is what the job fails with."""
    calls = _CURRENT.get()
    if calls is not None and calls.refused is not None:
        refused, calls.refused = calls.refused, None
        raise refused


def last_call() -> tuple[str | None, bool]:
    """(reservation, replayed) of the job's latest model call, for its usage record."""
    calls = _CURRENT.get()
    return (calls.last_reservation, calls.last_replayed) if calls else (None, False)


def digest(body: Any) -> str:
    return hashlib.sha256(jsontext.canonical(body).encode()).hexdigest()


def gated_http_client(sdk: Any, timeout_s: float) -> Any:
    """The SDK's own async HTTP client class, with the gate around its transport. SDKs ship on ``httpx`` or on
    its fork ``httpx2``; the gate is built on whichever this SDK's client comes from."""
    client_class = sdk.DefaultAsyncHttpxClient
    base = next(c for c in client_class.__mro__ if c.__name__ == "AsyncClient")
    http = importlib.import_module(base.__module__.split(".")[0])
    return client_class(transport=_gated_transport(http), timeout=timeout_s)


def _gated_transport(http: Any) -> Any:
    gate = _Gate(http.AsyncHTTPTransport(), http.Response)

    class GatedTransport(http.AsyncBaseTransport):  # type: ignore[misc]
        async def handle_async_request(self, request: Any) -> Any:
            return await gate.handle(request)

        async def aclose(self) -> None:
            await gate.inner.aclose()

    return GatedTransport()


class _Gate:
    def __init__(self, inner: Any, response_class: Any) -> None:
        self.inner = inner
        self._response = response_class

    async def handle(self, request: Any) -> Any:
        calls = _CURRENT.get()
        if calls is None or request.method != "POST":
            return await self.inner.handle_async_request(request)
        raw = await request.aread()
        body = _json(raw)
        try:
            pending = await self._begin(calls, body, raw)
        except HarnessError as refused:
            calls.refused = refused
            return self._response(400, json={"error": {"type": "oshal_refused", "message": refused.message}},
                                  request=request)
        calls.last_reservation = pending.reservation
        calls.last_replayed = pending.replay is not None
        if pending.replay is not None:
            response_body = pending.replay["response"]
            calls.pending = None
            await _record(calls, pending.seq, body, response_body, dt.datetime.now(dt.UTC), 0.0)
            return self._response(200, json=response_body, request=request)
        started, began = dt.datetime.now(dt.UTC), time.perf_counter()
        response = await self.inner.handle_async_request(request)
        if 200 <= response.status_code < 300:
            content = await response.aread()
            calls.pending = None  # answered (and paid for): a retry of this request would be a new call
            await _record(calls, pending.seq, body, _json(content), started, (time.perf_counter() - began) * 1000)
            headers = [(k, v) for k, v in response.headers.items() if k.lower() != "content-encoding"]
            return self._response(response.status_code, headers=headers, content=content, request=request)
        return response  # an error the SDK may retry: the same request comes back with the same place

    async def _begin(self, calls: ModelCalls, body: Any, raw: bytes) -> _Pending:
        request_digest = digest(body)
        if calls.pending is not None and calls.pending.digest == request_digest:
            return calls.pending  # the SDK retrying: same place, same reservation
        seq = calls.seq
        answer = await calls.session.model_begin(
            seq=seq, provider=calls.provider, model=calls.model, input_bytes=len(raw),
            max_output_tokens=_max_tokens(body, calls.default_max_tokens), request_sha256=request_digest)
        calls.seq += 1  # only a call the control plane let through takes a place
        calls.pending = _Pending(request_digest, seq, answer.get("reservation"), answer.get("replay"))
        return calls.pending


async def _record(calls: ModelCalls, seq: int, request: Any, response: Any, started: dt.datetime,
                  duration_ms: float) -> None:
    """Best effort: the call happened (and its cost reaches the ledger with the job's result) whether or not its
    recording is stored; a missing recording only makes a later replay of this ticket report the gap."""
    try:
        await calls.session.model_end(seq, request, response, _usage(response), started, duration_ms)
    except HarnessError as e:
        log.warning("model call not recorded", seq=seq, error=e.message)


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw or b"null")
    except ValueError as e:
        raise HarnessError("a model request or response was not JSON; only JSON APIs are gated") from e


def _max_tokens(body: Any, default: int) -> int:
    if isinstance(body, dict):
        for key in ("max_completion_tokens", "max_tokens", "max_output_tokens"):
            value = body.get(key)
            if isinstance(value, int) and value > 0:
                return value
    return default


def _usage(body: Any) -> Any:
    return body.get("usage") if isinstance(body, dict) else None
