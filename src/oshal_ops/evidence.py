"""Gather: before any diagnosis, the evidence an incident rests on, each piece with where it came from and when.

Read from the platform's API only: the fleet and its lanes, dead letters, budgets, connections' credential health,
engine readiness, recent changes from the audit log, the failing checks, and matching runbooks from the knowledge
store. Each piece is capped in size, so an incident's evidence stays small enough to hand to a bot.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from oshal_ops.api import PlatformAPI, PlatformError
from oshal_ops.audit_window import entries_since
from oshal_ops.checks import CheckResult
from oshal_ops.model import Evidence

MAX_ITEM_BYTES = 4 * 1024  # an incident ticket carries its evidence; the platform caps ticket input (64 KiB)
_AUDIT_WINDOW = dt.timedelta(hours=2)
_CHANGE_ACTIONS = ("operator.", "kill.", "budget.", "connector.", "fleet.", "schedule.", "approval.", "key.")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def capped(data: Any) -> Any:
    """``data`` if its JSON fits in MAX_ITEM_BYTES, else its JSON text cut there (marked as cut)."""
    text = json.dumps(data, default=str, ensure_ascii=False)
    return data if len(text) <= MAX_ITEM_BYTES else {"truncated": True, "json": text[:MAX_ITEM_BYTES]}


def from_check(result: CheckResult) -> Evidence:
    """An HTTP endpoint check's result, as the diagnoser reads it (name, url, ok, status or error, when)."""
    observed = result.observed
    return Evidence(f"check:{result.name}", "check", result.source, result.at,
                    f"{result.name} {'ok' if result.ok else 'FAILING'}: {result.detail}",
                    capped({"name": result.name.removeprefix("endpoint:"), "url": result.signal.get("url"),
                            "ok": result.ok, "status": observed.get("status"), "error": observed.get("error"),
                            "expected": observed.get("expected"), "latency_ms": observed.get("latency_ms"),
                            "body": observed.get("body"), "at": result.at.isoformat()}))


async def gather(api: PlatformAPI, signal: dict[str, Any], failing: list[CheckResult],
                 lanes: dict[str, list[dict[str, Any]]] | None = None) -> list[Evidence]:
    """Everything the diagnoser may cite for ``signal`` (what opened the incident): the failing endpoint checks,
    the platform's state, and ``lanes`` (recent timed samples of each bot's row, oldest first) for the bot named."""
    items = [from_check(r) for r in failing if r.name.startswith("endpoint:")]
    bot = signal.get("bot")
    if bot and lanes and lanes.get(str(bot)):
        samples = lanes[str(bot)][-10:]
        last = samples[-1]
        items.append(Evidence(f"lane:{bot}", "lane", "GET /v1/bots (sampled by the loop)", _now(),
                              f"{bot}: {len(samples)} samples; now {last.get('replicas')}/"
                              f"{last.get('replicas_desired')} up, {last.get('pending')} pending, "
                              f"lag {last.get('lag')}",
                              capped({"bot": bot, "samples": samples})))
    for read in (_fleet, _dead_letters, _paused, _budgets, _connections, _engines, _changes, _metrics):
        try:
            items += await read(api, signal)
        except PlatformError as e:  # a read that fails is itself evidence (the diagnoser sees what is missing)
            items.append(Evidence(f"unavailable:{read.__name__.strip('_')}", "error", f"{e.method} {e.path}",
                                  _now(), f"could not read it: {e.message}", {"status": e.status}))
    items += await _runbooks(api, signal)
    return items


async def _fleet(api: PlatformAPI, signal: dict[str, Any]) -> list[Evidence]:
    bots: list[dict[str, Any]] = await api.get("/v1/bots")
    at = _now()
    down = [b["name"] for b in bots if int(b["replicas"]) < int(b["replicas_desired"])]
    items = [Evidence("bots", "bots", "GET /v1/bots", at,
                      f"{len(bots)} bots; below their desired replicas: {', '.join(down) or 'none'}",
                      capped([{k: b.get(k) for k in ("name", "status", "replicas", "replicas_desired", "pending",
                                                     "lag", "kill_switch")} for b in bots]))]
    return items


async def _dead_letters(api: PlatformAPI, signal: dict[str, Any]) -> list[Evidence]:
    page = await api.get("/v1/dead-letters", bot=signal.get("bot"), limit=50)
    tickets = page.get("items", [])
    errors = sorted({str(t.get("error"))[:300] for t in tickets})
    return [Evidence("dead_letters", "dead_letters", "GET /v1/dead-letters", _now(),
                     f"{len(tickets)} dead letters" + (f" of {signal['bot']}" if signal.get("bot") else "")
                     + (f"; errors: {'; '.join(errors[:3])}" if errors else ""),
                     capped({"items": [{k: t.get(k) for k in ("id", "bot", "status", "error", "attempts",
                                                              "created_at", "finished_at")} for t in tickets[:20]]}))]


