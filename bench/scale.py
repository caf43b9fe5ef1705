"""Scale on one machine: the control plane, the engines and every bot as separate OS processes, at 6, 26 and 100 bots.

For each fleet size (BENCH_SCALE_BOTS, default "6,26,100"; a size may repeat, e.g. "6,100,6,100" to see the machine's
drift between alternated runs), in a scratch home of its own:
  * embedded Postgres and Redis start as their own server processes; the fleet (N echo bots, see scale_fleet.py) is
    registered, and each bot gets its own Redis ACL user and lane groups, exactly as `oshal up` / `oshal migrate` do
    (launcher.prepare);
  * `oshal serve` (API, collector, sweeper) runs as its own process, and every bot as its own `oshal node --bot X`
    process holding only that bot's Redis credentials; the first bot runs in two processes (two replicas, one lane).
    All are started at once, and the bench waits for every worker's heartbeat;
  * the machine settles: the bench waits until the machine's CPU busy share (all cores, /proc/stat) over a
    BENCH_SCALE_SETTLE_WINDOW_S window (default 2) is below BENCH_SCALE_SETTLE_BUSY (default 0.3), at most
    BENCH_SCALE_SETTLE_MAX_S (default 120) seconds, and prints what it waited; again right before the burst;
  * idle RSS of every bot process, and the CPU every part uses over BENCH_SCALE_IDLE_S idle seconds;
  * burst: BENCH_SCALE_TICKETS (default 10,000) echo tickets spread evenly over the lanes, submitted through the
    batch API by BENCH_SCALE_CLIENTS concurrent clients; sustained tickets/s until every one is done, latency
    (created -> finished, in the database), and the CPU seconds of Redis, Postgres (every backend), the control plane
    and the bot processes per 1,000 tickets (from /proc);
  * fairness: BENCH_SCALE_FAIR_S seconds of paced load (BENCH_SCALE_FAIR_LOAD of the burst's throughput, spread
    evenly), and as long with one lane flooded at BENCH_SCALE_FLOOD times the rate of every other lane, alternated in
    BENCH_SCALE_FAIR_ROUNDS rounds; the p99 of the other lanes (and of one watched lane) with and without the flood,
    and their ratio (target <= 2). The default base load is 20%: with one lane of 6 at 5x, the offered load is then a
    third of the burst's throughput, so the ratio shows what one busy lane costs the others; at 40% (session 22's
    default) the flood at 6 lanes offers two thirds of it, on the same 2 cores as this load generator, and the
    ratio measures a saturated machine instead (docs/scaling.md §2);
  * RSS of every bot process after all of that.
The last line is one JSON object with every number, by fleet size.
Run: ``.venv/bin/python bench/scale.py`` (or ``make bench-scale``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import psycopg
import redis as sync_redis

from proc_stats import busy_share, cpu_seconds, machine_jiffies, rss_mb, tree_cpu_seconds  # bench/proc_stats.py
from scale_fleet import Pacer, bot_names, spread, write_fleet  # bench/scale_fleet.py

REPO = Path(__file__).resolve().parents[1]
SIZES = [int(n) for n in os.environ.get("BENCH_SCALE_BOTS", "6,26,100").split(",") if n.strip()]
TICKETS = int(os.environ.get("BENCH_SCALE_TICKETS", "10000"))
BATCH = int(os.environ.get("BENCH_SCALE_BATCH", "500"))
CLIENTS = int(os.environ.get("BENCH_SCALE_CLIENTS", "4"))
FAIR_S = float(os.environ.get("BENCH_SCALE_FAIR_S", "12"))
FAIR_LOAD = float(os.environ.get("BENCH_SCALE_FAIR_LOAD", "0.2"))
FLOOD = float(os.environ.get("BENCH_SCALE_FLOOD", "5"))
FAIR_ROUNDS = int(os.environ.get("BENCH_SCALE_FAIR_ROUNDS", "3"))
START_TIMEOUT_S = float(os.environ.get("BENCH_SCALE_START_TIMEOUT_S", "600"))
IDLE_S = float(os.environ.get("BENCH_SCALE_IDLE_S", "10"))
SETTLE_BUSY = float(os.environ.get("BENCH_SCALE_SETTLE_BUSY", "0.3"))
SETTLE_WINDOW_S = float(os.environ.get("BENCH_SCALE_SETTLE_WINDOW_S", "2"))
SETTLE_MAX_S = float(os.environ.get("BENCH_SCALE_SETTLE_MAX_S", "120"))
TICK_S = 0.1


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@dataclass
class Platform:
    """One scale run's processes: the engines (in this process's hands), the control plane and the bot nodes."""

    home: Path
    url: str
    engines: Any
    control: subprocess.Popen[bytes]
    nodes: dict[str, list[subprocess.Popen[bytes]]] = field(default_factory=dict)

    @property
    def node_pids(self) -> list[int]:
        return [p.pid for procs in self.nodes.values() for p in procs]

    @property
    def postgres_pid(self) -> int:
        pid = self.engines.postgres.server_pid()
        if pid is None:
            raise SystemExit("the embedded Postgres server is not running")
        return int(pid)

    @property
    def redis_pid(self) -> int:
        pid = self.engines.redis.child.pid if self.engines.redis.child else None
        if pid is None:
            raise SystemExit("the embedded Redis server is not running")
        return int(pid)

    def cpu(self) -> dict[str, float]:
        return {"redis": cpu_seconds(self.redis_pid), "postgres": tree_cpu_seconds(self.postgres_pid),
                "control_plane": cpu_seconds(self.control.pid),
                "bots": sum(cpu_seconds(pid) for pid in self.node_pids)}

    def rss(self) -> list[float]:
        return [rss_mb(pid) for pid in self.node_pids]

    def stop(self) -> None:
        for proc in [p for procs in self.nodes.values() for p in procs]:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in [p for procs in self.nodes.values() for p in procs]:
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
        if self.control.poll() is None:
            self.control.send_signal(signal.SIGTERM)
            try:
                self.control.wait(60)
            except subprocess.TimeoutExpired:
                self.control.kill()
        self.engines.stop()


def start_platform(scratch: Path, bots: list[str], port: int) -> Platform:
    """Engines and fleet as `oshal up` prepares them, then the control plane and one process per bot (two for the
    first bot), all started at once; returns when every worker's heartbeat is in Redis."""
    from oshal.launcher.prepare import prepare
    from oshal.launcher.supervisor import child_env
    from oshal.settings import Settings

    home = scratch / "home"
    settings = Settings(home=home, fleet_dir=scratch / "fleet", api_port=port, log_level="warning",
                        drain_timeout_s=5, connectors_dir=REPO / "connectors", workflows_dir=REPO / "workflows")
    t0 = time.perf_counter()
    engines = prepare(settings)
    log(f"  engines up, {len(bots)} bots registered with their own Redis users in {time.perf_counter() - t0:.1f}s")
    url = f"http://127.0.0.1:{port}"
    logs = scratch / "logs"
    logs.mkdir()
    base = child_env(settings, engines)
    control_env = {**base, "OSHAL_API_DATABASE_URL": engines.api_url, "OSHAL_REDIS_URL": engines.redis_url,
                   "OSHAL_DISPATCH_KEY": engines.dispatch_key.decode()}
    python = sys.executable
    with (logs / "control.log").open("wb") as out:
        control = subprocess.Popen([python, "-m", "oshal.cli.main", "serve", "--port", str(port)], env=control_env,
                                   stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
    platform = Platform(home, url, engines, control)
    try:
        # Each node holds its own bot's Redis URL only: no OSHAL_HOME secrets, no database, no admin Redis login.
        credentials: dict[str, str] = json.loads((home / "run" / "bot-credentials.json").read_text())
        node_base = {k: v for k, v in base.items() if k not in ("OSHAL_HOME",)}
        t0 = time.perf_counter()
        for i, bot in enumerate(bots):
            env = {**node_base, "OSHAL_REDIS_URL": credentials[bot], "OSHAL_HOME": str(scratch / "node-home")}
            copies = 2 if i == 0 else 1
            for copy in range(copies):
                with (logs / f"{bot}-{copy}.log").open("wb") as out:
                    platform.nodes.setdefault(bot, []).append(subprocess.Popen(
                        [python, "-m", "oshal.cli.main", "node", "--bot", bot, "--replicas", "1"],
                        env=env, stdout=out, stderr=subprocess.STDOUT, cwd=REPO))
        wait_ready(platform, engines.redis_url, logs)
        log(f"  {len(platform.node_pids)} bot processes started and heartbeating in {time.perf_counter() - t0:.1f}s")
    except BaseException:
        platform.stop()
        raise
    return platform


def wait_ready(platform: Platform, admin_redis_url: str, logs: Path) -> None:
    """Until the API answers /readyz and every bot has as many live workers (heartbeat keys) as processes."""
    from oshal.mesh.redis_keys import PREFIX

    want = {bot: len(procs) for bot, procs in platform.nodes.items()}
    client = sync_redis.Redis.from_url(admin_redis_url)
    deadline = time.monotonic() + START_TIMEOUT_S
    try:
        while time.monotonic() < deadline:
            dead = [(bot, p) for bot, procs in platform.nodes.items() for p in procs if p.poll() is not None]
            if platform.control.poll() is not None or dead:
                who = "the control plane" if platform.control.poll() is not None else f"bot {dead[0][0]}'s node"
                raise SystemExit(f"{who} exited during start-up; see the logs under {logs}")
            seen: dict[str, int] = {}
            for key in client.scan_iter(match=f"{PREFIX}:hb:*", count=1000):
                bot = key.decode().split(":")[2]
                seen[bot] = seen.get(bot, 0) + 1
            if all(seen.get(bot, 0) >= n for bot, n in want.items()) and ready(platform.url):
                return
            time.sleep(0.5)
    finally:
        client.close()
    raise SystemExit(f"not every bot process heartbeated within {START_TIMEOUT_S:.0f}s (BENCH_SCALE_START_TIMEOUT_S)")


def wait_settled(what: str) -> dict[str, float]:
    """Until the machine's CPU busy share over one window is below SETTLE_BUSY, or SETTLE_MAX_S have passed: a burst
    that starts while 100 processes are still importing measures their start-up, not the lanes. Says what it waited."""
    started = time.monotonic()
    while True:
        before = machine_jiffies()
        time.sleep(SETTLE_WINDOW_S)
        share = busy_share(before, machine_jiffies())
        waited = time.monotonic() - started
        if share < SETTLE_BUSY or waited + SETTLE_WINDOW_S > SETTLE_MAX_S:
            break
    settled = share < SETTLE_BUSY
    log(f"  {what}: waited {waited:.1f}s for the machine to settle; CPU busy {share:.0%} of {os.cpu_count()} cores "
        f"over the last {SETTLE_WINDOW_S:g}s ({'below' if settled else 'NOT below, gave up at'} "
        f"{SETTLE_BUSY:.0%}{'' if settled else f' after {SETTLE_MAX_S:.0f}s'}), load average (1 min) "
        f"{os.getloadavg()[0]:.1f}")
    return {"waited_s": waited, "busy_share": share, "settled": float(settled), "load_1m": os.getloadavg()[0]}


def ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def new_tenant(url: str, admin_key: str, label: str) -> tuple[UUID, str]:
    """A fresh tenant and a member key of it: (tenant id, key)."""
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {admin_key}"}, timeout=30) as admin:
        name = f"{label}-{time.time_ns()}"
        created = admin.post("/v1/tenants", json={"name": name})
        created.raise_for_status()
        key = admin.post("/v1/keys", json={"tenant": name, "role": "member", "name": label})
        key.raise_for_status()
        return UUID(str(created.json()["id"])), str(key.json()["key"])


async def submit_burst(url: str, key: str, bots: list[str], tickets: int = TICKETS) -> float:
    """``tickets`` tickets spread evenly over ``bots`` through the batch API (a fresh tenant's key); seconds until
    every one is done."""
    plan = spread(bots, tickets)
    batches = [[{"bot": bot, "input": {"n": i, "payload": "x" * 32}} for i, bot in enumerate(plan[s:s + BATCH], s)]
               for s in range(0, tickets, BATCH)]
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=120,
                                 limits=httpx.Limits(max_connections=CLIENTS * 2)) as http:
        queue: asyncio.Queue[list[dict[str, Any]]] = asyncio.Queue()
        for batch in batches:
            queue.put_nowait(batch)

        async def client() -> None:
            while not queue.empty():
                (await http.post("/v1/tickets/batch", json={"tickets": queue.get_nowait()})).raise_for_status()

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(CLIENTS)))
        await wait_finished(http, tickets)
        return time.perf_counter() - started


