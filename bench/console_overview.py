"""The console's overview page (GET /) with BENCH_CONSOLE_TICKETS tickets (default 100,000) in the database.

Loads that many tickets into a fresh tenant and as many into the system tenant, straight into Postgres as the
owner role (one INSERT ... SELECT generate_series per table, each row as the platform writes it: a UUIDv7 id
made from its created_at, a phase, an attempt for each finished one, a ledger row for ~60% of the done and
failed ones), spread over the 22 hours before the load so every one of them is counted by the overview, then
VACUUM (ANALYZE)s the tables as autovacuum soon would. Mixed statuses: ~92.6% done, 5% failed, 1% dead_letter,
1% cancelled, 0.4% waiting at an approval gate, and the last five minutes' tickets in_progress (their phases
dispatched as of the load, so the sweeper leaves them alone for its stale_after_s, 120 s by default).

Then signs in through /login as a browser does (the login page's CSRF token, the session cookie) and times
BENCH_CONSOLE_REQUESTS sequential GET / after a warm-up: as the new tenant's operator, and as the platform
operator (whose overview adds the Security Center summary). The times are round trips over loopback with httpx
(the server sends no Server-Timing header), so they include the client's share of the work.
Also times the overview's database reads alone, as the API role in a tenant transaction, per query.

Run alone against a platform it starts itself: ``.venv/bin/python bench/console_overview.py``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import re
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import psycopg

from oshal.control.api_keys import parse_prefix
from oshal.launcher.prepare import attach
from oshal.settings import Settings
from oshal.types import first_id_at

BOTS = ["echo", "summarizer", "extractor", "triage", "support", "scorer", "reviewer"]
SPREAD = dt.timedelta(hours=22)  # the overview counts from the top of the hour 23 hours ago: all of these count
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')
_CREATED = re.compile(r'<span class="value">(\d+)</span><span class="label">tickets in the last 24 h</span>')

# The plan of every ticket: when it was made (oldest first, evenly over SPREAD), its UUIDv7 id (the 48-bit
# millisecond of created_at, version 7, then the random bits and RFC 4122 variant of a v4 uuid), what became of it,
# and its phase's id. Tickets of the last five minutes are still running.
_PLAN = """
CREATE TEMP TABLE bench_plan ON COMMIT DROP AS
SELECT i, created, r,
       (lpad(to_hex(floor(extract(epoch FROM created) * 1000)::bigint), 12, '0') || '7'
        || substr(replace(gen_random_uuid()::text, '-', ''), 14))::uuid AS id,
       gen_random_uuid() AS phase_id,
       CASE WHEN created > now() - interval '5 minutes' THEN 'in_progress'
            WHEN r < 0.004 THEN 'approval_required'
            WHEN r < 0.014 THEN 'dead_letter'
            WHEN r < 0.064 THEN 'failed'
            WHEN r < 0.074 THEN 'cancelled'
            ELSE 'done' END AS status,
       (%(bots)s::text[])[1 + floor(random() * cardinality(%(bots)s::text[]))::int] AS bot,
       created + make_interval(secs => 0.05 + random() * 20) AS finished,
       random() < 0.6 AS billed,
       200 + floor(random() * 1800)::int AS input_tokens, 20 + floor(random() * 480)::int AS output_tokens
  FROM (SELECT i, now() - %(spread)s * (1 - i::float8 / %(n)s) AS created, random() AS r
          FROM generate_series(1, %(n)s) AS i) AS g
"""
_TICKETS = """
INSERT INTO tickets (id, tenant_id, bot, status, input, result, error, created_by, created_at, finished_at,
                     status_reason)
