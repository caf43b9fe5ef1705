"""Full-path benchmark on a running platform: API -> Postgres -> lane -> bot -> output -> collector -> ledger.

Starts `oshal up` in a scratch folder (or uses BENCH_URL + BENCH_HOME of one already running), then prints:
  * sustained tickets/s for BENCH_N tickets (default 20,000) submitted through the batch API by concurrent
    clients, counted until every ticket is done with its result and ledger row committed, with the CPU each
    process spent per ticket meanwhile (bench/throughput_cpu.py: Postgres, Redis, control plane, node hosts);
  * the same work through the best-known Python task queues first, on a Redis of their own (bench/peers.py;
    BENCH_PEERS=0 skips them), and the ratios of our figures to theirs (throughput_vs_dramatiq,
    roundtrip_http_vs_celery, roundtrip_inproc_vs_celery);
  * single-ticket round trip p50/p99 (create, then wait for the result), one at a time, over HTTP
    (`POST /v1/tickets?wait=10`: one request that creates the ticket and returns it finished);
  * the same round trip through the service layer inside a control-plane process (no HTTP), then hop by hop
    (bench/hops.py: the create and its commit, the XADD, the bot's read and run, the result's way to the
    collector, its commit and the waiter's wake-up, the final read; HTTP's share on top);
  * the RSS of each idle node host running the demo fleet (one per node group), and their sum;
  * tool-call overhead (bench/tools.py) and the workflow engine's time per step and 5-step throughput
    (bench/workflows.py);
  * a model call's budget reservation and settlement (bench/budgets.py), and the tickets/s figure again in a
    tenant with budgets at every level and every call priced, so every ledger row counts against them;
  * the web console's overview (GET /) p50/p99 with BENCH_CONSOLE_TICKETS tickets (default 100,000) of the last day
    in a tenant and as many in the system tenant, as that tenant's operator and as the platform operator
    (bench/console_overview.py; round trips over loopback, the server sends no Server-Timing).
The last line is one JSON object with every number.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from budgets import measure as measure_budgets  # bench/budgets.py
from budgets import price_every_call, set_budgets
from console_overview import measure as measure_console  # bench/console_overview.py
from hops import measure as measure_hops  # bench/hops.py
from hops import report as report_hops
from peers import measure as measure_peers  # bench/peers.py
from peers import ratios
from throughput_cpu import Reading, describe  # bench/throughput_cpu.py
from tools import HOLD_BOT  # bench/tools.py
from tools import measure as measure_tools
from workflows import measure as measure_workflows  # bench/workflows.py

REPO = Path(__file__).resolve().parents[1]
N = int(os.environ.get("BENCH_N", "20000"))
BATCH = int(os.environ.get("BENCH_BATCH", "500"))
CLIENTS = int(os.environ.get("BENCH_CLIENTS", "4"))
ROUNDTRIPS = int(os.environ.get("BENCH_ROUNDTRIPS", "300"))
TOOL_CALLS = int(os.environ.get("BENCH_TOOL_CALLS", "300"))
WORKFLOWS = int(os.environ.get("BENCH_WORKFLOWS", "1000"))
WORKFLOW_ROUNDS = int(os.environ.get("BENCH_WORKFLOW_ROUNDS", "100"))
CONSOLE_TICKETS = int(os.environ.get("BENCH_CONSOLE_TICKETS", "100000"))
CONSOLE_REQUESTS = int(os.environ.get("BENCH_CONSOLE_REQUESTS", "200"))
# BENCH_CORE_ONLY=1: the figures the peers are compared with (throughput, round trips, hops) and nothing else.
CORE_ONLY = os.environ.get("BENCH_CORE_ONLY", "0") == "1"
# BENCH_HOPS=0: no hop-by-hop profile (bench/ab.py runs older trees, whose internals the profile may not match).
HOPS = os.environ.get("BENCH_HOPS", "1") != "0"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def start_platform(home: Path, port: int) -> subprocess.Popen[bytes]:
    fleet = home / "fleet"  # the demo fleet plus `hold`, a bot that keeps its tickets open for the tool bench
    fleet.mkdir()
    for manifest in (REPO / "fleet").glob("*.yaml"):
        (fleet / manifest.name).write_text(manifest.read_text())
    (fleet / "hold.yaml").write_text(HOLD_BOT)
    # The tool bench measures overhead, not the per-connector rate limit (20/s by default), so lift it here; the
    # budget bench reserves hundreds of calls for one ticket, so the runaway limit (still checked) is lifted too.
    env = {**os.environ, "OSHAL_HOME": str(home), "OSHAL_LOG_LEVEL": "warning", "OSHAL_DRAIN_TIMEOUT_S": "2",
           "OSHAL_CONNECTOR_RATE_PER_S": "100000", "OSHAL_CONNECTOR_BURST": "100000",
           "OSHAL_MAX_MODEL_CALLS": "1000000"}
    proc = subprocess.Popen([sys.executable, "-m", "oshal.cli.main", "up", "--port", str(port), "--fleet",
                             str(fleet)], env=env, stdout=subprocess.DEVNULL, cwd=REPO)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"oshal up exited with {proc.returncode}")
        try:
            bots = httpx.get(f"http://127.0.0.1:{port}/v1/bots", timeout=2,
                             headers={"Authorization": f"Bearer {(home / 'admin.key').read_text().strip()}"})
            if bots.status_code == 200 and all(b["status"] == "online" for b in bots.json()):
                return proc
        except (httpx.HTTPError, OSError):
            pass
        time.sleep(0.2)
    raise SystemExit("platform did not come up in 120 s")


def bench_tenant(url: str, admin_key: str, role: str = "member", label: str = "bench") -> str:
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {admin_key}"}, timeout=30) as admin:
        name = f"{label}-{int(time.time())}"
        admin.post("/v1/tenants", json={"name": name}).raise_for_status()
        key = admin.post("/v1/keys", json={"tenant": name, "role": role, "name": "bench"})
        key.raise_for_status()
        return str(key.json()["key"])


async def throughput(url: str, key: str) -> dict[str, float]:
    headers = {"Authorization": f"Bearer {key}"}
    limits = httpx.Limits(max_connections=CLIENTS * 2)
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=120, limits=limits) as http:
        batches = [[{"bot": "echo", "input": {"n": i, "payload": "x" * 32}}
                    for i in range(start, min(start + BATCH, N))] for start in range(0, N, BATCH)]
        queue: asyncio.Queue[list[dict[str, Any]]] = asyncio.Queue()
        for b in batches:
            queue.put_nowait(b)

        async def client() -> None:
            while not queue.empty():
                tickets = queue.get_nowait()
                response = await http.post("/v1/tickets/batch", json={"tickets": tickets})
                response.raise_for_status()

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(CLIENTS)))
        submitted = time.perf_counter() - started
        log(f"  submitted {N} tickets in {submitted:.2f}s ({N / submitted:,.0f}/s accepted)")
        while True:
            counts = (await http.get("/v1/tickets/counts")).json()
            if counts["done"] + counts["failed"] + counts["dead_letter"] >= N:
                break
            await asyncio.sleep(0.05)
        elapsed = time.perf_counter() - started
        summary = (await http.get("/v1/ledger/summary", params={"by": "tenant"})).json()
        calls = sum(row["calls"] for row in summary["rows"])
        if counts["done"] != N or calls != N:
            raise SystemExit(f"expected {N} done tickets and ledger rows, got {counts} and {calls} calls")
    return {"tickets_per_s": N / elapsed, "accept_per_s": N / submitted, "elapsed_s": elapsed}


def roundtrip_http(url: str, key: str) -> list[float]:
    samples = []
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as http:
        for i in range(ROUNDTRIPS + 20):
            t0 = time.perf_counter()
            ticket = http.post("/v1/tickets", params={"wait": 10}, json={"bot": "echo", "input": {"i": i}}).json()
            elapsed = (time.perf_counter() - t0) * 1000
            assert ticket["status"] == "done", ticket
            if i >= 20:  # warm-up excluded
                samples.append(elapsed)
    return samples


async def roundtrip_service(home: Path, key: str) -> list[float]:
    """A control-plane process of our own (no collector or sweeper), driving the service layer directly."""
    from oshal.control.plane import Components, ControlPlane
    from oshal.launcher.prepare import attach
    from oshal.settings import Settings

    settings = Settings(home=home)
    engines = attach(settings)
    plane = ControlPlane(settings, engines.api_url, engines.redis_url, engines.dispatch_key,
                         Components(collector=False, sweeper=False))
    await plane.start()
    try:
        from oshal.control.tickets import TicketRequest

        principal = await plane.auth.authenticate(key)
        samples = []
        for i in range(ROUNDTRIPS + 20):
            t0 = time.perf_counter()
            _, row = await plane.tickets.create_and_wait(principal.tenant_id, principal.key_id,
                                                         TicketRequest("echo", {"i": i}), 10)
            elapsed = (time.perf_counter() - t0) * 1000
            assert row["status"] == "done", row
            if i >= 20:
                samples.append(elapsed)
        return samples
    finally:
        await plane.stop()


def node_rss_mb(up_pid: int) -> dict[str, float]:
    """The RSS of each idle node host `oshal up` runs (one per node group: the fleet's, then e.g. the apps'),
    keyed by its group's bots as its command line names them ("fleet" when it runs every bot)."""
    out = subprocess.run(["pgrep", "-P", str(up_pid), "-f", "oshal.cli.main node"], capture_output=True, text=True)
    hosts: dict[str, float] = {}
    for pid in out.stdout.split():
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
        bots = [argv[i + 1] for i, arg in enumerate(argv[:-1]) if arg == "--bot"]
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                hosts[",".join(bots) if bots else "fleet"] = int(line.split()[1]) / 1024
    return dict(sorted(hosts.items(), key=lambda item: -len(item[0])))


