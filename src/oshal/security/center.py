"""The Security Center: runs scans, keeps one finding per fingerprint, and turns findings into tickets.

A finding is filed as a ticket (type ``security_finding``, owned by the system tenant) once: at once for HIGH and
CRITICAL (which also notify), when an operator triages it as ``fix`` for the rest. A re-scan that sees it again
updates the same row; a scan that no longer sees it marks it fixed and closes its ticket; seeing it again later
reopens the same ticket. Accepted risks (until their expiry) and false positives file nothing. Nothing auto-fixes.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import httpx

from oshal.audit import trail
from oshal.errors import Invalid, NotFound
from oshal.logs import get_logger
from oshal.security.findings import SCANS, Finding, Severity
from oshal.security.scans import Scan, ScanContext, access, code, leaks, posture, runtime, spend
from oshal.store import findings as repo
from oshal.store import tickets as tickets_repo
from oshal.store.db import Conn
from oshal.types import new_id

log = get_logger(__name__)

SCANNERS: Mapping[str, Scan] = {"posture": posture.scan, "secrets": leaks.scan, "code": code.scan,
                                "runtime": runtime.scan, "ledger": spend.scan, "access": access.scan}
TICKET_TYPE = "security_finding"
ACTOR = "security-center"
NOTIFY_CHANNEL = "oshal:security"
_CODE_SCAN_EVERY_S = 86_400.0
_LOCK = 0x05A1_5EC0
ASSESSMENTS = ("fix", "accept", "false_positive")


@dataclass(frozen=True, slots=True)
class ScanResult:
    scan: str
    found: int
    opened: int
    fixed: int
    filed: int
    seconds: float
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"scan": self.scan, "found": self.found, "opened": self.opened, "fixed": self.fixed,
                "filed": self.filed, "seconds": round(self.seconds, 3), "error": self.error}


class SecurityCenter:
    def __init__(self, ctx: ScanContext, system_tenant: Any, *, webhook_url: str | None = None) -> None:
        self.ctx = ctx
        self.db = ctx.db
        self._system_tenant = system_tenant  # async () -> UUID
        self.webhook_url = webhook_url
        self._last_run: dict[str, float] = {}

    async def tenant(self) -> UUID:
        tenant: UUID = await self._system_tenant()
        return tenant

    # --- scanning ---------------------------------------------------------------------------------------------

    async def scan(self, names: Sequence[str] | None = None, *, actor: str = ACTOR) -> list[ScanResult]:
        wanted = list(names or SCANS)
        unknown = [n for n in wanted if n not in SCANNERS]
        if unknown:
            raise Invalid(f"unknown scan {', '.join(unknown)}", hint=f"scans: {', '.join(SCANS)}")
        results = []
        for name in wanted:
            results.append(await self._scan_one(name, actor))
        return results

    async def _scan_one(self, name: str, actor: str) -> ScanResult:
        started, began = dt.datetime.now(dt.UTC), time.perf_counter()
        try:
            findings = await SCANNERS[name](self.ctx)
        except Exception as e:
            # A scan that could not run must not look clean: nothing is marked fixed, and the error is kept.
            log.warning("security scan failed", scan=name, error=str(e))
            result = ScanResult(name, 0, 0, 0, 0, time.perf_counter() - began, str(e)[:500])
            await self._save_run(result, started)
            return result
        opened, fixed, filed = await self.record(name, findings, actor=actor)
        result = ScanResult(name, len(findings), opened, fixed, len(filed), time.perf_counter() - began)
        await self._save_run(result, started)
        for finding in filed:
            await self._notify(finding)
        self._last_run[name] = time.monotonic()
        return result

    async def record(self, scan: str, findings: Sequence[Finding], *,
                     actor: str = ACTOR) -> tuple[int, int, list[dict[str, Any]]]:
        """Apply one complete scan's findings; returns (new or reopened, fixed, rows filed as new tickets)."""
        tenant = await self.tenant()
        current = {f.fingerprint: f for f in findings}  # a scan reporting the same problem twice counts it once
        opened = fixed = 0
        filed: list[dict[str, Any]] = []
        async with self.db.tenant(tenant) as conn:
            await tickets_repo.set_actor(conn, ACTOR, None)
            known = {r["fingerprint"]: r for r in await repo.lock_of_scan(conn, scan)}
            for fp, finding in current.items():
                row = known.get(fp)
                if row is None:
                    row = await self._insert(conn, tenant, finding)
                    opened += 1
                else:
                    reopened = row["status"] == "fixed"
                    opened += reopened
                    row = await self._seen_again(conn, finding, row, reopened)
                if await self._should_file(conn, row, finding.severity):
                    filed.append(await self._file(conn, tenant, row))
            for fp, row in known.items():
                if fp not in current and row["status"] == "open":
                    await self._fixed(conn, row, scan)
                    fixed += 1
            if opened or fixed:
                await trail.record(conn, trail.Entry(tenant, actor, "security.scan", scan,
                                                     {"found": len(current), "opened": opened, "fixed": fixed}))
        return opened, fixed, filed

    async def _insert(self, conn: Conn, tenant: UUID, f: Finding) -> dict[str, Any]:
        return await repo.insert(conn, tenant, fingerprint=f.fingerprint, scan=f.scan, check=f.check,
                                 severity=f.severity.value, title=f.title, subject=f.subject,
                                 remediation=f.remediation, evidence_json=json.dumps(f.evidence, default=str))

    async def _seen_again(self, conn: Conn, f: Finding, row: dict[str, Any], reopened: bool) -> dict[str, Any]:
        triage = row["triage"]
        if triage == "accepted" and row["accepted_until"] and row["accepted_until"] <= dt.datetime.now(dt.UTC):
            triage = "new"  # the accepted risk expired: it needs a decision again
        updated = await repo.seen_again(conn, f.fingerprint, severity=f.severity.value, title=f.title,
                                        remediation=f.remediation, evidence_json=json.dumps(f.evidence, default=str),
                                        triage=triage, reopened=reopened)
        if reopened and updated["ticket_id"] is not None:
            await _move_ticket(conn, updated["ticket_id"], "escalated",
                               f"regression: {f.title} (seen again by the {f.scan} scan)")
        return updated

    @staticmethod
    async def _should_file(conn: Conn, row: dict[str, Any], severity: Severity) -> bool:
        if row["ticket_id"] is not None or row["triage"] in ("accepted", "false_positive"):
            return False
        return severity.files_automatically or row["triage"] == "fix"

    async def _file(self, conn: Conn, tenant: UUID, row: dict[str, Any]) -> dict[str, Any]:
        ticket = new_id()
        body = {k: row[k] for k in ("fingerprint", "scan", "check_id", "severity", "title", "subject",
                                    "remediation", "evidence")}
        await repo.file_ticket(conn, ticket, tenant, row["fingerprint"], ticket_type=TICKET_TYPE,
                               body_json=json.dumps(body, default=str),
                               reason=f"[{row['severity']}] {row['title']}"[:500])
        await trail.record(conn, trail.Entry(tenant, ACTOR, "security.finding.filed", row["fingerprint"],
                                             {"ticket": str(ticket), "severity": row["severity"],
                                              "title": row["title"]}))
        return {**row, "ticket_id": ticket}

    async def _fixed(self, conn: Conn, row: dict[str, Any], scan: str) -> None:
        await repo.mark_fixed(conn, row["fingerprint"])
        if row["ticket_id"] is not None:
            await _move_ticket(conn, row["ticket_id"], "done", f"fixed: the {scan} scan no longer finds it")

    async def _save_run(self, result: ScanResult, started: dt.datetime) -> None:
        tenant = await self.tenant()
        async with self.db.tenant(tenant) as conn:
            await repo.insert_run(conn, new_id(), tenant, scan=result.scan, started_at=started, found=result.found,
                                  opened=result.opened, fixed=result.fixed, error=result.error)

    async def _notify(self, row: dict[str, Any]) -> None:
        """HIGH and CRITICAL findings: a log line, a Redis message and (if configured) a webhook POST."""
        message = {"fingerprint": row["fingerprint"], "severity": row["severity"], "title": row["title"],
                   "scan": row["scan"], "ticket": str(row["ticket_id"]), "remediation": row["remediation"]}
        log.warning("security finding filed", **message)
        with contextlib.suppress(Exception):
            await self.ctx.redis.publish(NOTIFY_CHANNEL, json.dumps(message))
        if self.webhook_url:
            try:
                async with httpx.AsyncClient(timeout=5.0) as client:
                    response = await client.post(self.webhook_url, json=message)
                    response.raise_for_status()
            except httpx.HTTPError as e:
                log.warning("security webhook failed", url=self.webhook_url, error=str(e))

    # --- operators ---------------------------------------------------------------------------------------------

    async def findings(self, *, status: str | None = None, scan: str | None = None,
                       min_severity: Severity | None = None) -> list[dict[str, Any]]:
        async with self.db.tenant(await self.tenant()) as conn:
            rows = await repo.listing(conn, status=status, scan=scan)
        if min_severity is not None:
            rows = [r for r in rows if Severity(r["severity"]).rank >= min_severity.rank]
        rows.sort(key=lambda r: (r["status"] != "open", -Severity(r["severity"]).rank))
        return rows

    async def assess(self, fingerprint: str, decision: str, *, actor: str, reason: str,
                     until: dt.datetime | None = None) -> dict[str, Any]:
        """An operator's triage: ``fix`` (files a ticket), ``accept`` (a risk, until an expiry) or
        ``false_positive``. Accepting or dismissing closes the finding's ticket, if it has one."""
        if decision not in ASSESSMENTS:
            raise Invalid(f"unknown assessment {decision!r}", hint=f"one of {', '.join(ASSESSMENTS)}")
        if decision == "accept" and (until is None or until <= dt.datetime.now(dt.UTC)):
            raise Invalid("accepting a risk needs an expiry in the future", hint="pass --until 2027-01-31")
        if not reason.strip():
            raise Invalid("an assessment needs a reason", hint="pass --reason '...'")
        tenant = await self.tenant()
        triage = {"fix": "fix", "accept": "accepted", "false_positive": "false_positive"}[decision]
        async with self.db.tenant(tenant) as conn:
            await tickets_repo.set_actor(conn, actor, None)
            row = await repo.assess(conn, fingerprint, triage=triage, until=until if decision == "accept" else None,
                                    by=actor, assessment=reason.strip()[:1000])
            if row is None:
                raise NotFound(f"no finding {fingerprint}", hint="list them with `oshal security findings`")
            await trail.record(conn, trail.Entry(tenant, actor, f"security.finding.{decision}", fingerprint,
                                                 {"reason": reason, "until": until.isoformat() if until else None}))
            if decision == "fix" and row["ticket_id"] is None and row["status"] == "open":
                row = await self._file(conn, tenant, row)
            elif decision != "fix" and row["ticket_id"] is not None:
                await _move_ticket(conn, row["ticket_id"], "done", f"{triage.replace('_', ' ')}: {reason}")
        return row

    async def summary(self) -> dict[str, Any]:
        """Open findings by severity and by scan, and each scan's last run: what the console shows."""
        tenant = await self.tenant()
        async with self.db.tenant(tenant) as conn:
            groups = await repo.open_counts(conn)
            runs = await repo.last_runs(conn)
        by_severity = {s.value: 0 for s in Severity}
        by_scan = {s: 0 for s in SCANS}
        untriaged = 0
        for g in groups:
            by_severity[g["severity"]] += int(g["n"])
            by_scan[g["scan"]] = by_scan.get(g["scan"], 0) + int(g["n"])
            untriaged += int(g["n"]) if g["triage"] == "new" else 0
        return {"open": sum(by_severity.values()), "untriaged": untriaged, "by_severity": by_severity,
                "by_scan": by_scan, "last_runs": {r["scan"]: {k: r[k] for k in ("finished_at", "found", "opened",
                                                                               "fixed", "error")} for r in runs}}

    # --- schedule ----------------------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event, interval_s: float) -> None:
        """Run the scans every ``interval_s`` (the code scan daily); one replica at a time (advisory lock)."""
        if interval_s <= 0:
            return
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval_s)
            if stop.is_set():
                return
            due = [n for n in SCANS if n != "code" or
                   time.monotonic() - self._last_run.get(n, -_CODE_SCAN_EVERY_S) >= _CODE_SCAN_EVERY_S]
            try:
                async with self.db.system() as conn:
                    if not await repo.try_lock_scans(conn, _LOCK):
                        continue
                    await self.scan(due)
            except Exception:
                log.exception("scheduled security scan failed")


async def _move_ticket(conn: Conn, ticket: UUID, status: str, reason: str) -> None:
    await repo.move_ticket(conn, ticket, status, reason[:500])
