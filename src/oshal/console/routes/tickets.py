"""Tickets: the list (filters, cursor paging, a form to submit one), and one ticket with its timeline, phases,
artifacts (videos play in the page), cost and replay, updated live over server-sent events."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Annotated, Any
from uuid import UUID

from fastapi import Form, Query, Request, Response
from fastapi.responses import RedirectResponse, StreamingResponse
from pydantic import JsonValue, TypeAdapter, ValidationError

from oshal.api.schemas import ticket_out
from oshal.console.render import page
from oshal.console.routes.common import console_router
from oshal.console.session import Viewer, plane_of
from oshal.control.auth import Principal
from oshal.control.tickets import REPLAYABLE, TicketRequest
from oshal.errors import Invalid
from oshal.types import TERMINAL_STATUSES, TicketStatus
from oshal.workflows.states import Action

router = console_router()
_PAGE_SIZE = 50
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")
_JSON = TypeAdapter(JsonValue)
# Shown in the page itself; anything else is a download (a bot's HTML or SVG never runs in the console's origin).
_INLINE_TYPES = frozenset({"video/mp4", "video/webm", "image/png", "image/jpeg", "image/gif", "image/webp",
                           "text/plain", "application/json"})
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


@router.get("/tickets")
async def ticket_list(
    request: Request, who: Viewer,
    status: Annotated[TicketStatus | None, Query()] = None,
    bot: Annotated[str | None, Query(max_length=40)] = None,
    cursor: Annotated[UUID | None, Query()] = None,
) -> Response:
    return await _list_page(request, who, status=status.value if status else None, bot=bot or None, cursor=cursor)


async def _list_page(request: Request, who: Principal, *, status: str | None = None, bot: str | None = None,
                     cursor: UUID | None = None, form: dict[str, Any] | None = None, error: str = "",
                     code: int = 200) -> Response:
    """The tickets page: a page of the list (filtered), and the submit form (with what was typed, and why it was
    refused, when it was)."""
    cp = plane_of(request)
    rows, next_cursor = await cp.tickets.list(who.tenant_id, status=status, bot=bot, cursor=cursor,
                                              limit=_PAGE_SIZE)
    workflows = sorted(w["name"] for w in await cp.workflows.list(who.tenant_id))
    return await page(request, "tickets.html", status=code, title="Tickets", tickets=[ticket_out(r) for r in rows],
                      next_cursor=next_cursor, status_filter=status or "", bot=bot or "",
                      statuses=[s.value for s in TicketStatus], bots=sorted(cp.registry.names), types=workflows,
                      form=form or {}, error=error)


@router.post("/tickets")
async def submit_ticket(
    request: Request, who: Viewer,
    target: Annotated[str, Form(max_length=60, description="bot:NAME or type:NAME")],
    input: Annotated[str, Form(max_length=64 * 1024)] = "{}",
    hold: Annotated[bool, Form()] = False,
) -> Response:
    cp = plane_of(request)
    kind, _, name = target.partition(":")
    try:
        if kind not in ("bot", "type") or not _NAME.match(name):
            raise Invalid(f"choose a bot or a ticket type, not {target!r}")
        try:
            value = _JSON.validate_json(input or "{}")
        except ValidationError as e:
            raise Invalid("the input is not valid JSON: " + e.errors()[0].get("msg", "invalid"),
                          hint='write a JSON value, for example {"text": "hello"}') from e
        request_ = TicketRequest(name if kind == "bot" else None, value, None, name if kind == "type" else None,
                                 hold and kind == "type")
        [created] = await cp.tickets.create(who.tenant_id, who.key_id, [request_])
    except Invalid as refused:
        return await _list_page(request, who, form={"target": target, "input": input, "hold": hold}, code=422,
                                error=refused.message + (f" ({refused.hint})" if refused.hint else ""))
    return RedirectResponse(f"/tickets/{created.id}", status_code=303)


@router.get("/tickets/{ticket_id}")
async def ticket_detail(request: Request, ticket_id: UUID, who: Viewer) -> Response:
    cp = plane_of(request)
    ticket = ticket_out(await cp.tickets.get(who.tenant_id, ticket_id))
    timeline = await cp.tickets.timeline(who.tenant_id, ticket_id)
    return await page(request, "ticket.html", title=f"Ticket {str(ticket_id)[:8]}…", ticket=ticket,
                      timeline=timeline, terminal=ticket.status in TERMINAL_STATUSES,
                      replayable=ticket.status in REPLAYABLE,
                      inline_types=_INLINE_TYPES,
                      pretty=lambda v: json.dumps(v, indent=2, sort_keys=True, ensure_ascii=False))


@router.get("/tickets/{ticket_id}/live")
async def ticket_live(request: Request, ticket_id: UUID, who: Viewer) -> Response:
    """Server-sent events for the ticket page: its state now, then on every change, until it ends."""
    cp = plane_of(request)
    await cp.tickets.get(who.tenant_id, ticket_id)  # an unknown ticket is refused before the stream starts

    async def stream() -> AsyncIterator[bytes]:
        async for row in cp.tickets.follow(who.tenant_id, ticket_id):
            yield b": keep-alive\n\n" if row is None else _event(row)

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


def _event(row: dict[str, Any]) -> bytes:
    out = ticket_out(row)
    data = {"status": out.status, "phase": out.phase, "status_reason": out.status_reason, "cost": out.cost_usd,
            "calls": out.calls, "attempts": out.attempts, "terminal": out.status in TERMINAL_STATUSES}
    return f"event: ticket\ndata: {json.dumps(data)}\n\n".encode()


@router.get("/tickets/{ticket_id}/artifacts/{name}")
async def artifact(request: Request, ticket_id: UUID, name: str, who: Viewer) -> Response:
    """An artifact's bytes: videos, images and text shown in the page (ranges served, so a video seeks), anything
    else downloaded."""
    data, content_type = await plane_of(request).artifacts.read(who.tenant_id, ticket_id, name)
    inline = content_type in _INLINE_TYPES
    headers = {"Accept-Ranges": "bytes", "X-Content-Type-Options": "nosniff",
               "Content-Security-Policy": "default-src 'none'; sandbox",
               "Content-Disposition": f'{"inline" if inline else "attachment"}; filename="{name}"'}
    media_type = content_type if inline else "application/octet-stream"
    wanted = _RANGE.match(request.headers.get("range", ""))
    if wanted and (wanted[1] or wanted[2]):
        size = len(data)
        if wanted[1]:
            start, end = int(wanted[1]), min(int(wanted[2]) if wanted[2] else size - 1, size - 1)
        else:
            start, end = max(0, size - int(wanted[2])), size - 1
        if start > end or start >= size:
            return Response(status_code=416, headers={"Content-Range": f"bytes */{size}"})
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        return Response(data[start:end + 1], status_code=206, media_type=media_type, headers=headers)
    return Response(data, media_type=media_type, headers=headers)


@router.post("/tickets/{ticket_id}/replay")
async def replay(request: Request, ticket_id: UUID, who: Viewer) -> Response:
    created = await plane_of(request).tickets.replay(who.tenant_id, who.key_id, ticket_id)
    return RedirectResponse(f"/tickets/{created.id}", status_code=303)


@router.post("/tickets/{ticket_id}/cancel")
async def cancel(request: Request, ticket_id: UUID, who: Viewer,
                 reason: Annotated[str, Form(max_length=500)] = "") -> Response:
    await plane_of(request).lifecycle.act(who.tenant_id, ticket_id, Action.CANCEL, actor=who.actor,
                                          reason=reason or "cancelled in the console")
    return RedirectResponse(f"/tickets/{ticket_id}", status_code=303)