SELECT id, %(tenant)s, bot, status, jsonb_build_object('text', 'bench ticket ' || i, 'n', i),
       CASE WHEN status = 'done' THEN jsonb_build_object('text', 'bench result ' || i) END,
       CASE WHEN status IN ('failed', 'dead_letter') THEN 'the model provider answered 503' END,
       %(key)s, created,
       CASE WHEN status IN ('done', 'failed', 'dead_letter', 'cancelled') THEN finished END,
       CASE status WHEN 'approval_required' THEN 'a tool call waits for an operator''s approval'
                   WHEN 'cancelled' THEN 'cancelled by an operator' END
  FROM bench_plan ORDER BY id
"""
_PHASES = """
INSERT INTO phases (id, tenant_id, ticket_id, seq, bot, status, attempt, dispatched_at, updated_at)
SELECT phase_id, %(tenant)s, id, 0, bot,
       CASE status WHEN 'in_progress' THEN 'dispatched' WHEN 'approval_required' THEN 'done' ELSE status END,
       1, created, CASE WHEN status = 'in_progress' THEN now() ELSE finished END
  FROM bench_plan ORDER BY id
"""
_ATTEMPTS = """
INSERT INTO attempts (phase_id, attempt, tenant_id, ticket_id, outcome, output, error, consumer, deliveries,
                      started_at, finished_at)
SELECT phase_id, 1, %(tenant)s, id, CASE WHEN status = 'approval_required' THEN 'done' ELSE status END,
       CASE WHEN status IN ('done', 'approval_required') THEN jsonb_build_object('text', 'bench result ' || i) END,
       CASE WHEN status IN ('failed', 'dead_letter') THEN 'the model provider answered 503' END,
       bot || '-0', 1, created, finished
  FROM bench_plan WHERE status IN ('done', 'failed', 'dead_letter', 'approval_required') ORDER BY id
"""
# gpt-4o-mini's list price: $0.15 per million input tokens, $0.60 per million output tokens.
_LEDGER = """
INSERT INTO ledger (call_id, tenant_id, ticket_id, phase_id, attempt, bot, provider, model, input_tokens,
                    output_tokens, cost_micros, computed_cost_micros, price_source, created_at)
SELECT 'bench:' || phase_id || ':1:0', %(tenant)s, id, phase_id, 1, bot, 'openai', 'gpt-4o-mini', input_tokens,
       output_tokens, ceil(input_tokens * 0.15 + output_tokens * 0.6)::bigint,
       ceil(input_tokens * 0.15 + output_tokens * 0.6)::bigint, 'estimated', finished
  FROM bench_plan WHERE status IN ('done', 'failed') AND billed
"""


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def load_tickets(owner_url: str, tenant: UUID, created_by: UUID, n: int) -> dict[str, int]:
    """``n`` tickets of ``tenant`` with their phases, attempts and ledger rows, in one transaction as the owner
    (inserts pass the tenant's RLS check like the API's); returns how many rows went into each table."""
    params = {"tenant": tenant, "key": created_by, "n": n, "bots": BOTS, "spread": SPREAD}
    counts = {}
    with psycopg.connect(owner_url) as conn, conn.transaction():
        conn.execute("SELECT set_config('oshal.tenant_id', %s, true), setseed(0.14)", (str(tenant),))
        conn.execute(_PLAN, params)
        for table, statement in (("tickets", _TICKETS), ("phases", _PHASES), ("attempts", _ATTEMPTS),
                                 ("ledger", _LEDGER)):
            counts[table] = conn.execute(statement, params).rowcount
    return counts


def vacuum_analyze(owner_url: str) -> None:
    """What autovacuum does within a minute of such a load (statistics, and the visibility map that index-only
    scans rely on), done now so that it does not run in the middle of the measurement."""
    with psycopg.connect(owner_url, autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE) tickets, phases, attempts, ledger")


def operator_key(url: str, admin_key: str) -> tuple[str, str]:
    """A fresh tenant and an operator key of it: (tenant name, key)."""
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {admin_key}"}, timeout=30) as admin:
        name = f"bench-console-{int(time.time())}"
        admin.post("/v1/tenants", json={"name": name}).raise_for_status()
        key = admin.post("/v1/keys", json={"tenant": name, "role": "operator", "name": "bench-console"})
        key.raise_for_status()
        return name, str(key.json()["key"])


def tenant_and_key_id(owner_url: str, tenant_name: str, key: str) -> tuple[UUID, UUID]:
    """The tenant's id and the id of ``key`` (found by its prefix; the owner may read every tenant's keys)."""
    with psycopg.connect(owner_url) as conn:
        row = conn.execute("SELECT t.id, k.id FROM tenants t JOIN api_keys k ON k.tenant_id = t.id "
                           "WHERE t.name = %s AND k.prefix = %s", (tenant_name, parse_prefix(key))).fetchone()
    if row is None:
        raise SystemExit(f"no key of tenant {tenant_name!r} matches the bench key")
    return row[0], row[1]


def signed_in(url: str, key: str) -> httpx.Client:
    """A browser-like session: the login page's CSRF token posted back with the key, the session cookie kept."""
    http = httpx.Client(base_url=url, follow_redirects=False, timeout=30)
    page = http.get("/login")
    page.raise_for_status()
    token = _CSRF.search(page.text)
    if token is None:
        raise SystemExit("the login page has no CSRF token")
    response = http.post("/login", data={"csrf": token[1], "key": key, "next": "/"})
    if response.status_code != 303 or "oshal_session" not in http.cookies:
        http.close()
        raise SystemExit(f"login failed with {response.status_code}: {response.text[:300]}")
    return http


