"""Runtime: bursts of refused logins and denied tool calls, lanes with lag or dead letters, identities in Redis
that do not belong (heartbeats of unknown bots, commands Redis refused a bot's ACL user), and fleet drift (declared
bots with none running, lanes nobody consumes)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from oshal.mesh import lanes
from oshal.mesh.redis_keys import PREFIX, dead_stream
from oshal.security.findings import Finding, Severity
from oshal.security.scans import ScanContext
from oshal.store import access
from oshal.store import audit as audit_repo

WINDOW = dt.timedelta(minutes=15)
AUTH_FAILURE_BURST = 20
DENIED_CALL_BURST = 10
LANE_LAG_LIMIT = 10_000


async def scan(ctx: ScanContext) -> list[Finding]:
    since = dt.datetime.now(dt.UTC) - WINDOW
    async with ctx.db.platform() as conn:
        counts = await audit_repo.action_counts(conn, since)
    findings = _bursts(counts)
    findings += await _lanes(ctx)
    findings += await _heartbeats(ctx)
    findings += await _fleet_drift(ctx)
    findings += await _acl_denials(ctx)
    return findings


def _bursts(counts: list[dict[str, Any]]) -> list[Finding]:
    findings = []
    failures = sum(int(r["n"]) for r in counts if r["action"] == "auth.failure")
    if failures >= AUTH_FAILURE_BURST:
        actors = sorted((r for r in counts if r["action"] == "auth.failure"), key=lambda r: -int(r["n"]))[:10]
        findings.append(Finding(
            "runtime", "auth.failure_burst", Severity.HIGH,
            f"{failures} refused authentications in the last {WINDOW.seconds // 60} minutes", "auth-failures",
            "look up the sources in the audit log (`oshal audit export`); revoke leaked keys; block the source at "
            "the proxy", {"failures": failures, "top": [{"actor": r["actor"], "count": int(r["n"])} for r in actors]}))
    for row in counts:
        if row["action"] == "tool.denied" and int(row["n"]) >= DENIED_CALL_BURST:
            findings.append(Finding(
                "runtime", "tool.denied_burst", Severity.MEDIUM,
                f"{row['actor']} had {row['n']} tool calls denied in the last {WINDOW.seconds // 60} minutes",
                f"denied:{row['actor']}", "read the denials in the audit log: a bot that keeps asking for what its "
                "policy forbids may be following injected instructions", {"actor": row["actor"],
                                                                           "denied": int(row["n"])}))
    return findings


async def _lanes(ctx: ScanContext) -> list[Finding]:
    findings = []
    for bot in sorted(ctx.bots()):
        stats = await lanes.lane_stats(ctx.redis, bot)
        if stats.lag >= LANE_LAG_LIMIT:
            findings.append(Finding(
                "runtime", "lane.lag", Severity.MEDIUM, f"lane of {bot} has {stats.lag} undelivered messages",
                f"lane:{bot}", f"scale {bot}'s replicas or find out why it stopped consuming",
                {"bot": bot, "lag": stats.lag, "pending": stats.pending, "replicas": stats.replicas}))
        dead = int(await ctx.redis.xlen(dead_stream(bot)))
        if dead:
            findings.append(Finding(
                "runtime", "lane.dead_letters", Severity.MEDIUM, f"{bot} has {dead} dead-lettered messages",
                f"dead:{bot}", "inspect them with `oshal dead-letters`, fix the cause, then requeue or cancel",
                {"bot": bot, "dead_letters": dead}))
    return findings


async def _fleet_drift(ctx: ScanContext) -> list[Finding]:
    """Declared bots with no replica running, and lanes nobody consumes (a bot beating without a manifest is
    :func:`_heartbeats`' finding)."""
    async with ctx.db.system() as conn:
        declared = {str(r["name"]): int(r["replicas"]) for r in await access.bots(conn)}
    live = await lanes.live_replicas(ctx.redis)
    drift = lanes.fleet_drift(declared, live, await lanes.consumed(ctx.redis, declared))
    hints = {"absent": "start its node (`oshal node --bot NAME`), or set replicas: 0 in its manifest if it should "
                       "not run",
             "unconsumed": "start the bot once (its node creates the group), or remove the manifest"}
    return [Finding("runtime", f"fleet.{d.kind}", Severity.MEDIUM, d.text, f"{d.kind}:{d.bot}", hints[d.kind],
                    {"bot": d.bot, "desired": declared.get(d.bot, 0), "live": live.get(d.bot, 0)})
            for d in drift if d.kind in hints]


async def _heartbeats(ctx: ScanContext) -> list[Finding]:
    known = ctx.bots()
    findings = []
    async for key in ctx.redis.scan_iter(match=f"{PREFIX}:hb:*", count=500):
        name = key.decode() if isinstance(key, bytes) else str(key)
        bot = name.split(":")[2] if name.count(":") >= 3 else ""
        if bot not in known:
            findings.append(Finding(
                "runtime", "heartbeat.unknown_bot", Severity.HIGH,
                f"a process heartbeats as {bot!r}, which is not a registered bot", f"heartbeat:{bot}",
                "find the process (the heartbeat names its consumer and pid) and stop it; rotate the Redis "
                "credentials it used", {"key": name, "bot": bot}))
    return findings


async def _acl_denials(ctx: ScanContext) -> list[Finding]:
    """Redis logs every command an ACL refused: a bot touching another bot's keys is an identity out of place.
    Only refusals within the window count, so a finding clears once they stop."""
    try:
        entries = await ctx.redis.acl_log(count=128)
    except Exception:
        return []
    findings = []
    for entry in entries if isinstance(entries, list) else []:
        info = {_text(k): _text(v) for k, v in dict(entry).items()}
        username = info.get("username", "?")
        if not username.startswith("bot-") or float(info.get("age-seconds", 0) or 0) > WINDOW.total_seconds():
            continue
        findings.append(Finding(
            "runtime", "redis.acl_denied", Severity.HIGH,
            f"Redis refused {username} {info.get('reason', '')} access to {info.get('object', '?')}",
            f"acl:{username}:{info.get('object', '?')}",
            "a bot's credentials were used beyond its lane: find the process and rotate the bots' Redis passwords "
            "(they derive from the Redis admin password: change it, e.g. delete $OSHAL_HOME/secrets/redis-admin, "
            "and restart `oshal up`)", {k: info.get(k) for k in ("username", "reason", "object",
                                                                                    "context", "count")}))
    return findings


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return value if isinstance(value, str) else json.dumps(value, default=str)
