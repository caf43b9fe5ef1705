"""Approvals: tickets waiting at an approval gate (a workflow's, or held ones) and tool calls waiting for an
operator. Members see them; operators approve or reject, with a reason."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated
from uuid import UUID

from fastapi import Form, Request, Response
from fastapi.responses import RedirectResponse

from oshal.api.routes.connectors import decide_tool_approval
from oshal.console.render import page
from oshal.console.routes.common import console_router
from oshal.console.session import ConsoleOperator, Viewer, plane_of
from oshal.errors import Invalid
from oshal.store import connectors as connector_repo
from oshal.store import tickets as ticket_repo
from oshal.workflows.states import Action

router = console_router()
_SHOWN = 200


class Decision(StrEnum):
    APPROVE = "approve"
    REJECT = "reject"


def _reason(decision: Decision, reason: str) -> str | None:
    reason = reason.strip()
    if decision is Decision.REJECT and not reason:
        raise Invalid("a rejection needs a reason", hint="say why, so the requester knows what to change")
    return reason or None


@router.get("/approvals")
async def approvals(request: Request, who: Viewer) -> Response:
    cp = plane_of(request)
    async with cp.db.tenant(who.tenant_id) as conn:
        gates = await ticket_repo.awaiting_approval(conn, _SHOWN)
        tools = await connector_repo.approvals(conn, "pending")
        decided = await connector_repo.recent_decisions(conn, 20)
    return await page(request, "approvals.html", title="Approvals", gates=gates, tools=tools, decided=decided)


@router.post("/approvals/tickets/{ticket_id}/{decision}")
async def decide_gate(request: Request, ticket_id: UUID, decision: Decision, who: ConsoleOperator,
                      reason: Annotated[str, Form(max_length=500)] = "") -> Response:
    action = Action.APPROVE if decision is Decision.APPROVE else Action.REJECT
    await plane_of(request).lifecycle.act(who.tenant_id, ticket_id, action, actor=who.actor,
                                          reason=_reason(decision, reason))
    return RedirectResponse(f"/tickets/{ticket_id}", status_code=303)


@router.post("/approvals/tools/{approval_id}/{decision}")
async def decide_tool(request: Request, approval_id: UUID, decision: Decision, who: ConsoleOperator,
                      reason: Annotated[str, Form(max_length=500)] = "") -> Response:
    cp = plane_of(request)
    status = "approved" if decision is Decision.APPROVE else "rejected"
    await decide_tool_approval(cp.db, cp.lifecycle, who, approval_id, status, _reason(decision, reason))
    return RedirectResponse("/approvals", status_code=303)
