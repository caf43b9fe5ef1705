"""Workflow engine benchmark: engine time per step, and throughput of a 5-step sequential workflow.

Publishes ``bench-five`` (five echo steps, each reading the previous step's output) in a tenant of its own.
First BENCH_WORKFLOW_ROUNDS runs one at a time (`?wait=`): the end-to-end latency of a whole run and the
engine's time per step on an otherwise idle platform. Then BENCH_WORKFLOWS runs submitted through the batch
API at once: throughput, and the engine's time per step under that load (it then shares two cores with the
API, the collector, Postgres, Redis and the bots).
Engine time per step is the control plane's own histogram ``oshal_workflow_advance_seconds`` (one advance:
lock the run, read the finished step, checkpoint, commit the next phase, dispatch it), read from /metrics
before and after; p50/p99 are interpolated within its buckets. Bot work and lane transport are excluded.
"""

from __future__ import annotations

import re
import statistics
import time
from typing import Any

import httpx

FIVE_STEPS = {"name": "bench-five", "steps": [
    {"id": "s1", "kind": "task", "bot": "echo", "input": {"n": "${ticket.input.n}"}},
    *({"id": f"s{i}", "kind": "task", "bot": "echo", "input": {"prev": f"${{steps.s{i - 1}.output}}"}}
      for i in range(2, 6)),
]}
_BUCKET = re.compile(r'^oshal_workflow_advance_seconds_bucket\{le="([^"]+)"\} ([0-9.e+]+)$', re.MULTILINE)


def _buckets(http: httpx.Client) -> list[tuple[float, float]]:
    text = http.get("/metrics").text
    return [(float("inf") if le == "+Inf" else float(le), float(n)) for le, n in _BUCKET.findall(text)]


def _quantile(before: list[tuple[float, float]], after: list[tuple[float, float]], q: float) -> float:
    counts = [(le, a - b) for (le, a), (_, b) in zip(after, before, strict=True)]
    total = counts[-1][1]
    target = q * total
    lower_le, lower_count = 0.0, 0.0
    for le, cumulative in counts:
        if cumulative >= target:
            if le == float("inf"):
                return lower_le
            span = cumulative - lower_count
            return lower_le + (le - lower_le) * ((target - lower_count) / span if span else 0)
        lower_le, lower_count = le, cumulative
    return lower_le


def _sequential(http: httpx.Client, rounds: int) -> dict[str, float]:
    before = _buckets(http)
    latencies = []
    for i in range(rounds + 10):
        t0 = time.perf_counter()
        ticket = http.post("/v1/tickets", params={"wait": 10}, json={"type": "bench-five", "input": {"n": i}}).json()
        if ticket["status"] != "done":
            raise SystemExit(f"a sequential workflow run ended {ticket['status']}: {ticket}")
        if i >= 10:  # warm-up excluded
            latencies.append((time.perf_counter() - t0) * 1000)
    after = _buckets(http)
    return {"workflow_5step_latency_p50_ms": statistics.median(latencies),
            "engine_step_idle_p50_ms": _quantile(before, after, 0.5) * 1000,
            "engine_step_idle_p99_ms": _quantile(before, after, 0.99) * 1000}


def measure(url: str, admin_key: str, count: int, rounds: int = 100) -> dict[str, float]:
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {admin_key}"}, timeout=60) as admin:
        name = f"wf-bench-{int(time.time())}"
        admin.post("/v1/tenants", json={"name": name}).raise_for_status()
        key = admin.post("/v1/keys", json={"tenant": name, "role": "operator", "name": "bench"}).json()["key"]
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=120) as http:
        http.post("/v1/workflows", json={"definition": FIVE_STEPS}).raise_for_status()
        idle = _sequential(http, rounds)
        before = _buckets(http)
        already = http.get("/v1/tickets/counts").json()["done"]  # the sequential runs above
        started = time.perf_counter()
        for start in range(0, count, 100):
            batch = [{"type": "bench-five", "input": {"n": i}} for i in range(start, min(start + 100, count))]
            http.post("/v1/tickets/batch", json={"tickets": batch}).raise_for_status()
        counts: dict[str, Any] = {}
        while True:
            counts = http.get("/v1/tickets/counts").json()
            if counts["done"] - already + counts["failed"] + counts["dead_letter"] >= count:
                break
            time.sleep(0.05)
        elapsed = time.perf_counter() - started
        if counts["done"] - already != count:
            raise SystemExit(f"expected {count} finished workflows, got {counts}")
        after = _buckets(http)
    steps = after[-1][1] - before[-1][1]
    return {**idle, "workflows_5step_per_s": count / elapsed, "workflow_steps_per_s": 5 * count / elapsed,
            "engine_step_loaded_p50_ms": _quantile(before, after, 0.5) * 1000,
            "engine_step_loaded_p99_ms": _quantile(before, after, 0.99) * 1000, "engine_steps_measured": steps}
