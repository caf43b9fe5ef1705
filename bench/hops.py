"""Where a one-at-a-time round trip goes, hop by hop (issue 18), on a running platform.

A control-plane process of our own (no collector or sweeper: the platform's collector commits the results)
creates tickets one at a time through the service layer and waits for each, as bench/run.py's in-process round
trip does. Its own hops are timed in-process by wrapping the Database, Dispatcher and EventHub instances it
drives (every call still goes through them); the hops in other processes come from the timestamps the platform
records anyway: the bot's start and finish (carried back in the result) and the collector's transaction start
(the attempt's recorded_at, Postgres' now()). One clock (time.time) on one machine, so they line up. The
collector's commit time per batch is the platform's own histogram (GET /metrics). Nothing here runs unless
benchmarking: the platform carries no instrumentation for it.

HTTP's share is the HTTP round trip's p50 minus the in-process one's (parse, auth, routing, JSON, response).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar
from uuid import UUID

import httpx

T = TypeVar("T")

HOPS = (
    ("auth", "authenticate the API key (cached after the first)"),
    ("create_commit", "the create statement (ticket + phase, dispatched) and its commit"),
    ("xadd", "XADD of the signed envelope to the lane (through the kill gate)"),
    ("bot_read", "XADD done -> the bot's harness starts (XREADGROUP wake-up, decode)"),
    ("bot_run", "the bot's harness (echo)"),
    ("result_to_collector", "harness done -> the collector's transaction starts (result XADD + ack, "
                            "the collector's XREADGROUP wake-up, decode, verify, price)"),
    ("collector_commit_to_wake", "the collector's statement and commit (not waiting for the disk), its notify "
                                 "pipeline, the pub/sub hop, the waiter's wake-up"),
    ("final_read", "wake-up -> the waiter has the finished ticket: handed over by the collector (to its own "
                   "process directly, as over HTTP; to another one, as here, on that process's own channel), "
                   "else one read"),
    ("other", "the rest: validation, envelope signing, scheduling between hops"),
)


def _metric(url: str, name: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


async def measure(home: Path, url: str, key: str, rounds: int) -> dict[str, float]:
    """p50 of each hop (ms) over ``rounds`` sequential round trips, keyed hop_<name>_p50_ms."""
    from oshal.control.plane import Components, ControlPlane
    from oshal.control.tickets import TicketRequest
    from oshal.launcher.prepare import attach
    from oshal.settings import Settings

    settings = Settings(home=home)
    engines = attach(settings)
    plane = ControlPlane(settings, engines.api_url, engines.redis_url, engines.dispatch_key,
                         Components(collector=False, sweeper=False))
    await plane.start()
    marks: dict[str, float] = {}

    def timed(name: str, fn: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
        async def wrapper(*args: Any, **kwargs: Any) -> T:
            start = time.time()
            try:
                return await fn(*args, **kwargs)
            finally:
                marks.setdefault(f"{name}_start", start)  # the first call of each kind in a round trip
                marks.setdefault(f"{name}_end", time.time())
        return wrapper

    wake = plane.events._wake

    def woken(*args: Any) -> None:
        marks.setdefault("wake", time.time())
        wake(*args)

    plane.db.call = timed("db", plane.db.call)  # type: ignore[method-assign]
    plane.dispatcher.send_committed = timed("xadd", plane.dispatcher.send_committed)  # type: ignore[method-assign]
    plane.events._wake = woken  # type: ignore[method-assign]
    try:
        samples: list[dict[str, float]] = []
        batch_sum, batch_count = (_metric(url, "oshal_collector_batch_seconds_sum"),
                                  _metric(url, "oshal_collector_batch_seconds_count"))
        for i in range(rounds + 20):
            marks.clear()
            t0 = time.time()
            principal = await plane.auth.authenticate(key)
            t_auth = time.time()
            created, row = await plane.tickets.create_and_wait(principal.tenant_id, principal.key_id,
                                                               TicketRequest("echo", {"i": i}), 10)
            t_end = time.time()
            assert row["status"] == "done", row
            if i >= 20:
                samples.append({"t0": t0, "auth": t_auth, "end": t_end, "ticket": created.id.int, **marks})
        batches = _metric(url, "oshal_collector_batch_seconds_count") - batch_count
        commit_ms = 1000 * (_metric(url, "oshal_collector_batch_seconds_sum") - batch_sum) / max(batches, 1)
        async with plane.db.tenant(principal.tenant_id) as conn:
            cur = await conn.execute(
                "SELECT ticket_id, extract(epoch FROM started_at) AS s, extract(epoch FROM finished_at) AS f, "
                "extract(epoch FROM recorded_at) AS r FROM attempts WHERE ticket_id = ANY(%s)",
                ([UUID(int=s["ticket"]) for s in samples],))
            attempts = {row["ticket_id"].int: row for row in await cur.fetchall()}
    finally:
        await plane.stop()

    hops: dict[str, list[float]] = {name: [] for name, _ in HOPS}
    for s in samples:
        a = attempts[int(s["ticket"])]
        bot_start, bot_end, recorded = float(a["s"]), float(a["f"]), float(a["r"])
        parts = {
            "auth": s["auth"] - s["t0"],
            "create_commit": s["db_end"] - s["db_start"],
            "xadd": s["xadd_end"] - s["xadd_start"],
            "bot_read": bot_start - s["xadd_end"],
            "bot_run": bot_end - bot_start,
            "result_to_collector": recorded - bot_end,
            "collector_commit_to_wake": s["wake"] - recorded,
            "final_read": s["end"] - s["wake"],
        }
        parts["other"] = (s["end"] - s["t0"]) - sum(parts.values())
        for name, seconds in parts.items():
            hops[name].append(seconds * 1000)
    out = {f"hop_{name}_p50_ms": statistics.median(values) for name, values in hops.items()}
    out["hop_total_p50_ms"] = statistics.median([(s["end"] - s["t0"]) * 1000 for s in samples])
    out["hop_collector_commit_mean_ms"] = commit_ms
    return out


def report(hops: dict[str, float], http_p50_ms: float | None, log: Callable[[str], None]) -> None:
    """The breakdown, one hop a line, with the HTTP layer's share when the HTTP round trip is known."""
    total = hops["hop_total_p50_ms"]
    log(f"  in-process round trip p50 {total:.2f} ms; each hop's p50 (they need not add up exactly):")
    for name, what in HOPS:
        log(f"    {hops[f'hop_{name}_p50_ms']:7.3f} ms  {name:<25} {what}")
    log(f"    (of which the collector's statement and commit, mean per batch: "
        f"{hops['hop_collector_commit_mean_ms']:.3f} ms)")
    if http_p50_ms is not None:
        log(f"    {http_p50_ms - total:7.3f} ms  {'http':<25} over HTTP on top (parse, auth, routing, JSON, "
            f"response): HTTP p50 {http_p50_ms:.2f} ms")