def time_overview(url: str, key: str, requests: int, warmup: int) -> tuple[list[float], int]:
    """Round-trip times (ms) of ``requests`` sequential GET / after ``warmup`` untimed ones, and the ticket count the
    last page showed."""
    samples = []
    http = signed_in(url, key)
    try:
        for i in range(warmup + requests):
            t0 = time.perf_counter()
            response = http.get("/")
            elapsed = (time.perf_counter() - t0) * 1000
            if response.status_code != 200:
                raise SystemExit(f"GET / answered {response.status_code}: {response.text[:300]}")
            if i >= warmup:
                samples.append(elapsed)
    finally:
        http.close()
    shown = _CREATED.search(response.text)
    if shown is None:
        raise SystemExit("the overview shows no count of the last 24 hours' tickets")
    return samples, int(shown[1])


async def time_reads(api_url: str, redis_url: str, tenant: UUID, rounds: int) -> dict[str, list[float]]:
    """Each of the overview's tenant reads alone (ms), as the API role in the tenant's transaction, and the fleet's
    lane state read from Redis."""
    from oshal.mesh import lanes
    from oshal.mesh.redis import connect
    from oshal.store import access
    from oshal.store import connectors as connector_repo
    from oshal.store import ledger as ledger_repo
    from oshal.store import tickets as ticket_repo
    from oshal.store.db import Database

    now = dt.datetime.now(dt.UTC)
    day_start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    since = first_id_at(int((now - dt.timedelta(hours=23)).replace(minute=0, second=0).timestamp() * 1000))
    reads: dict[str, Any] = {
        "activity": lambda conn: ticket_repo.activity(conn, since),
        "awaiting_approval": lambda conn: ticket_repo.awaiting_approval(conn, 100),
        "tool_approvals": lambda conn: connector_repo.approvals(conn, "pending"),
        "spend_today": lambda conn: ledger_repo.spend_by_bot(conn, day_start),
    }
    samples: dict[str, list[float]] = {name: [] for name in [*reads, "fleet_lanes"]}
    db = Database(api_url, min_size=1, max_size=1, name="bench-console")
    await db.open()
    redis = connect(redis_url)
    try:
        async with db.system() as conn:
            bots = [str(row["name"]) for row in await access.bots(conn)]  # every registered bot, as the page shows
        for i in range(rounds + 5):
            for name, read in reads.items():
                async with db.tenant(tenant) as conn:
                    t0 = time.perf_counter()
                    await read(conn)
                    elapsed = (time.perf_counter() - t0) * 1000
                if i >= 5:
                    samples[name].append(elapsed)
            t0 = time.perf_counter()
            await lanes.fleet_stats(redis, bots)
            if i >= 5:
                samples["fleet_lanes"].append((time.perf_counter() - t0) * 1000)
    finally:
        await redis.aclose()
        await db.close()
    return samples


