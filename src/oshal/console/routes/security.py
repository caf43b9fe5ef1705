"""The Security Center (platform operators): open findings by severity, triage, scans on demand, the audit log's
verification and the kill switches in force."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Annotated, Any, get_args

from fastapi import Form, Request, Response
from fastapi.responses import RedirectResponse

from oshal.api.routes.security import ScanName
from oshal.audit import trail
from oshal.console.render import page
from oshal.console.routes.common import console_router
from oshal.console.session import ConsolePlatform, plane_of
from oshal.errors import Invalid

router = console_router()
_SCANS: tuple[str, ...] = get_args(ScanName)


class Decision(StrEnum):
    FIX = "fix"
    ACCEPT = "accept"
    FALSE_POSITIVE = "false_positive"


async def _page(request: Request, *, verification: dict[str, Any] | None = None, status: int = 200,
                error: str = "") -> Response:
    cp = plane_of(request)
    summary = await cp.security.summary()
    findings = await cp.security.findings(status="open")
    return await page(request, "security.html", status=status, title="Security", summary=summary,
                      findings=findings, kill=sorted(cp.kill.engaged), scans=_SCANS, verification=verification,
                      error=error, today=dt.date.today().isoformat())


@router.get("/security")
async def security(request: Request, who: ConsolePlatform) -> Response:
    return await _page(request)


@router.post("/security/scan")
async def scan(request: Request, who: ConsolePlatform,
               name: Annotated[str, Form(max_length=20)] = "all") -> Response:
    if name != "all" and name not in _SCANS:
        raise Invalid(f"no scan named {name!r}", hint="one of: all, " + ", ".join(_SCANS))
    await plane_of(request).security.scan(None if name == "all" else [name], actor=who.actor)
    return RedirectResponse("/security", status_code=303)


@router.post("/security/audit-verify")
async def audit_verify(request: Request, who: ConsolePlatform) -> Response:
    cp = plane_of(request)
    return await _page(request, verification=(await trail.verify(cp.db, cp.audit_anchors)).as_dict())


@router.post("/security/findings/{fingerprint}/assess")
async def assess(request: Request, fingerprint: str, who: ConsolePlatform,
                 decision: Annotated[Decision, Form()], reason: Annotated[str, Form(min_length=1, max_length=1000)],
                 until: Annotated[str, Form(max_length=10)] = "") -> Response:
    expires: dt.datetime | None = None
    if decision is Decision.ACCEPT:
        try:
            expires = dt.datetime.combine(dt.date.fromisoformat(until), dt.time(), dt.UTC)
        except ValueError as e:
            raise Invalid("accepting a risk needs the date the acceptance ends", hint="pick a date") from e
    await plane_of(request).security.assess(fingerprint, decision.value, actor=who.actor, reason=reason.strip(),
                                            until=expires)
    return RedirectResponse("/security", status_code=303)