async def wait_finished(http: httpx.AsyncClient, n: int, timeout_s: float = 600) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        counts = (await http.get("/v1/tickets/counts")).json()
        finished = counts["done"] + counts["failed"] + counts["dead_letter"]
        if finished >= n:
            if counts["done"] != n:
                raise SystemExit(f"expected {n} done tickets, got {counts}")
            return
        await asyncio.sleep(0.05)
    raise SystemExit(f"{n} tickets not finished within {timeout_s:.0f}s")


async def paced(url: str, key: str, bots: list[str], rate: float, seconds: float,
                rates: dict[str, float] | None = None, earlier: int = 0) -> int:
    """Offer ``rate`` tickets/s per lane (``rates`` per bot where given) for ``seconds``, one batch per tick; waits
    until every ticket is done (the tenant's ``earlier`` ones too) and returns how many were sent."""
    pacer = Pacer(bots, rate, TICK_S, rates)
    sent = 0
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as http:
        start = time.perf_counter()
        pending: set[asyncio.Task[httpx.Response]] = set()
        for tick in range(round(seconds / TICK_S)):
            await asyncio.sleep(max(0.0, start + tick * TICK_S - time.perf_counter()))
            batch = pacer.tick()
            if batch:  # sent without waiting for the answer, so a slow answer does not slow the pace
                tickets = [{"bot": bot, "input": {"n": sent + i}} for i, bot in enumerate(batch)]
                pending.add(asyncio.create_task(http.post("/v1/tickets/batch", json={"tickets": tickets})))
                sent += len(batch)
        for response in await asyncio.gather(*pending):
            response.raise_for_status()
        await wait_finished(http, earlier + sent)
    return sent