def measure(url: str, home: Path, admin_key: str, tickets: int, requests: int) -> dict[str, float]:
    engines = attach(Settings(home=home))
    tenant_name, key = operator_key(url, admin_key)
    tenant, key_id = tenant_and_key_id(engines.owner_url, tenant_name, key)
    system, admin_key_id = tenant_and_key_id(engines.owner_url, "system", admin_key)
    t0 = time.perf_counter()
    for who, (tid, kid) in (("the bench tenant", (tenant, key_id)), ("the system tenant", (system, admin_key_id))):
        counts = load_tickets(engines.owner_url, tid, kid, tickets)
        log(f"  {who}: " + ", ".join(f"{n:,} {table}" for table, n in counts.items()))
    vacuum_analyze(engines.owner_url)
    load_s = time.perf_counter() - t0
    log(f"  loaded, vacuumed and analyzed in {load_s:.1f}s")
    warmup = max(10, requests // 10)
    results: dict[str, float] = {"console_tickets_loaded": tickets, "console_load_s": load_s}
    for label, prefix, who_key in (("tenant operator", "overview", key), ("platform operator", "overview_platform",
                                                                          admin_key)):
        samples, shown = time_overview(url, who_key, requests, warmup)
        if shown < tickets:
            raise SystemExit(f"the {label}'s overview counts {shown} tickets in the last 24 h, expected {tickets}+")
        p50, p99 = statistics.median(samples), _pct(samples, 0.99)
        log(f"  GET / as the {label} ({shown:,} tickets in the last 24 h), {requests} sequential requests: "
            f"p50 {p50:.1f} ms, p99 {p99:.1f} ms, {1000 * len(samples) / sum(samples):,.1f} requests/s "
            f"(round trips over loopback with httpx; the server sends no Server-Timing)")
        results |= {f"{prefix}_p50_ms": p50, f"{prefix}_p99_ms": p99,
                    f"{prefix}_per_s": 1000 * len(samples) / sum(samples)}
    reads = asyncio.run(time_reads(engines.api_url, engines.redis_url, tenant, requests))
    log("  its reads alone (Postgres as the API role in a tenant transaction; Redis for the lanes), p50/p99: "
        + "; ".join(f"{name} {statistics.median(s):.2f}/{_pct(s, 0.99):.2f} ms" for name, s in reads.items()))
    results |= {f"overview_read_{name}_p50_ms": statistics.median(s) for name, s in reads.items()}
    return results


def main() -> None:
    from run import free_port, start_platform  # bench/run.py

    tickets = int(os.environ.get("BENCH_CONSOLE_TICKETS", "100000"))
    requests = int(os.environ.get("BENCH_CONSOLE_REQUESTS", "200"))
    external_url, external_home = os.environ.get("BENCH_URL"), os.environ.get("BENCH_HOME")
    with tempfile.TemporaryDirectory(prefix="oshal-bench-console-") as scratch:
        proc = None
        if external_url and external_home:
            url, home = external_url, Path(external_home)
        else:
            home, port = Path(scratch), free_port()
            log(f"starting the platform under {home} on port {port} ...")
            proc = start_platform(home, port)
            url = f"http://127.0.0.1:{port}"
        try:
            admin_key = (home / "admin.key").read_text().strip()
            log(f"console overview with {tickets:,} tickets per tenant ...")
            result = measure(url, home, admin_key, tickets, requests)
            print(json.dumps({k: round(v, 3) for k, v in result.items()}))
        finally:
            if proc is not None:
                proc.send_signal(signal.SIGINT)
                proc.wait(60)


if __name__ == "__main__":
    main()