def main() -> None:
    from oshal import logs

    logs.configure("warning")
    peers = measure_peers() if os.environ.get("BENCH_PEERS", "1") != "0" else {}  # before the platform starts
    external_url, external_home = os.environ.get("BENCH_URL"), os.environ.get("BENCH_HOME")
    scratch = None
    proc = None
    if external_url and external_home:
        url, home = external_url, Path(external_home)
    else:
        scratch = tempfile.TemporaryDirectory(prefix="oshal-bench-")
        home, port = Path(scratch.name), free_port()
        log(f"starting the platform under {home} on port {port} ...")
        proc = start_platform(home, port)
        url = f"http://127.0.0.1:{port}"
    admin_key = (home / "admin.key").read_text().strip()
    try:
        hosts = node_rss_mb(proc.pid) if proc else {}
        rss = sum(hosts.values()) if hosts else float("nan")
        key = bench_tenant(url, admin_key)
        log(f"throughput: {N} tickets, batches of {BATCH}, {CLIENTS} concurrent clients ...")
        before = Reading.now(proc.pid) if proc else None
        tp = asyncio.run(throughput(url, key))
        log(f"  {tp['tickets_per_s']:,.0f} tickets/s sustained (all done, results + ledger committed)")
        cpu = before.per_ticket(Reading.now(proc.pid), N) if before and proc else {}
        if cpu:
            log(f"  {describe(cpu)}")
        log(f"round trip over HTTP, {ROUNDTRIPS} sequential tickets ...")
        http_ms = roundtrip_http(url, key)
        log(f"  p50 {statistics.median(http_ms):.2f} ms, p99 {percentile(http_ms, 0.99):.2f} ms")
        log(f"round trip through the service layer, {ROUNDTRIPS} sequential tickets ...")
        svc_ms = asyncio.run(roundtrip_service(home, key))
        log(f"  p50 {statistics.median(svc_ms):.2f} ms, p99 {percentile(svc_ms, 0.99):.2f} ms")
        hops: dict[str, float] = {}
        if HOPS:
            log(f"round trip hop by hop (bench/hops.py), {ROUNDTRIPS} sequential tickets ...")
            hops = asyncio.run(measure_hops(home, url, key, ROUNDTRIPS))
            report_hops(hops, statistics.median(http_ms), log)
        log(f"idle node hosts' RSS (demo fleet): {rss:.1f} MB in all")
        for n, (bots, mb) in enumerate(hosts.items()):
            log(f"  node host {n + 1}: {mb:.1f} MB ({bots if len(bots) < 60 else bots[:57] + '...'})")
        tools: dict[str, float] = {}
        if proc is not None and not CORE_ONLY:
            log(f"tool-call overhead, {TOOL_CALLS} sequential calls to a local API ...")
            tools = measure_tools(url, home, admin_key, TOOL_CALLS)
            log(f"  through the gateway p50 {tools['tool_call_p50_ms']:.2f} ms; remote alone p50 "
                f"{tools['remote_p50_ms']:.2f} ms; overhead p50 {tools['tool_call_overhead_p50_ms']:.2f} ms, "
                f"p99 {tools['tool_call_overhead_p99_ms']:.2f} ms")
        spend: dict[str, float] = {}
        if proc is not None and not CORE_ONLY:
            log(f"budgets: {TOOL_CALLS} model-call reservations under budgets at every level, then settlements ...")
            spend = measure_budgets(url, home, admin_key, TOOL_CALLS)
            log(f"  reserve (bot -> gateway -> one statement) p50 {spend['reserve_p50_ms']:.2f} ms, p99 "
                f"{spend['reserve_p99_ms']:.2f} ms; settle (in the collector's statement) p50 "
                f"{spend['settle_p50_ms']:.2f} ms vs {spend['record_unbudgeted_p50_ms']:.2f} ms unbudgeted "
                f"(+{spend['settle_overhead_p50_ms']:.2f} ms)")
            owner = bench_tenant(url, admin_key, role="operator", label="bench-budgets")
            with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {owner}"}, timeout=30) as http:
                set_budgets(http, ["echo"])
            with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {admin_key}"}, timeout=30) as http:
                price_every_call(http)
            log(f"throughput with budgets at every level (every call priced): {N} tickets ...")
            budgeted = asyncio.run(throughput(url, owner))
            # A-B-A: the platform is slower later in the run (a bigger database, autovacuum), so the budgeted run
            # is compared with the mean of an unbudgeted run before it and one after it.
            log(f"  {budgeted['tickets_per_s']:,.0f} tickets/s; again without budgets, in a fresh tenant ...")
            after = asyncio.run(throughput(url, bench_tenant(url, admin_key, label="bench-after")))
            baseline = (tp["tickets_per_s"] + after["tickets_per_s"]) / 2
            spend["tickets_per_s_budgeted"] = budgeted["tickets_per_s"]
            spend["tickets_per_s_unbudgeted_after"] = after["tickets_per_s"]
            spend["budget_throughput_cost_pct"] = 100 * (1 - budgeted["tickets_per_s"] / baseline)
            log(f"  {after['tickets_per_s']:,.0f} tickets/s; budgets cost {spend['budget_throughput_cost_pct']:+.1f}% "
                f"of the mean unbudgeted throughput ({baseline:,.0f}/s)")
        wf: dict[str, float] = {}
        if not CORE_ONLY:
            log(f"workflows: {WORKFLOW_ROUNDS} five-step runs one at a time, then {WORKFLOWS} at once ...")
            wf = measure_workflows(url, admin_key, WORKFLOWS, WORKFLOW_ROUNDS)
            log(f"  one at a time: a run p50 {wf['workflow_5step_latency_p50_ms']:.1f} ms; engine time per step "
                f"p50 {wf['engine_step_idle_p50_ms']:.2f} ms, p99 {wf['engine_step_idle_p99_ms']:.2f} ms")
            log(f"  at once: {wf['workflows_5step_per_s']:,.1f} workflows/s ({wf['workflow_steps_per_s']:,.0f} "
                f"steps/s); engine time per step p50 {wf['engine_step_loaded_p50_ms']:.2f} ms, "
                f"p99 {wf['engine_step_loaded_p99_ms']:.2f} ms")
        console: dict[str, float] = {}
        # it loads its tickets straight into the database: only into a platform of its own
        if proc is not None and not CORE_ONLY:
            log(f"console overview: {CONSOLE_TICKETS:,} tickets in a new tenant and as many in the system tenant, "
                f"then {CONSOLE_REQUESTS} sequential GET / as each one's operator ...")
            console = measure_console(url, home, admin_key, CONSOLE_TICKETS, CONSOLE_REQUESTS)
        ours = {"tickets_per_s": tp["tickets_per_s"], "roundtrip_http_p50_ms": statistics.median(http_ms),
                "roundtrip_client_p50_ms": statistics.median(svc_ms)}
        versus = ratios(ours, peers) if peers else {}
        if versus:
            log(f"against the peers (same run): throughput {versus['throughput_vs_dramatiq']:.2f}x dramatiq's "
                f"({ours['tickets_per_s']:,.0f} vs {peers['dramatiq_tasks_per_s']:,.0f}/s); round trip p50 "
                f"{versus['roundtrip_http_vs_celery']:.2f}x celery's over HTTP, "
                f"{versus['roundtrip_inproc_vs_celery']:.2f}x in-process "
                f"({ours['roundtrip_http_p50_ms']:.2f} / {ours['roundtrip_client_p50_ms']:.2f} vs "
                f"{peers['celery_roundtrip_p50_ms']:.2f} ms; arq {peers['arq_roundtrip_p50_ms']:.2f} ms)")
        print(json.dumps({
            "tickets": N, "tickets_per_s": round(tp["tickets_per_s"], 1),
            "accept_per_s": round(tp["accept_per_s"], 1),
            **{f"throughput_{k}": round(v, 4) for k, v in cpu.items()},
            "roundtrip_http_p50_ms": round(statistics.median(http_ms), 3),
            "roundtrip_http_p99_ms": round(percentile(http_ms, 0.99), 3),
            "roundtrip_client_p50_ms": round(statistics.median(svc_ms), 3),
            "roundtrip_client_p99_ms": round(percentile(svc_ms, 0.99), 3),
            **{k: round(v, 3) for k, v in peers.items()},
            **{k: round(v, 3) for k, v in hops.items()},
            **{k: round(v, 3) for k, v in versus.items()},
            "node_idle_rss_mb": round(rss, 1),
            **{f"node_host_{n + 1}_idle_rss_mb": round(mb, 1) for n, mb in enumerate(hosts.values())},
            **{k: round(v, 3) for k, v in tools.items()},
            **{k: round(v, 3) for k, v in spend.items()},
            **{k: round(v, 3) for k, v in wf.items()},
            **{k: round(v, 3) for k, v in console.items()},
        }))
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGINT)
            proc.wait(60)
        if scratch is not None:
            scratch.cleanup()


if __name__ == "__main__":
    main()
