"""/v1/security, /v1/audit and /v1/kill: the Security Center, the audit log and the kill switches."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal, get_args

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from oshal.api.deps import (
    Admin,
    AuditAnchors,
    Caller,
    Db,
    Kill,
    Operator,
    PlatformOperator,
    Registry,
    Security,
    is_platform_operator,
)
from oshal.api.route_guards import live_route_problems
from oshal.api.validation import INT8_MAX, required_when
from oshal.audit import trail
from oshal.audit.seal import seal_problems
from oshal.errors import Invalid
from oshal.security.findings import Severity
from oshal.security.killswitch import GLOBAL
from oshal.security.rls import coverage_problems, tenant_tables
from oshal.security.roles import RUNTIME_ROLES, flags_of, grants_of, privilege_problems, unexpected_grants

router = APIRouter(prefix="/v1", tags=["security"])
MIN_RETENTION_DAYS = 30
MAX_RETENTION_DAYS = 36_500


ScanName = Literal["posture", "secrets", "code", "runtime", "ledger", "access"]


class ScanIn(BaseModel):
    scans: list[ScanName] = Field(default=list(get_args(ScanName)), description="Scans to run; default all.")


class AssessIn(BaseModel):
    """``until`` (in the future) is required to accept a risk."""

    model_config = ConfigDict(json_schema_extra=required_when("decision", "accept", "until"))
    decision: Literal["fix", "accept", "false_positive"]
    reason: str = Field(min_length=1, max_length=1000)
    until: dt.datetime | None = Field(default=None, description="Required for accept: when the acceptance expires.")


class KillIn(BaseModel):
    bot: str | None = Field(default=None, description="A bot's name; omit for the global switch.")
    reason: str = Field(min_length=1, max_length=500)


class PruneIn(BaseModel):
    older_than_days: int = Field(ge=MIN_RETENTION_DAYS, le=MAX_RETENTION_DAYS,
                                 description="Remove entries older than this many days.")


@router.post("/security/scan")
async def run_scans(security: Security, who: PlatformOperator, body: ScanIn | None = None) -> list[dict[str, Any]]:
    """Run scans now; each files, updates or closes findings and their tickets."""
    results = await security.scan((body or ScanIn()).scans, actor=who.actor)
    return [r.as_dict() for r in results]


@router.get("/security/findings")
async def list_findings(security: Security, who: PlatformOperator,
                        status: Annotated[Literal["open", "fixed"] | None, Query()] = "open",
                        scan: Annotated[ScanName | None, Query()] = None,
                        severity: Annotated[Literal["info", "low", "medium", "high", "critical"] | None,
                                            Query(description="this severity and above")] = None,
                        ) -> list[dict[str, Any]]:
    return await security.findings(status=status, scan=scan,
                                   min_severity=Severity(severity) if severity else None)


@router.post("/security/findings/{fingerprint}/assess")
async def assess_finding(fingerprint: str, body: AssessIn, security: Security, who: PlatformOperator) -> dict[str, Any]:
    """Triage: fix (files a ticket), accept a risk until a date, or mark a false positive."""
    until = body.until
    if until is not None and until.tzinfo is None:
        raise Invalid("until needs a time zone", hint="e.g. 2027-01-31T00:00:00Z")
    return await security.assess(fingerprint, body.decision, actor=who.actor, reason=body.reason, until=until)


@router.get("/security/summary")
async def security_summary(security: Security, kill: Kill, who: PlatformOperator) -> dict[str, Any]:
    """Open findings by severity and scan, untriaged count, each scan's last run, and the kill switches."""
    summary = await security.summary()
    summary["kill_switches"] = sorted(kill.engaged)
    return summary


@router.post("/security/verify")
async def verify_from_api(request: Request, db: Db, who: PlatformOperator) -> dict[str, Any]:
    """What the API can prove with its own connection: RLS coverage, runtime role attributes and grants, and that
    the audit log is sealed against the database owner.
    `oshal security verify` on the host adds the cross-tenant canary as every runtime role."""
    problems: list[str] = []
    async with db.system() as conn:
        tables = await tenant_tables(conn)
        problems += coverage_problems(tables)
        for role in RUNTIME_ROLES:
            problems += privilege_problems(role, await flags_of(conn, role))
            problems += [f"role {role} holds an unexpected grant: {g}"
                         for g in unexpected_grants(role, await grants_of(conn, role))]
        problems += [f"audit log: {p}" for p in await seal_problems(conn)]
    problems += live_route_problems(request.app)
    return {"ok": not problems, "problems": problems, "tenant_tables": [t["name"] for t in tables]}


