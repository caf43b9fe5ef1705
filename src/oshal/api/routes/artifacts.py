"""Artifacts: the bot gateway (write/read on the dispatched ticket) and the users' list and download."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Header, Request, Response

from oshal.api.deps import Artifacts, Caller, Tickets, bot_authenticated

router = APIRouter(tags=["artifacts"])


@router.put("/v1/artifacts/gateway/{name}")
@bot_authenticated
async def put_artifact(
    name: str, request: Request, artifacts: Artifacts,
    x_oshal_bot_token: Annotated[str | None, Header()] = None,
    x_oshal_envelope: Annotated[str | None, Header()] = None,
    content_type: Annotated[str | None, Header()] = None,
) -> dict[str, Any]:
    """Bots only: store a file on the ticket of the envelope they were dispatched."""
    data = await request.body()
    return await artifacts.put_from_bot(x_oshal_bot_token, x_oshal_envelope, name, data,
                                           content_type or "application/octet-stream")


@router.get("/v1/artifacts/gateway/{name}", response_class=Response, responses={200: {
    "description": "The file",
    "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}})
@bot_authenticated
async def get_artifact_for_bot(
    name: str, artifacts: Artifacts,
    x_oshal_bot_token: Annotated[str | None, Header()] = None,
    x_oshal_envelope: Annotated[str | None, Header()] = None,
) -> Response:
    """Bots only: read back a file stored on the ticket they work on (e.g. frames to assemble)."""
    data = await artifacts.get_for_bot(x_oshal_bot_token, x_oshal_envelope, name)
    return Response(data, media_type="application/octet-stream")


@router.get("/v1/tickets/{ticket_id}/artifacts")
async def list_artifacts(ticket_id: UUID, tickets: Tickets, artifacts: Artifacts,
                         who: Caller) -> list[dict[str, Any]]:
    await tickets.get(who.tenant_id, ticket_id)
    return await artifacts.list(who.tenant_id, ticket_id)


@router.get("/v1/tickets/{ticket_id}/artifacts/{name}", response_class=Response, responses={200: {
    "description": "The file, with the content type it was stored with",
    "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}}}})
async def download_artifact(ticket_id: UUID, name: str, artifacts: Artifacts, who: Caller) -> Response:
    data, content_type = await artifacts.read(who.tenant_id, ticket_id, name)
    return Response(data, media_type=content_type,
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})
