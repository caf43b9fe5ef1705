"""Posture: RLS coverage, role privileges, secrets and settings, unauthenticated routes, connector signatures."""

from __future__ import annotations

import ipaddress
from typing import Any

from oshal.audit import trail
from oshal.security.findings import Finding, Severity
from oshal.security.rls import coverage_problems, tenant_tables
from oshal.security.roles import RUNTIME_ROLES, flags_of, grants_of, privilege_problems, unexpected_grants
from oshal.security.scans import ScanContext
from oshal.security.startup import secret_problems
from oshal.settings import Settings

# Routes anyone may call: liveness, readiness and metrics for the orchestrator, and the console's login page (it
# takes an API key and answers nothing else). The bot gateway routes carry their own authentication (bot token plus
# a signed envelope) and are listed as such by the app.
# /v1/nodes/join: a remote node has no key yet; the single-use enrollment code in its body is the credential.
PUBLIC_ROUTES = frozenset({"/healthz", "/readyz", "/metrics", "/login", "/v1/nodes/join"})


async def scan(ctx: ScanContext) -> list[Finding]:
    findings: list[Finding] = []
    async with ctx.db.system() as conn:
        findings += _rls(await tenant_tables(conn))
        for role in RUNTIME_ROLES:
            findings += _role(role, await flags_of(conn, role), await grants_of(conn, role))
    findings += await _audit_chain(ctx)
    findings += _settings(ctx.settings)
    findings += _routes(ctx)
    findings += [_connector(row, reason) for row, reason in await ctx.broken_connectors()]
    return findings


def _rls(tables: list[dict[str, Any]]) -> list[Finding]:
    findings = []
    for table in tables:
        for problem in coverage_problems([table]):
            findings.append(Finding(
                "posture", "rls.coverage", Severity.CRITICAL, problem, f"table:{table['name']}",
                f"ALTER TABLE {table['name']} ENABLE ROW LEVEL SECURITY; ALTER TABLE {table['name']} FORCE ROW "
                "LEVEL SECURITY; and add the tenant_isolation policy (see migrations/001_core.sql)",
                {"table": table["name"], "enabled": table["enabled"], "forced": table["forced"],
                 "policies": int(table["policies"])}))
    return findings


def _role(role: str, flags: dict[str, Any] | None, grants: Any) -> list[Finding]:
    findings = [Finding("posture", "role.attributes", Severity.CRITICAL, problem, f"role:{role}:{problem}",
                        f"ALTER ROLE {role} NOSUPERUSER NOBYPASSRLS NOCREATEROLE NOCREATEDB NOREPLICATION, and "
                        "give owned objects to the owner role", {"role": role})
                for problem in privilege_problems(role, flags) if flags is not None]
    for grant in unexpected_grants(role, grants) if flags is not None else []:
        findings.append(Finding(
            "posture", "role.grant", Severity.HIGH, f"{role} holds {grant}, which it does not need",
            f"role:{role}:{grant}", f"REVOKE {grant.privilege} ON {grant.target} FROM {role} (or, if the platform "
            "needs it, add it to security/roles.py with the migration that uses it)",
            {"role": role, "kind": grant.kind, "target": grant.target, "privilege": grant.privilege}))
    return findings


async def _audit_chain(ctx: ScanContext) -> list[Finding]:
    if ctx.audit_anchors is None:
        return []
    report = await trail.verify(ctx.db, ctx.audit_anchors)
    entries = [p for p in report.problems if p.get("kind") != "seal"]  # the chain, its anchors, the anchor file
    set_up = [str(p["problem"]) for p in report.problems if p.get("kind") == "seal"]
    findings = [Finding("posture", "audit.seal", Severity.HIGH,
                        f"the audit log is open to its database owner: {problem}",
                        f"audit-seal:{problem[:120]}",
                        "restart the platform with its superuser connection (it re-seals at start-up) or run "
                        "`oshal audit seal`; then find out who changed it (only a superuser can) and run "
                        "`oshal audit verify`", {"problem": problem})
                for problem in set_up]
    if entries:
        first = entries[0]
        findings.append(Finding(
            "posture", "audit.chain", Severity.CRITICAL,
            f"the audit log has been tampered with or cannot be checked: {len(entries)} problems, first "
            + (f"at entry #{first['seq']} " if first["seq"] is not None else "") + f"({first['problem']})", "audit-log",
            "treat it as an incident: compare with the last export (`oshal audit export`), find who had owner or "
            "superuser access to the database, and rotate the database credentials",
            {"problems": entries[:20], "entries": report.entries}))
    return findings


def _settings(s: Settings) -> list[Finding]:
    findings = []
    exposed = not _loopback(s.api_host)
    if s.mode == "dev":
        findings.append(Finding(
            "posture", "settings.dev_mode", Severity.HIGH if exposed else Severity.LOW,
            "the platform runs in dev mode" + (f" on a non-loopback interface ({s.api_host})" if exposed else ""),
            "settings:mode", "set OSHAL_MODE=prod with OSHAL_DISPATCH_KEY, OSHAL_SECRETS_KEK and "
            "OSHAL_BOOTSTRAP_KEY; dev mode generates secrets and keeps them on local disk",
            {"mode": s.mode, "api_host": s.api_host}))
    else:
        for problem in secret_problems(s):
            findings.append(Finding("posture", "settings.secret", Severity.CRITICAL, problem,
                                    f"settings:{problem.split(' ', 1)[0]}", "set a strong value (see the message)",
                                    {"setting": problem.split(" ", 1)[0]}))
    if s.log_level.lower() == "debug":
        findings.append(Finding("posture", "settings.debug", Severity.MEDIUM, "debug logging is on",
                                "settings:log_level", "set OSHAL_LOG_LEVEL=info; debug logs carry request details",
                                {"log_level": s.log_level}))
    if exposed and not (s.tls_cert_file and s.tls_key_file):
        findings.append(Finding("posture", "settings.tls", Severity.HIGH,
                                f"the API listens on {s.api_host} without TLS", "settings:tls",
                                "set OSHAL_TLS_CERT_FILE and OSHAL_TLS_KEY_FILE, or bind to 127.0.0.1 behind a "
                                "TLS-terminating proxy", {"api_host": s.api_host}))
    if "*" in s.cors_origins:
        findings.append(Finding("posture", "settings.cors", Severity.MEDIUM,
                                "CORS allows every origin", "settings:cors_origins",
                                "list the console's origins in OSHAL_CORS_ORIGINS instead of '*'",
                                {"cors_origins": list(s.cors_origins)}))
    return findings


def _routes(ctx: ScanContext) -> list[Finding]:
    return [Finding("posture", "route.unauthenticated", Severity.HIGH,
                    f"{','.join(sorted(r.methods))} {r.path} answers without authentication",
                    f"route:{r.path}", "add the Caller or Operator dependency to the route, or, if it must be "
                    "public, add it to PUBLIC_ROUTES in security/scans/posture.py with the reason",
                    {"path": r.path, "methods": sorted(r.methods)})
            for r in ctx.routes() if not r.authenticated and r.path not in PUBLIC_ROUTES]


def _connector(row: dict[str, Any], reason: str) -> Finding:
    return Finding("posture", "connector.signature", Severity.CRITICAL,
                   f"connector {row['id']} is enabled but its signature no longer checks out ({reason})",
                   f"connector:{row['id']}", "quarantine it (`oshal connector verify` does), review the change, and "
                   "re-sign it with the publisher key, or restore the signed manifest",
                   {"connector": row["id"], "reason": reason, "digest": row.get("digest")})


def _loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
