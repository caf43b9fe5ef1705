"""Volume: throughput and the API's list, count and summary endpoints on a fresh database and on one with a million
done tickets, side by side.

Two platforms it starts itself (`oshal up` with the demo fleet in two scratch folders, as bench/run.py does), each
Postgres recording per-statement timings (pg_stat_statements, statements inside functions included):
  1. load: BENCH_VOLUME_TICKETS done tickets (default 1,000,000) straight into one tenant of the second platform as
     the schema's owner, with their phase, attempt and ledger row each (INSERT .. SELECT over generate_series, one
     transaction, spread over BENCH_VOLUME_DAYS days ending an hour ago, default 30), then VACUUM ANALYZE (as
     autovacuum would), then the daily roll-ups advanced a day per transaction as the sweeper's job does, up to
     BENCH_VOLUME_ROLLUP_LAG_DAYS (default 1) ago: the state just before the daily advance, with the most rows above
     the cut-off; then CHECKPOINT;
  2. throughput, alternately on the fresh and the full platform (fresh, full, then full, fresh, ...:
     BENCH_VOLUME_REPEATS pairs, default 2, each run in a new tenant after BENCH_VOLUME_SETTLE_S seconds of quiet,
     default 5), BENCH_VOLUME_RUN echo tickets (default 5,000) through the batch API, counted until every one is
     done; the statements that took the most time in the last pair, with their mean time and blocks per call on
     each side;
  3. reads: BENCH_VOLUME_REQUESTS sequential requests (default 200, after a warm-up) of each read below, as a member of
     the first fresh tenant (its 5,000 tickets) and of the tenant holding the million (and the console overview as
     its operator).
Reads: GET /v1/tickets?limit=50, /v1/tickets/counts, /v1/ledger/summary (by bot, all time and the last day),
and the console's overview (GET /). Prints the throughput ratio (target >= 0.9), each read's
p50/p99 (target p99 < 100 ms) and one JSON line at the end.
Run: ``flock /tmp/oshal-bench.lock .venv/bin/python bench/volume.py`` (or ``make bench-scale``).
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
SETTLE_S = float(os.environ.get("BENCH_VOLUME_SETTLE_S", "5"))
LAG_DAYS = float(os.environ.get("BENCH_VOLUME_ROLLUP_LAG_DAYS", "1"))
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


def load_average() -> str:
    return Path("/proc/loadavg").read_text().strip()


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


class Platform:
    """One `oshal up` in its own scratch folder, its Postgres recording per-statement timings (pg_stat_statements,
    statements inside functions too)."""

    def __init__(self, home: Path) -> None:
        from oshal.embedded import EmbeddedPostgres
        from oshal.store.migrate import DATABASE
        from run import free_port, start_platform  # bench/run.py

        postgres = EmbeddedPostgres(home)
        postgres._initdb()  # before `oshal up` does: the library must be loaded when the server starts
        with open(postgres.pgdata / "postgresql.auto.conf", "a") as conf:
            conf.write("shared_preload_libraries = 'pg_stat_statements'\npg_stat_statements.track = 'all'\n")
        self.home, port = home, free_port()
        self.proc = start_platform(home, port)
        self.url = f"http://127.0.0.1:{port}"
        self.admin_key = (home / "admin.key").read_text().strip()
        self.superuser_url = postgres.url(database=DATABASE)
        with psycopg.connect(self.superuser_url, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")

    @property
    def owner_url(self) -> str:
        from oshal.launcher.prepare import attach
        from oshal.settings import Settings

        return attach(Settings(home=self.home)).owner_url

    def superuser(self, statement: str) -> list[tuple[object, ...]]:
        with psycopg.connect(self.superuser_url, autocommit=True) as conn:
            cur = conn.execute(statement)
            return cur.fetchall() if cur.description else []

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(60)


def restart_rollups(owner_url: str) -> None:
    """Nothing rolled up: the cut-offs back to before the loaded history (the sweeper moved them to today when it
    started, over no tickets), as on a platform whose history grew day by day."""
    with psycopg.connect(owner_url) as conn, conn.transaction():
        rolled = conn.execute("SELECT (SELECT count(*) FROM ticket_counts_daily) + (SELECT count(*) FROM ledger_daily)"
                              ).fetchone()
        if rolled != (0,):
            raise SystemExit("the roll-ups are not empty before the load; start from a fresh platform")
        conn.execute("UPDATE rollup_cutoff SET tickets_before = '-infinity', ledger_before = '-infinity', "
                     "tickets_below = '00000000-0000-0000-0000-000000000000'")


def advance_rollups(owner_url: str, until: dt.datetime) -> tuple[int, str]:
    """What the sweeper's hourly job does (oshal.control.rollups): each roll-up's cut-off moved a day per
    transaction up to the last midnight before ``until``; returns the transactions and the cut-offs reached."""
    steps, reached = 0, []
    with psycopg.connect(owner_url, autocommit=True) as conn:
        for function in ("oshal_advance_ticket_counts", "oshal_advance_ledger_daily"):
            previous = None
            while True:
                row = conn.execute(f"SELECT {function}(%s, 1)::text", (until,)).fetchone()
                steps += 1
                if row is None or row[0] == previous:
                    break
                previous = row[0]
            reached.append(f"{function.removeprefix('oshal_advance_')} {previous}")
    return steps, "; ".join(reached)


_TOP_STATEMENTS = r"""
SELECT left(regexp_replace(query, '\s+', ' ', 'g'), 110) AS query, sum(calls)::bigint AS calls,
       sum(total_exec_time) AS total_ms, sum(shared_blks_hit + shared_blks_read)::bigint AS blocks
  FROM pg_stat_statements WHERE query NOT ILIKE '%%pg_stat_statements%%' GROUP BY 1
