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
            await conn.execute("SELECT set_config('oshal.actor', %s, true)", (ACTOR,))
            cur = await conn.execute("SELECT * FROM security_findings WHERE scan = %s FOR UPDATE", (scan,))
            known = {r["fingerprint"]: r for r in await cur.fetchall()}
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
        cur = await conn.execute(
            "INSERT INTO security_findings (fingerprint, tenant_id, scan, check_id, severity, title, subject, "
            "remediation, evidence, status, triage) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, 'open', 'new') "
            "RETURNING *",
            (f.fingerprint, tenant, f.scan, f.check, f.severity.value, f.title, f.subject, f.remediation,
             json.dumps(f.evidence, default=str)))
        row = await cur.fetchone()
        assert row is not None
        return row

    async def _seen_again(self, conn: Conn, f: Finding, row: dict[str, Any], reopened: bool) -> dict[str, Any]:
        triage = row["triage"]
        if triage == "accepted" and row["accepted_until"] and row["accepted_until"] <= dt.datetime.now(dt.UTC):
            triage = "new"  # the accepted risk expired: it needs a decision again
        cur = await conn.execute(
            "UPDATE security_findings SET severity = %s, title = %s, remediation = %s, evidence = %s, status = 'open', "
            "triage = %s, last_seen = now(), seen_count = seen_count + 1, fixed_at = NULL, "
            "reopened = reopened + %s WHERE fingerprint = %s RETURNING *",
            (f.severity.value, f.title, f.remediation, json.dumps(f.evidence, default=str), triage, int(reopened),
             f.fingerprint))
        updated = await cur.fetchone()
        assert updated is not None
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
        await conn.execute(
            "INSERT INTO tickets (id, tenant_id, bot, type, status, input, status_reason, idempotency_key) "
            "VALUES (%s, %s, NULL, %s, 'escalated', %s, %s, %s)",
            (ticket, tenant, TICKET_TYPE, json.dumps(body, default=str), f"[{row['severity']}] {row['title']}"[:500],
             f"security:{row['fingerprint']}"))
        await conn.execute("UPDATE security_findings SET ticket_id = %s WHERE fingerprint = %s",
                           (ticket, row["fingerprint"]))
        await trail.record(conn, trail.Entry(tenant, ACTOR, "security.finding.filed", row["fingerprint"],
                                             {"ticket": str(ticket), "severity": row["severity"],
                                              "title": row["title"]}))
        return {**row, "ticket_id": ticket}

    async def _fixed(self, conn: Conn, row: dict[str, Any], scan: str) -> None:
        await conn.execute("UPDATE security_findings SET status = 'fixed', fixed_at = now() WHERE fingerprint = %s",
                           (row["fingerprint"],))
        if row["ticket_id"] is not None:
            await _move_ticket(conn, row["ticket_id"], "done", f"fixed: the {scan} scan no longer finds it")

    async def _save_run(self, result: ScanResult, started: dt.datetime) -> None:
        tenant = await self.tenant()
        async with self.db.tenant(tenant) as conn:
            await conn.execute(
                "INSERT INTO security_scans (id, tenant_id, scan, started_at, found, opened, fixed, error) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                (new_id(), tenant, result.scan, started, result.found, result.opened, result.fixed, result.error))

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
            cur = await conn.execute(
                "SELECT * FROM security_findings WHERE (%(status)s::text IS NULL OR status = %(status)s) "
                "AND (%(scan)s::text IS NULL OR scan = %(scan)s) ORDER BY last_seen DESC",
                {"status": status, "scan": scan})
            rows = await cur.fetchall()
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
            await conn.execute("SELECT set_config('oshal.actor', %s, true)", (actor,))
            cur = await conn.execute(
                "UPDATE security_findings SET triage = %s, accepted_until = %s, assessed_by = %s, assessment = %s "
                "WHERE fingerprint = %s RETURNING *", (triage, until if decision == "accept" else None, actor,
                                                      reason.strip()[:1000], fingerprint))
            row = await cur.fetchone()
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
            cur = await conn.execute("SELECT scan, severity, triage, count(*) AS n FROM security_findings "
                                     "WHERE status = 'open' GROUP BY scan, severity, triage")
            groups = await cur.fetchall()
            cur = await conn.execute("SELECT DISTINCT ON (scan) scan, finished_at, found, opened, fixed, error "
                                     "FROM security_scans ORDER BY scan, finished_at DESC")
            runs = await cur.fetchall()
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
                    cur = await conn.execute("SELECT pg_try_advisory_xact_lock(%s) AS mine", (_LOCK,))
                    row = await cur.fetchone()
                    if not row or not row["mine"]:
                        continue
                    await self.scan(due)
            except Exception:
                log.exception("scheduled security scan failed")


async def _move_ticket(conn: Conn, ticket: UUID, status: str, reason: str) -> None:
    await conn.execute("SELECT set_config('oshal.reason', %s, true)", (reason[:500],))
    await conn.execute(
        "UPDATE tickets SET status = %s, status_reason = %s, finished_at = CASE WHEN %s = 'done' THEN now() END "
        "WHERE id = %s AND status <> %s", (status, reason[:500], status, ticket, status))