def latencies(owner_url: str, tenant: UUID) -> dict[str, list[float]]:
    """Milliseconds from created to finished of each of the tenant's done tickets, by bot (the database's clocks)."""
    by_bot: dict[str, list[float]] = {}
    with psycopg.connect(owner_url) as conn, conn.transaction():
        conn.execute("SELECT set_config('oshal.tenant_id', %s, true)", (str(tenant),))
        rows = conn.execute("SELECT bot, extract(epoch FROM finished_at - created_at) * 1000 FROM tickets "
                            "WHERE tenant_id = %s AND status = 'done'", (tenant,)).fetchall()
    for bot, ms in rows:
        by_bot.setdefault(bot, []).append(float(ms))
    return by_bot


def pooled(by_bot: dict[str, list[float]], leave_out: str | None = None) -> list[float]:
    return [ms for bot, values in by_bot.items() if bot != leave_out for ms in values]


def run_size(n: int) -> dict[str, float]:
    from run import free_port  # bench/run.py

    bots = bot_names(n)
    flooded, watched = bots[-1], bots[-2]
    with tempfile.TemporaryDirectory(prefix=f"oshal-scale-{n}-") as scratch_dir:
        scratch = Path(scratch_dir)
        write_fleet(scratch / "fleet", n)
        log(f"{n} bots: {n + 1} bot processes ({bots[0]} twice), the control plane, Postgres and Redis ...")
        platform = start_platform(scratch, bots, free_port())
        try:
            admin_key = (platform.home / "admin.key").read_text().strip()
            time.sleep(3)  # the bots' first heartbeats, the control plane's caches
            idle_settle = wait_settled("before the idle measurement")
            idle = platform.rss()
            log(f"  idle RSS per bot process: median {statistics.median(idle):.1f} MB, max {max(idle):.1f} MB")
            quiet = platform.cpu()
            time.sleep(IDLE_S)
            idle_cpu = {k: 100 * (v - quiet[k]) / IDLE_S for k, v in platform.cpu().items()}
            log(f"  idle CPU over {IDLE_S:.0f}s, % of one core: "
                + ", ".join(f"{k} {v:.1f}" for k, v in idle_cpu.items()))
            tenant, key = new_tenant(platform.url, admin_key, "scale-burst")
            burst_settle = wait_settled("before the burst")
            before = platform.cpu()
            elapsed = asyncio.run(submit_burst(platform.url, key, bots))
            after = platform.cpu()
            rate = TICKETS / elapsed
            cpu_per_1k = {name: 1000 * (after[name] - before[name]) / TICKETS for name in before}
            burst = pooled(latencies(platform.engines.owner_url, tenant))
            log(f"  burst: {TICKETS} tickets over {n} lanes in {elapsed:.2f}s = {rate:,.0f} tickets/s; latency "
                f"(created -> finished, queueing included) p50 {statistics.median(burst):.0f} ms, "
                f"p99 {percentile(burst, 0.99):.0f} ms")
            log("  CPU seconds per 1,000 tickets: " + ", ".join(f"{k} {v:.2f}" for k, v in cpu_per_1k.items()))
            lane_rate = FAIR_LOAD * rate / n
            log(f"  fairness: {FAIR_S:.0f}s at {lane_rate:.1f} tickets/s per lane ({FAIR_LOAD:.0%} of the burst's "
                f"throughput) and {FAIR_S:.0f}s with {flooded} at {FLOOD:g}x that, alternated in {FAIR_ROUNDS} "
                f"rounds ...")
            calm_tenant, calm_key = new_tenant(platform.url, admin_key, "scale-calm")
            flood_tenant, flood_key = new_tenant(platform.url, admin_key, "scale-flood")
            sent = {"calm": 0, "flood": 0}
            for _ in range(FAIR_ROUNDS):  # alternated, so that other load on the machine falls on both alike
                sent["calm"] += asyncio.run(paced(platform.url, calm_key, bots, lane_rate, FAIR_S / FAIR_ROUNDS,
                                                  earlier=sent["calm"]))
                sent["flood"] += asyncio.run(paced(platform.url, flood_key, bots, lane_rate, FAIR_S / FAIR_ROUNDS,
                                                   {flooded: FLOOD * lane_rate}, earlier=sent["flood"]))
            calm = latencies(platform.engines.owner_url, calm_tenant)
            flood = latencies(platform.engines.owner_url, flood_tenant)
            others_calm, others_flood = pooled(calm, flooded), pooled(flood, flooded)
            loaded = {"p50": statistics.median(others_calm), "p99": percentile(others_calm, 0.99)}
            ratio = percentile(others_flood, 0.99) / loaded["p99"]
            watched_ratio = percentile(flood[watched], 0.99) / percentile(calm[watched], 0.99)
            log(f"  paced load, no flood: p50 {loaded['p50']:.1f} ms, p99 {loaded['p99']:.1f} ms over "
                f"{len(others_calm)} tickets; with the flood ({len(flood[flooded])} tickets on {flooded}): other "
                f"lanes' p99 {percentile(others_flood, 0.99):.1f} ms = {ratio:.2f}x; {watched} alone "
                f"{percentile(calm[watched], 0.99):.1f} -> {percentile(flood[watched], 0.99):.1f} ms = "
                f"{watched_ratio:.2f}x")
            busy = platform.rss()
            log(f"  RSS per bot process after the run: median {statistics.median(busy):.1f} MB, "
                f"max {max(busy):.1f} MB")
            return {"bots": n, "bot_processes": len(platform.node_pids), "tickets": TICKETS,
                    "machine_load_1m": burst_settle["load_1m"], "machine_load_1m_after": os.getloadavg()[0],
                    "settle_idle_wait_s": idle_settle["waited_s"], "settle_burst_wait_s": burst_settle["waited_s"],
                    "busy_share_before_burst": burst_settle["busy_share"], "settled": burst_settle["settled"],
                    "tickets_per_s": rate, "burst_p50_ms": statistics.median(burst),
                    "burst_p99_ms": percentile(burst, 0.99), "paced_lane_rate_per_s": lane_rate,
                    "paced_p50_ms": loaded["p50"], "paced_p99_ms": loaded["p99"],
                    "flood_others_p99_ms": percentile(others_flood, 0.99), "flood_p99_ratio": ratio,
                    "flood_watched_p99_ratio": watched_ratio,
                    **{f"cpu_s_per_1k_{k}": v for k, v in cpu_per_1k.items()},
                    **{f"idle_cpu_pct_{k}": v for k, v in idle_cpu.items()},
                    "idle_rss_mb_median": statistics.median(idle), "idle_rss_mb_max": max(idle),
                    "after_rss_mb_median": statistics.median(busy), "after_rss_mb_max": max(busy)}
        finally:
            with contextlib.suppress(Exception):
                platform.stop()


