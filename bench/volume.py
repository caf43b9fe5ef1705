"""Volume: throughput and the API's list and summary endpoints on a fresh database, then with a million done tickets.

Against a platform it starts itself (`oshal up` with the demo fleet in a scratch folder, as bench/run.py does):
  1. fresh: BENCH_VOLUME_RUN echo tickets (default 5,000) through the batch API, counted until every one is done
     (the best of BENCH_VOLUME_REPEATS runs, default 2, each in a new tenant);
     then BENCH_VOLUME_REQUESTS sequential requests (default 200, after a warm-up) of each read below, as a member
     of a tenant holding only those tickets;
  2. BENCH_VOLUME_TICKETS done tickets (default 1,000,000) loaded straight into one tenant as the schema's owner,
     with their phase, attempt and ledger row each (INSERT .. SELECT over generate_series, one transaction, spread
     over BENCH_VOLUME_DAYS days, default 30), then VACUUM ANALYZE and CHECKPOINT, as autovacuum and the
     checkpointer do within minutes of a load;
  3. full: the same throughput run in a new tenant, and the same reads as a member (and the console overview as an
     operator) of the tenant holding the million.
Reads: GET /v1/tickets?limit=50, /v1/tickets/counts, /v1/ledger/summary (by bot, all time and the last day),
and the console's overview (GET /). Prints the throughput ratio (target >= 0.9), each read's
p50/p99 (target p99 < 100 ms) and one JSON line at the end.
Run: ``.venv/bin/python bench/volume.py`` (or ``make bench-scale``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from uuid import UUID

import httpx
import psycopg

from console_overview import (  # bench/console_overview.py
    _ATTEMPTS,
    _LEDGER,
    _PHASES,
    _TICKETS,
    tenant_and_key_id,
    time_overview,
    vacuum_analyze,
)
from scale import new_tenant, submit_burst  # bench/scale.py

RUN = int(os.environ.get("BENCH_VOLUME_RUN", "5000"))
LOADED = int(os.environ.get("BENCH_VOLUME_TICKETS", "1000000"))
DAYS = float(os.environ.get("BENCH_VOLUME_DAYS", "30"))
REQUESTS = int(os.environ.get("BENCH_VOLUME_REQUESTS", "200"))
REPEATS = int(os.environ.get("BENCH_VOLUME_REPEATS", "2"))
READ_BUDGET_S = float(os.environ.get("BENCH_VOLUME_READ_BUDGET_S", "30"))
BOTS = ["echo", "summarizer", "extractor", "triage", "support", "scorer", "reviewer"]  # the loaded tickets' bots
RUN_BOTS = ["echo"]  # the throughput runs' (as bench/run.py's): the others want inputs of their own

# Every ticket done, made evenly over the DAYS days that end an hour ago, each with one billed model call; the columns
# are those bench/console_overview.py's statements read (status 'done' everywhere, so none of them is left open for the
# sweeper to re-drive).
_PLAN = """
CREATE TEMP TABLE bench_plan ON COMMIT DROP AS
SELECT i, created, r,
       (lpad(to_hex(floor(extract(epoch FROM created) * 1000)::bigint), 12, '0') || '7'
        || substr(replace(gen_random_uuid()::text, '-', ''), 14))::uuid AS id,
       gen_random_uuid() AS phase_id, 'done'::text AS status,
       (%(bots)s::text[])[1 + floor(random() * cardinality(%(bots)s::text[]))::int] AS bot,
       created + make_interval(secs => 0.05 + random() * 20) AS finished, true AS billed,
       200 + floor(random() * 1800)::int AS input_tokens, 20 + floor(random() * 480)::int AS output_tokens
  FROM (SELECT i, now() - interval '1 hour' - %(spread)s * (1 - i::float8 / %(n)s) AS created, random() AS r
          FROM generate_series(1, %(n)s) AS i) AS g
