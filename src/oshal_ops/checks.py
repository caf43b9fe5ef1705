"""Monitor: health checks of HTTP endpoints (status, body, timeout) and of the platform itself, read from its API.

Every check returns a :class:`CheckResult` naming what it looked at and when; a failing one is a signal that opens
(or keeps open) an incident keyed ``check:<name>``.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from oshal_ops.api import PlatformAPI, PlatformError

_BODY_EXCERPT = 300


@dataclass(frozen=True, slots=True)
class EndpointCheck:
    """An HTTP endpoint under watch: it is healthy when it answers ``expect_status`` within ``timeout_s`` and, if
    ``expect_body`` is set, its body contains that text."""

    name: str
    url: str
    timeout_s: float = 5.0
    expect_status: int = 200
    expect_body: str | None = None


@dataclass(frozen=True, slots=True)
class Thresholds:
    lane_pending: int = 100  # a lane with more pending entries than this, and replicas up, is stuck
    dead_letters: int = 0  # more dead letters than this for one bot is a poison-message signal
    bots: frozenset[str] | None = None  # the bots watched (None: every registered bot)


@dataclass(frozen=True, slots=True)
class CheckResult:
    name: str  # "endpoint:shop", "bot:echo", "lane:echo", "dead_letters:echo", "budget:<id>", "credential:<id>", ...
    ok: bool
    detail: str
    source: str  # "GET http://..." or "GET /v1/bots"
    at: dt.datetime
    signal: dict[str, Any] = field(default_factory=dict)  # what the diagnoser is told: kind and subject
    observed: dict[str, Any] = field(default_factory=dict)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


async def check_endpoint(client: httpx.AsyncClient, check: EndpointCheck) -> CheckResult:
    started = time.perf_counter()
    signal = {"kind": "endpoint_down", "check": check.name, "url": check.url}
    source = f"GET {check.url}"
    try:
        response = await client.get(check.url, timeout=check.timeout_s)
    except httpx.TimeoutException:
        return CheckResult(f"endpoint:{check.name}", False, f"no answer within {check.timeout_s:g} s", source,
                           _now(), signal, {"error": "timeout"})
    except httpx.HTTPError as e:
        return CheckResult(f"endpoint:{check.name}", False, f"cannot reach it: {type(e).__name__}: {e}", source,
                           _now(), signal, {"error": type(e).__name__})
    elapsed_ms = round((time.perf_counter() - started) * 1000, 1)
    body = response.text
    observed = {"status": response.status_code, "latency_ms": elapsed_ms, "body": body[:_BODY_EXCERPT]}
    if response.status_code != check.expect_status:
        return CheckResult(f"endpoint:{check.name}", False,
                           f"answered {response.status_code}, expected {check.expect_status}", source, _now(),
                           signal, observed)
    if check.expect_body is not None and check.expect_body not in body:
        return CheckResult(f"endpoint:{check.name}", False, f"its body lacks {check.expect_body!r}", source,
                           _now(), signal, observed)
    return CheckResult(f"endpoint:{check.name}", True, f"{response.status_code} in {elapsed_ms} ms", source,
                       _now(), signal, observed)


async def platform_checks(api: PlatformAPI, thresholds: Thresholds) -> list[CheckResult]:
    """The platform's own health, one result per thing watched (a healthy one too, so an incident can resolve)."""
    results: list[CheckResult] = []
    results += await _engines(api)
    try:
        bots: list[dict[str, Any]] = await api.get("/v1/bots")
    except PlatformError as e:
        return [*results, CheckResult("platform:api", False, str(e), "GET /v1/bots", _now(),
                                      {"kind": "platform_unreachable"})]
    if thresholds.bots is not None:
        bots = [b for b in bots if b["name"] in thresholds.bots]
    for bot in bots:
        name = str(bot["name"])
        up, desired = int(bot["replicas"]), int(bot["replicas_desired"])
        dead = desired > 0 and up == 0 and not bot.get("kill_switch")
        results.append(CheckResult(f"bot:{name}", not dead,
                                   f"{up} of {desired} replicas up" + (" (held by a kill switch)"
                                                                       if bot.get("kill_switch") else ""),
                                   "GET /v1/bots", _now(), {"kind": "bot_offline", "bot": name}, bot))
        stuck = up > 0 and int(bot["pending"]) + int(bot["lag"]) > thresholds.lane_pending
        results.append(CheckResult(f"lane:{name}", not stuck,
                                   f"{bot['pending']} pending, lag {bot['lag']}", "GET /v1/bots", _now(),
                                   {"kind": "lane_stuck", "bot": name}, bot))
    results += await _dead_letters(api, [str(b["name"]) for b in bots], thresholds)
    results += await _budgets(api)
    results += await _credentials(api)
    return results


async def _engines(api: PlatformAPI) -> list[CheckResult]:
    body = await api.request("GET", "/readyz", ok=(503,))
    body = body if isinstance(body, dict) else {}
    ready = body.get("status") == "ready"
    checks: dict[str, Any] = body["checks"] if isinstance(body.get("checks"), dict) else {}
    detail = "; ".join(f"{name}: {summary}" for name, summary in sorted(checks.items())) or str(body)[:300]
    return [CheckResult("platform:engines", ready, detail, "GET /readyz", _now(), {"kind": "engine_down"}, body)]


async def _dead_letters(api: PlatformAPI, bots: list[str], thresholds: Thresholds) -> list[CheckResult]:
    page = await api.get("/v1/dead-letters", limit=500)
    per_bot: dict[str, list[dict[str, Any]]] = {}
    for ticket in page.get("items", []):
        per_bot.setdefault(str(ticket.get("bot")), []).append(ticket)
    return [CheckResult(f"dead_letters:{bot}", len(per_bot.get(bot, [])) <= thresholds.dead_letters,
                        f"{len(per_bot.get(bot, []))} dead letters", "GET /v1/dead-letters", _now(),
                        {"kind": "dead_letters", "bot": bot},
                        {"count": len(per_bot.get(bot, [])), "errors": sorted({str(t.get("error"))[:200]
                                                                               for t in per_bot.get(bot, [])})})
            for bot in bots]


async def _budgets(api: PlatformAPI) -> list[CheckResult]:
    budgets: list[dict[str, Any]] = await api.get("/v1/budgets")
    out = []
    for budget in budgets:
        exhausted = int(budget.get("remaining") or 0) <= 0 or bool(budget.get("overrun_at"))
        subject = f"{budget.get('scope')}:{budget.get('subject') or '-'}:{budget.get('period')}"
        out.append(CheckResult(f"budget:{subject}", not exhausted,
                               "exhausted" if exhausted else "room left", "GET /v1/budgets", _now(),
                               {"kind": "budget_exhausted", "budget": budget.get("id"),
                                **({"bot": budget["subject"]} if budget.get("scope") == "bot" else {})}, budget))
    return out


async def _credentials(api: PlatformAPI) -> list[CheckResult]:
    connections: list[dict[str, Any]] = await api.get("/v1/connections")
    return [CheckResult(f"credential:{c['connector_id']}", c.get("health") not in ("failing", "expired"),
                        f"credential {c.get('health')}" + (f": {c.get('last_error')}" if c.get("last_error") else ""),
                        "GET /v1/connections", _now(), {"kind": "credential_failing", "connector": c["connector_id"]},
                        c) for c in connections]