async def _paused(api: PlatformAPI, signal: dict[str, Any]) -> list[Evidence]:
    page = await api.get("/v1/tickets", status="paused", limit=20)
    tickets = page.get("items", [])
    return [Evidence("tickets", "tickets", "GET /v1/tickets?status=paused", _now(), f"{len(tickets)} paused tickets",
                     capped({"items": [{k: t.get(k) for k in ("id", "bot", "type", "status", "status_reason")}
                                       for t in tickets]}))]


async def _budgets(api: PlatformAPI, signal: dict[str, Any]) -> list[Evidence]:
    budgets: list[dict[str, Any]] = await api.get("/v1/budgets")
    gone = [b for b in budgets if int(b.get("remaining") or 0) <= 0 or b.get("overrun_at")]
    return [Evidence("budgets", "budgets", "GET /v1/budgets", _now(),
                     f"{len(budgets)} budgets; exhausted or overrun: {len(gone)}",
                     capped([{k: b.get(k) for k in ("id", "scope", "subject", "period", "limit_micros", "spent",
                                                    "reserved", "remaining", "overrun_at", "overrun_reason")}
                             for b in budgets]))]


async def _connections(api: PlatformAPI, signal: dict[str, Any]) -> list[Evidence]:
    connections: list[dict[str, Any]] = await api.get("/v1/connections")
    bad = [c["connector_id"] for c in connections if c.get("health") in ("failing", "expired")]
    return [Evidence("connections", "connections", "GET /v1/connections", _now(),
                     f"{len(connections)} connections; failing or expired: {', '.join(bad) or 'none'}",
                     capped([{k: c.get(k) for k in ("connector_id", "health", "last_success_at", "last_error_at",
                                                    "last_error", "expires_at")} for c in connections]))]


async def _engines(api: PlatformAPI, signal: dict[str, Any]) -> list[Evidence]:
    body = await api.request("GET", "/readyz", ok=(503,))
    body = body if isinstance(body, dict) else {}
    return [Evidence("readyz", "readyz", "GET /readyz", _now(), f"engines: {body.get('status', 'unknown')}",
                     capped(body))]


async def _changes(api: PlatformAPI, signal: dict[str, Any]) -> list[Evidence]:
    """Recent changes by people and the platform (kill switches, budgets, connectors, keys) from the audit log."""
    entries = await entries_since(api, _now() - _AUDIT_WINDOW)
    recent = [e for e in entries if str(e.get("action", "")).startswith(_CHANGE_ACTIONS)][-50:]
    return [Evidence("audit", "audit", "GET /v1/audit?since=", _now(),
                     f"{len(recent)} changes in the last {int(_AUDIT_WINDOW.total_seconds() // 3600)} h",
                     capped([{k: e.get(k) for k in ("seq", "at", "actor", "action", "target")} for e in recent]))]


async def _runbooks(api: PlatformAPI, signal: dict[str, Any]) -> list[Evidence]:
    # Any of the words (the failure's kind first): a runbook names the failure mode, not this bot or endpoint.
    words = [w for k in ("kind", "alertname") if (v := signal.get(k)) for w in str(v).replace("_", " ").split()]
    query = " or ".join(words)
    try:
        found = await api.get("/v1/knowledge/search", q=query or "incident", collection="runbooks", limit=3)
    except PlatformError as e:
        return [Evidence("runbooks", "runbook", "GET /v1/knowledge/search", _now(),
                         f"the knowledge store did not answer: {e.message}", {"status": e.status})]
    results = found.get("results", found) if isinstance(found, dict) else found
    return [Evidence(f"runbook:{r.get('slug')}", "runbook", f"GET /v1/knowledge/runbooks/{r.get('slug')}", _now(),
                     f"runbook {r.get('title')!r} (rank {r.get('rank')})", capped(r)) for r in results or []]


# The platform's own metric families an incident is read against (Prometheus text from /metrics).
_METRIC_FAMILIES = ("oshal_lane_", "oshal_bot_replicas", "oshal_tickets_created_total", "oshal_results_",
                    "oshal_phases_redriven_total", "oshal_stale_phases_in_flight", "oshal_duplicate_executions_total")


async def _metrics(api: PlatformAPI, signal: dict[str, Any]) -> list[Evidence]:
    """The platform's metrics at the moment of the incident: lanes and replicas (the signal's bot's only, when it
    names one), tickets created, results committed or rejected, re-drives."""
    text = await api.get("/metrics")
    bot = signal.get("bot")
    samples: dict[str, float] = {}
    for line in str(text).splitlines():
        if not line.startswith(_METRIC_FAMILIES) or line.startswith("#"):
            continue
        name, _, value = line.rpartition(" ")
        if bot and "bot=" in name and f'bot="{bot}"' not in name:
            continue
        try:
            samples[name] = float(value)
        except ValueError:
            continue
    shown = ", ".join(f"{k}={v:g}" for k, v in list(samples.items())[:4])
    return [Evidence("metrics", "metrics", "GET /metrics", _now(), f"{len(samples)} samples: {shown}",
                     capped(samples))]