"""


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def load_done_tickets(owner_url: str, tenant: UUID, created_by: UUID, n: int) -> dict[str, int]:
    """``n`` done tickets of ``tenant`` with a phase, an attempt and a ledger row each, in one transaction as the
    owner (the rows pass the tenant's RLS checks like the API's); returns the rows per table."""
    params = {"tenant": tenant, "key": created_by, "n": n, "bots": BOTS, "spread": dt.timedelta(days=DAYS)}
    counts = {}
    with psycopg.connect(owner_url) as conn, conn.transaction():
        conn.execute("SELECT set_config('oshal.tenant_id', %s, true), setseed(0.17)", (str(tenant),))
        conn.execute(_PLAN, params)
        for table, statement in (("tickets", _TICKETS), ("phases", _PHASES), ("attempts", _ATTEMPTS),
                                 ("ledger", _LEDGER)):
            counts[table] = conn.execute(statement, params).rowcount
    return counts


def checkpoint(home: Path) -> None:
    """Write out what the load dirtied now (as the embedded server's superuser), so that the checkpoint a gigabyte of
    WAL sets off does not run in the middle of the measurement."""
    from oshal.embedded import EmbeddedPostgres
    from oshal.store.migrate import DATABASE

    with psycopg.connect(EmbeddedPostgres(home).url(database=DATABASE), autocommit=True) as conn:
        conn.execute("CHECKPOINT")


def reads() -> dict[str, tuple[str, dict[str, str | int]]]:
    day_ago = (dt.datetime.now(dt.UTC) - dt.timedelta(days=1)).isoformat()
    return {"tickets_page": ("/v1/tickets", {"limit": 50}),
            "tickets_counts": ("/v1/tickets/counts", {}),
            "ledger_summary": ("/v1/ledger/summary", {"by": "bot"}),
            "ledger_summary_day": ("/v1/ledger/summary", {"by": "bot", "since": day_ago})}


def time_reads(url: str, key: str, requests: int) -> dict[str, list[float]]:
    """Round-trip ms of ``requests`` sequential GETs of each read, after a tenth as many untimed; a slow read stops
    after BENCH_VOLUME_READ_BUDGET_S seconds with the samples it has."""
    samples: dict[str, list[float]] = {}
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as http:
        for name, (path, params) in reads().items():
            samples[name] = []
            deadline = time.monotonic() + READ_BUDGET_S
            for i in range(requests + max(5, requests // 10)):
                if time.monotonic() > deadline and len(samples[name]) >= 10:
                    break
                t0 = time.perf_counter()
                response = http.get(path, params=params)
                elapsed = (time.perf_counter() - t0) * 1000
                if response.status_code != 200:
                    raise SystemExit(f"GET {path} answered {response.status_code}: {response.text[:300]}")
                if i >= max(5, requests // 10):
                    samples[name].append(elapsed)
    return samples


def summarize(label: str, samples: dict[str, list[float]]) -> dict[str, float]:
    log(f"  {label}: " + "; ".join(f"{name} p50 {statistics.median(s):.1f} / p99 {percentile(s, 0.99):.1f} ms "
                                   f"({len(s)} requests)" for name, s in samples.items()))
    return {f"{label}_{name}_{q}_ms": (statistics.median(s) if q == "p50" else percentile(s, 0.99))
            for name, s in samples.items() for q in ("p50", "p99")}


def best_run(url: str, admin_key: str, label: str) -> tuple[float, str]:
    """The shortest of REPEATS throughput runs, each in a new tenant (other load on a shared machine only ever slows
    a run down), and the key of the first run's tenant."""
    times, first_key = [], ""
    for _ in range(REPEATS):
        _, key = new_tenant(url, admin_key, label)
        first_key = first_key or key
        times.append(asyncio.run(submit_burst(url, key, RUN_BOTS, RUN)))
    return min(times), first_key


def operator_of_new_tenant(url: str, admin_key: str, label: str) -> tuple[str, str, str]:
    """(tenant name, member key, operator key) of a new tenant."""
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {admin_key}"}, timeout=30) as admin:
        name = f"{label}-{time.time_ns()}"
        admin.post("/v1/tenants", json={"name": name}).raise_for_status()
        keys = [admin.post("/v1/keys", json={"tenant": name, "role": role, "name": label}) for role in
                ("member", "operator")]
        for key in keys:
            key.raise_for_status()
        return name, str(keys[0].json()["key"]), str(keys[1].json()["key"])


def measure(url: str, home: Path, admin_key: str) -> dict[str, float]:
    from oshal.launcher.prepare import attach
    from oshal.settings import Settings

    owner_url = attach(Settings(home=home)).owner_url
    result: dict[str, float] = {"volume_tickets_loaded": LOADED, "volume_run_tickets": RUN}
    fresh_s, fresh_key = best_run(url, admin_key, "volume-fresh")
    log(f"  fresh database: {RUN} tickets in {fresh_s:.2f}s = {RUN / fresh_s:,.0f} tickets/s (best of {REPEATS})")
    result |= summarize("fresh", time_reads(url, fresh_key, REQUESTS))

    name, member, operator = operator_of_new_tenant(url, admin_key, "volume")
    tenant, key_id = tenant_and_key_id(owner_url, name, member)
    t0 = time.perf_counter()
    counts = load_done_tickets(owner_url, tenant, key_id, LOADED)
    loaded_s = time.perf_counter() - t0
    vacuum_analyze(owner_url)
    checkpoint(home)
    result["volume_load_s"], result["volume_vacuum_s"] = loaded_s, time.perf_counter() - t0 - loaded_s
    log("  loaded " + ", ".join(f"{n:,} {table}" for table, n in counts.items()) + f" in {loaded_s:.1f}s, "
        f"vacuumed, analyzed and checkpointed in {result['volume_vacuum_s']:.1f}s")

    full_s, _ = best_run(url, admin_key, "volume-full")
    result |= {"fresh_tickets_per_s": RUN / fresh_s, "full_tickets_per_s": RUN / full_s,
               "throughput_ratio": fresh_s / full_s}
    log(f"  with {LOADED:,} more: {RUN} tickets in {full_s:.2f}s = {RUN / full_s:,.0f} tickets/s, "
        f"{result['throughput_ratio']:.0%} of the fresh database's (target >= 90%; best of {REPEATS} each)")
    result |= summarize("full", time_reads(url, member, REQUESTS))
    overview, shown = time_overview(url, operator, REQUESTS, max(5, REQUESTS // 10))
    result |= {"full_console_overview_p50_ms": statistics.median(overview),
               "full_console_overview_p99_ms": percentile(overview, 0.99)}
    log(f"  console overview as the operator of the full tenant ({shown:,} tickets in its last 24 h): "
        f"p50 {statistics.median(overview):.1f} ms, p99 {percentile(overview, 0.99):.1f} ms")
    return result


def main() -> None:
    from oshal import logs
    from run import free_port, start_platform  # bench/run.py

    logs.configure("warning")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the platform (below) when terminated too
    with tempfile.TemporaryDirectory(prefix="oshal-bench-volume-") as scratch:
        home, port = Path(scratch), free_port()
        log(f"volume: starting the platform under {home} on port {port} ...")
        proc = start_platform(home, port)
        try:
            admin_key = (home / "admin.key").read_text().strip()
            result = measure(f"http://127.0.0.1:{port}", home, admin_key)
            print(json.dumps({k: round(v, 3) for k, v in result.items()}))
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(60)


if __name__ == "__main__":
    main()