# --- audit --------------------------------------------------------------------------------------------------------


@router.get("/audit")
async def audit_entries(db: Db, admin: Admin, who: Operator, after: Annotated[int, Query(ge=0, le=INT8_MAX)] = 0,
                        limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
                        since: Annotated[dt.datetime | None, Query(description="only entries written at or after "
                                                                   "this time (ISO 8601 with a zone)")] = None,
                        ) -> list[dict[str, Any]]:
    """Audit entries in order: every tenant's for a platform operator, the caller's tenant's otherwise."""
    if since is not None and since.tzinfo is None:
        raise Invalid("since needs a time zone", hint="e.g. 2026-12-05T10:00:00Z")
    platform = await is_platform_operator(admin, who)
    rows = await trail.entries(db, after=after, limit=limit, tenant=None if platform else who.tenant_id,
                               since=since)
    return [_entry(r) for r in rows]


@router.get("/audit/export", response_class=StreamingResponse, responses={200: {
    "description": "One JSON object per line", "content": {"application/x-ndjson": {"schema": {"type": "string"}}}}})
async def export_audit(db: Db, admin: Admin, who: Operator) -> StreamingResponse:
    """The audit log as JSON lines (hashes in hex), streamed."""
    platform = await is_platform_operator(admin, who)

    async def lines() -> AsyncIterator[bytes]:
        async for row in trail.stream(db, tenant=None if platform else who.tenant_id):
            yield (trail.to_json_line(row) + "\n").encode()

    return StreamingResponse(lines(), media_type="application/x-ndjson")


@router.post("/audit/verify")
async def verify_audit(db: Db, anchors: AuditAnchors, who: PlatformOperator) -> dict[str, Any]:
    """Recompute the whole chain and check every anchor, inside the database and outside it, and that the log is
    still sealed: any edited, deleted or rewritten entry is reported. Writes nothing (no anchor before checking)."""
    return (await trail.verify(db, anchors)).as_dict()


@router.post("/audit/prune")
async def prune_audit(body: PruneIn, db: Db, anchors: AuditAnchors, who: PlatformOperator) -> dict[str, int]:
    before = dt.datetime.now(dt.UTC) - dt.timedelta(days=body.older_than_days)
    await trail.record_now(db, trail.Entry(who.tenant_id, who.actor, "audit.prune", before.isoformat(), {}))
    return {"removed": await trail.prune(db, before, anchors)}


def _entry(row: dict[str, Any]) -> dict[str, Any]:
    return {**{k: v for k, v in row.items() if k not in ("prev_hash", "hash")},
            "prev_hash": bytes(row["prev_hash"]).hex(), "hash": bytes(row["hash"]).hex()}


# --- kill switches ------------------------------------------------------------------------------------------------


@router.get("/kill")
async def kill_switches(kill: Kill, who: Caller) -> list[dict[str, Any]]:
    """Engaged kill switches (visible to every caller: work on these bots is held, not failed)."""
    return list((await kill.load()).values())


@router.post("/kill", status_code=201)
async def engage_kill_switch(body: KillIn, kill: Kill, registry: Registry, who: PlatformOperator) -> dict[str, Any]:
    """Stop new dispatch and tool calls, for one bot or (without a bot) for all, until released."""
    if body.bot is not None:
        await registry.require({body.bot})
    return await kill.engage(body.bot, reason=body.reason, actor=who.actor, tenant=who.tenant_id)


@router.delete("/kill/{scope}")
async def release_kill_switch(scope: str, kill: Kill, who: PlatformOperator) -> dict[str, Any]:
    """Release ``global`` or a bot's switch; the work it held is dispatched."""
    bot = None if scope == GLOBAL else scope
    dispatched = await kill.release(bot, actor=who.actor, tenant=who.tenant_id)
    return {"released": scope, "dispatched": dispatched}