"""


Stats = dict[str, tuple[int, float, int]]


def statement_times(platform: Platform) -> Stats:
    """(calls, total ms, shared blocks touched) per statement since the last reset, statements inside functions
    included. Blocks per call do not depend on the machine's load: a statement that reads more of an index or table
    with a million rows shows there, whatever the noise in its time."""
    return {str(q): (int(c), float(t), int(b)) for q, c, t, b in platform.superuser(_TOP_STATEMENTS)}  # type: ignore[call-overload]


def compare_statements(fresh: Stats, full: Stats) -> None:
    """The statements of the ticket path that took the most time on either side, with their calls, mean time and
    blocks per call on each: the one that slows down with a million rows shows here."""
    log("  statements by time (the last pair's runs), fresh -> full: total ms, calls, mean ms and blocks per call")
    none = (0, 0.0, 0)
    ranked = sorted(set(fresh) | set(full), key=lambda q: -max(fresh.get(q, none)[1], full.get(q, none)[1]))
    for query in ranked[:14]:
        (fc, ft, fb), (uc, ut, ub) = fresh.get(query, none), full.get(query, none)
        mean = [f"{t / c:.3f}" if c else "-" for c, t in ((fc, ft), (uc, ut))]
        blocks = [f"{b / c:.1f}" if c else "-" for c, b in ((fc, fb), (uc, ub))]
        log(f"    {ft:6.0f} -> {ut:6.0f} ms  {fc:5d} -> {uc:5d} calls  {mean[0]:>8} -> {mean[1]:>8} ms  "
            f"{blocks[0]:>7} -> {blocks[1]:>7} blocks  {query}")


def throughput(platform: Platform, label: str) -> tuple[float, str, Stats]:
    """One throughput run in a new tenant, after SETTLE_S seconds of quiet (the other platform's after-work, such as
    autovacuum of the last run's rows, not in this one's time): seconds, the tenant's key, and the statements'
    times during it."""
    time.sleep(SETTLE_S)
    platform.superuser("SELECT pg_stat_statements_reset()")
    _, key = new_tenant(platform.url, platform.admin_key, label)
    seconds = asyncio.run(submit_burst(platform.url, key, RUN_BOTS, RUN))
    return seconds, key, statement_times(platform)


def load(platform: Platform) -> tuple[str, str, dict[str, float]]:
    """The million, rolled up as the sweeper would; returns the member and operator keys of its tenant."""
    owner_url = platform.owner_url
    name, member, operator = operator_of_new_tenant(platform.url, platform.admin_key, "volume")
    tenant, key_id = tenant_and_key_id(owner_url, name, member)
    restart_rollups(owner_url)
    t0 = time.perf_counter()
    counts = load_done_tickets(owner_url, tenant, key_id, LOADED)
    loaded_s = time.perf_counter() - t0
    vacuum_analyze(owner_url)
    vacuum_s = time.perf_counter() - t0 - loaded_s
    # The roll-ups as they stand just before the sweeper's daily advance (the most rows above the cut-off):
    # BENCH_VOLUME_ROLLUP_LAG_DAYS (default 1) behind now.
    t1 = time.perf_counter()
    steps, reached = advance_rollups(owner_url, dt.datetime.now(dt.UTC) - dt.timedelta(days=LAG_DAYS))
    rollup_s = time.perf_counter() - t1
    platform.superuser("CHECKPOINT")
    log("  loaded " + ", ".join(f"{n:,} {table}" for table, n in counts.items()) + f" in {loaded_s:.1f}s, "
        f"vacuumed and analyzed in {vacuum_s:.1f}s, rolled up in {rollup_s:.1f}s ({steps} transactions; "
        f"cut-offs: {reached}), checkpointed")
    return member, operator, {"volume_load_s": loaded_s, "volume_vacuum_s": vacuum_s, "volume_rollup_s": rollup_s}


def measure(fresh: Platform, full: Platform) -> dict[str, float]:
    """Throughput alternately on a fresh platform and on one holding the million (fresh, full, fresh, full, ...),
    so the machine's drift shows in the pairs; then the reads on each."""
    result: dict[str, float] = {"volume_tickets_loaded": LOADED, "volume_run_tickets": RUN}
    member, operator, timings = load(full)
    result |= timings
    fresh.superuser("CHECKPOINT")
    pairs, fresh_key = [], ""
    fresh_stats: Stats = {}
    full_stats: Stats = {}
    for i in range(REPEATS):
        # fresh, full, then full, fresh: a drift of the machine's speed, or the first run's after-work slowing the
        # second, falls on both sides alike over a pair of pairs
        if i % 2 == 0:
            fresh_s, key, fresh_stats = throughput(fresh, "volume-fresh")
            full_s, _, full_stats = throughput(full, "volume-full")
        else:
            full_s, _, full_stats = throughput(full, "volume-full")
            fresh_s, key, fresh_stats = throughput(fresh, "volume-fresh")
        fresh_key = fresh_key or key
        pairs.append((fresh_s, full_s))
        log(f"  pair {i + 1} ({'fresh first' if i % 2 == 0 else 'full first'}): fresh {RUN / fresh_s:,.0f} tickets/s, "
            f"full {RUN / full_s:,.0f} tickets/s: {fresh_s / full_s:.0%} (load {load_average().split()[0]})")
    ratios = sorted(f / u for f, u in pairs)
    best_fresh, best_full = min(f for f, _ in pairs), min(u for _, u in pairs)
    result |= {"fresh_tickets_per_s": RUN / best_fresh, "full_tickets_per_s": RUN / best_full,
               "throughput_ratio": best_fresh / best_full, "throughput_ratio_median_pair": statistics.median(ratios)}
    log(f"  best of {REPEATS}: fresh {RUN / best_fresh:,.0f}, full {RUN / best_full:,.0f} tickets/s = "
        f"{result['throughput_ratio']:.0%}; per pair {', '.join(f'{r:.0%}' for r in ratios)} (target >= 90%)")
    compare_statements(fresh_stats, full_stats)
    result |= summarize("fresh", time_reads(fresh.url, fresh_key, REQUESTS))
    result |= summarize("full", time_reads(full.url, member, REQUESTS))
    overview, shown = time_overview(full.url, operator, REQUESTS, max(5, REQUESTS // 10))
    result |= {"full_console_overview_p50_ms": statistics.median(overview),
               "full_console_overview_p99_ms": percentile(overview, 0.99)}
    log(f"  console overview as the operator of the full tenant ({shown:,} tickets in its last 24 h): "
        f"p50 {statistics.median(overview):.1f} ms, p99 {percentile(overview, 0.99):.1f} ms")
    return result


def main() -> None:
    from oshal import logs

    logs.configure("warning")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the platforms (below) when terminated too
    with (tempfile.TemporaryDirectory(prefix="oshal-bench-volume-fresh-") as fresh_home,
          tempfile.TemporaryDirectory(prefix="oshal-bench-volume-full-") as full_home):
        log(f"volume: starting two platforms, under {fresh_home} (stays fresh) and {full_home} (gets the million)")
        started: list[Platform] = []
        try:
            started.append(Platform(Path(fresh_home)))
            started.append(Platform(Path(full_home)))
            log(f"  load average {load_average()}")
            result = measure(*started)
            log(f"  load average {load_average()}")
            print(json.dumps({k: round(v, 3) for k, v in result.items()}))
        finally:
            for platform in started:
                platform.stop()


if __name__ == "__main__":
    main()