def main() -> None:
    from oshal import logs

    logs.configure("warning")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the processes (run_size's finally) when terminated
    os.chdir(REPO)
    results: dict[str, dict[str, float]] = {}
    rates: dict[int, list[float]] = {}
    for n in SIZES:  # a repeated size is keyed "100#2", "100#3", ...
        runs = rates.setdefault(n, [])
        result = {k: round(v, 3) for k, v in run_size(n).items()}
        runs.append(result["tickets_per_s"])
        results[str(n) if len(runs) == 1 else f"{n}#{len(runs)}"] = result
        log(f"  {n} bots: {result['tickets_per_s']:,.0f} tickets/s")
    sizes = sorted(rates)
    summary: dict[str, float] = {}
    if len(sizes) > 1:
        low, high = statistics.median(rates[sizes[0]]), statistics.median(rates[sizes[-1]])
        summary = {"lanes_low": sizes[0], "lanes_high": sizes[-1], "throughput_ratio": round(high / low, 3)}
        log(f"throughput with {sizes[-1]} lanes is {high / low:.0%} of that with {sizes[0]} (target >= 80%)"
            + (" (medians of the repeated runs)" if any(len(r) > 1 for r in rates.values()) else ""))
    print(json.dumps({"scale": results, "summary": summary}))


if __name__ == "__main__":
    main()
