"""Access: keys nobody uses, keys that never expire, operators who never authenticate."""

from __future__ import annotations

import datetime as dt

from oshal.security.findings import Finding, Severity
from oshal.security.scans import ScanContext
from oshal.store import access

UNUSED_AFTER = dt.timedelta(days=30)
OPERATOR_GRACE = dt.timedelta(days=7)


async def scan(ctx: ScanContext) -> list[Finding]:
    async with ctx.db.platform() as conn:
        keys = await access.live_key_inventory(conn)
    now = dt.datetime.now(dt.UTC)
    findings = []
    for key in keys:
        subject = f"key:{key['prefix']}"
        label = f"key {key['prefix']} ({key['role']}{', ' + key['name'] if key['name'] else ''})"
        evidence = {"key_id": str(key["id"]), "tenant": str(key["tenant_id"]), "prefix": key["prefix"],
                    "role": key["role"], "created_at": key["created_at"].isoformat(),
                    "last_used_at": key["last_used_at"].isoformat() if key["last_used_at"] else None}
        if key["expires_at"] is None:
            findings.append(Finding("access", "key.no_expiry", Severity.LOW, f"{label} never expires", subject,
                                    "create a replacement with --expires-in-days and revoke this one",
                                    evidence))
        if key["expires_at"] is not None and key["expires_at"] <= now:
            continue
        last = key["last_used_at"]
        if key["role"] == "operator" and last is None and now - key["created_at"] > OPERATOR_GRACE:
            findings.append(Finding("access", "operator.never_authenticated", Severity.MEDIUM,
                                    f"operator {label} has never been used", subject,
                                    "revoke it: an operator key nobody uses is only a risk", evidence))
        elif (last or key["created_at"]) < now - UNUSED_AFTER:
            findings.append(Finding("access", "key.unused", Severity.LOW,
                                    f"{label} has not been used for {(now - (last or key['created_at'])).days} days",
                                    subject, "revoke it (`oshal key revoke`) if nobody needs it", evidence))
    return findings
