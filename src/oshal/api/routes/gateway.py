"""The bot tool gateway: /v1/tools/list and /v1/tools/call. Registered first: it is the hottest route."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.routing import Route

from oshal import jsontext
from oshal.api.deps import ModelCalls, ToolCalls, bot_authenticated, tool_gateway
from oshal.api.validation import INT4_MAX, check_json_body
from oshal.control.model_gateway import CallEnd, CallStart
from oshal.control.tool_gateway import ToolCall
from oshal.mesh.envelopes import Envelope

router = APIRouter(prefix="/v1/tools", tags=["connectors"])


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WireEnvelope(_In):
    t: str
    p: str
    a: int = Field(ge=0, le=INT4_MAX)
    n: str
    b: str
    g: str

    def envelope(self) -> Envelope:
        return Envelope(self.t, self.p, self.a, self.n, self.b, None, self.g)


class ToolListIn(_In):
    envelope: WireEnvelope


class ToolCallIn(_In):
    envelope: WireEnvelope
    connector: str = Field(min_length=1, max_length=63)
    operation: str = Field(min_length=1, max_length=128)
    arguments: dict[str, Any] = Field(default_factory=dict)
    seq: int | None = Field(default=None, ge=0, le=10_000, description="The call's place in its job (for replay).")


class ModelBeginIn(_In):
    envelope: WireEnvelope
    seq: int = Field(ge=0, le=10_000)
    provider: str = Field(min_length=1, max_length=64)
    model: str = Field(min_length=1, max_length=200)
    input_bytes: int = Field(ge=0, le=100_000_000)
    max_output_tokens: int = Field(ge=0, le=10_000_000)
    request_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class ModelEndIn(_In):
    envelope: WireEnvelope
    seq: int = Field(ge=0, le=10_000)
    request: Any
    response: Any
    usage: Any = None
    started_at: dt.datetime
    duration_ms: float = Field(ge=0)


@router.post("/list")
@bot_authenticated
async def list_tools(body: ToolListIn, gateway: ToolCalls,
                     x_oshal_bot_token: Annotated[str | None, Header()] = None) -> list[dict[str, Any]]:
    """The tools this bot may use for the ticket in its envelope: connector, operation, JSON schema."""
    return await gateway.tools(x_oshal_bot_token, body.envelope.envelope())


@bot_authenticated
async def call_tool(request: Request) -> Response:
    """POST /v1/tools/call, the bot tool gateway: authenticated by the bot's own token and the envelope it was
    dispatched. A plain Starlette route (the body is validated by the same model): FastAPI's dependency and
    response machinery cost a measurable share of a tool call's overhead, and this path is for bots only."""
    raw = await request.body()
    check_json_body(raw)  # not under the app-wide dependency: this route is plain Starlette
    try:
        body = ToolCallIn.model_validate_json(raw)
    except ValidationError as e:
        raise RequestValidationError([{**err, "loc": ("body", *err["loc"])} for err in e.errors()]) from e
    gateway = await tool_gateway(request)
    result = await gateway.call(request.headers.get("x-oshal-bot-token"), ToolCall(
        body.envelope.envelope(), body.connector, body.operation, body.arguments, body.seq))
    # The result is plain JSON already (a normalized API response): serialize once, skip re-encoding.
    return Response(jsontext.compact(result), media_type="application/json")


models = APIRouter(prefix="/v1/models", tags=["budgets"])


@models.post("/begin")
@bot_authenticated
async def begin_model_call(body: ModelBeginIn, model_calls: ModelCalls,
                           x_oshal_bot_token: Annotated[str | None, Header()] = None) -> dict[str, Any]:
    """Before a model call: reserves its maximum cost against every budget above the ticket (402 and the ticket
    pauses when a budget cannot cover it), or, for a replay, answers with the recorded response."""
    return await model_calls.begin(x_oshal_bot_token, CallStart(
        body.envelope.envelope(), body.seq, body.provider, body.model, body.input_bytes, body.max_output_tokens,
        body.request_sha256))


@models.post("/end", status_code=204)
@bot_authenticated
async def end_model_call(body: ModelEndIn, model_calls: ModelCalls,
                         x_oshal_bot_token: Annotated[str | None, Header()] = None) -> Response:
    """After a model call: its request and response are recorded for replay (the cost arrives with the result)."""
    await model_calls.end(x_oshal_bot_token, CallEnd(body.envelope.envelope(), body.seq, body.request, body.response,
                                                   body.usage, body.started_at, body.duration_ms))
    return Response(status_code=204)


raw_routes = [Route("/v1/tools/call", call_tool, methods=["POST"])]
