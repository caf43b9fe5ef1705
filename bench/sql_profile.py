"""The round trip's two statements inside Postgres: the create (``oshal_create_tickets``) and the collector's result
commit (``record_results_unflushed``), statement by statement, nested ones included (pg_stat_statements with
track = all), on a scratch embedded Postgres.

Runs ``--singles`` one-at-a-time round trips (create one echo ticket, commit; record its done result with no calls
and read it back, as the collector does for a waiter), then ``--batches`` batches of ``--batch`` results created and
recorded together, and prints each part's statements by total time: calls, mean ms per call, blocks per call. The
per-batch times of the batches show whether consecutive batches slow down.

    .venv/bin/python bench/sql_profile.py [--singles 2000] [--batches 5] [--batch 500] [--calls] [--per-batch]
        [--vacuum] [--reads N] [--explain]   (see --help; compare two src/ trees with PYTHONPATH)
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import tempfile
import time
import uuid
from pathlib import Path

import psycopg

from oshal.embedded import EmbeddedPostgres
from oshal.store.db import Database
from oshal.store.migrate import API_ROLE, DATABASE, OWNER_ROLE, bootstrap_embedded, migrate
from oshal.store.results import AttemptRow, LedgerRow, record_results_unflushed
from oshal.store.tickets import NewTicket, insert_dispatched
from oshal.types import new_id

_OUTPUT = json.dumps({"text": "hi"})

_STATEMENTS = r"""
SELECT toplevel, left(regexp_replace(query, '\s+', ' ', 'g'), 120) AS query, calls, total_exec_time,
       shared_blks_hit + shared_blks_read AS blocks
  FROM pg_stat_statements WHERE query NOT ILIKE '%%pg_stat_statements%%' AND calls > 0
 ORDER BY total_exec_time DESC LIMIT %s
"""


def _print_statements(superuser: str, label: str, per: int, top: int) -> None:
    """Statements by total time; ``per`` is what one "unit" is (a round trip, a batch) for the per-unit column."""
    with psycopg.connect(superuser, autocommit=True) as conn:
        rows = conn.execute(_STATEMENTS, (top,)).fetchall()
        conn.execute("SELECT pg_stat_statements_reset()")
    print(f"--- {label}: total ms, calls, mean ms per call, ms per unit ({per} units), blocks per call")
    for toplevel, query, calls, total, blocks in rows:
        print(f"  {'T' if toplevel else ' '} {total:8.1f} {calls:7d} {total / calls:8.4f} {total / per:8.4f} "
              f"{blocks / calls:7.1f}  {query}")


async def _create(db: Database, tenant: uuid.UUID, n: int) -> list[NewTicket]:
    rows = [NewTicket(new_id(), new_id(), "echo", '{"text": "hi"}', None, None) for _ in range(n)]
    await db.call(insert_dispatched(tenant, None, rows))
    return rows


def _results(rows: list[NewTicket], calls: bool) -> tuple[list[AttemptRow], list[LedgerRow]]:
    now = dt.datetime.now(dt.UTC)
    attempts = [AttemptRow(r.phase_id, 1, r.id, "done", _OUTPUT, None, "echo-0", 1, now, now) for r in rows]
    ledger = [LedgerRow(f"call-{r.id}", r.id, r.phase_id, 1, "echo", "openai", "gpt-4o-mini", 1200, 300, 0, 0,
                        540, "estimated", computed_cost_micros=540) for r in rows] if calls else []
    return attempts, ledger


async def _explain(db: Database, superuser: str, home: Path, tenant: uuid.UUID, calls: bool) -> None:
    """Plans: one ticket's read back (generic, as oshal_ticket runs it after its fifth call), a ticket's finishing
    update (rolled back), the ticket tables' dead rows; then every nested statement of two round trips, with its
    plan and buffers, as auto_explain logs them."""
    ticket, = await _create(db, tenant, 1)
    statements = ("PREPARE one(uuid) AS SELECT * FROM ticket_view v WHERE v.id = $1",
                  f"EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) EXECUTE one('{ticket.id}')",
                  "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) UPDATE tickets SET status = 'done', result = '{}', "
                  f"finished_at = now() WHERE id = '{ticket.id}' AND status = 'in_progress' AND type IS NULL")
    async with db.tenant(tenant) as conn:
        await conn.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        for statement in statements:
            cur = await conn.execute(statement)
            if statement.startswith("EXPLAIN"):
                print("\n".join(str(next(iter(r.values()))) for r in await cur.fetchall()))
        raise psycopg.Rollback()
    with psycopg.connect(superuser, autocommit=True) as conn:
        print("table, pages, live, dead, updates, HOT updates")
        for row in conn.execute("SELECT relname, pg_relation_size(relid) / 8192, n_live_tup, n_dead_tup, n_tup_upd, "
                                "n_tup_hot_upd FROM pg_stat_user_tables WHERE relname IN "
                                "('tenants', 'tickets', 'phases', 'attempts') ORDER BY 1").fetchall():
            print(" ", row)
        conn.execute("ALTER SYSTEM SET auto_explain.log_min_duration = 0")
        conn.execute("ALTER SYSTEM SET log_min_messages = 'log'")
        conn.execute("SELECT pg_reload_conf()")
    time.sleep(0.5)
    log = home / "logs" / "postgres.log"
    start = log.stat().st_size
    for _ in range(2):
        rows = await _create(db, tenant, 1)
        await db.call(record_results_unflushed(tenant, *_results(rows, calls), [str(rows[0].id)]))
    with psycopg.connect(superuser, autocommit=True) as conn:
        conn.execute("ALTER SYSTEM RESET auto_explain.log_min_duration")
        conn.execute("ALTER SYSTEM RESET log_min_messages")
        conn.execute("SELECT pg_reload_conf()")
    with open(log) as text:
        text.seek(start)
        print(text.read())


async def main(singles: int, batches: int, batch: int, calls: bool, top: int, explain: bool,
               per_batch: bool, vacuum: bool, reads: int) -> None:
    with tempfile.TemporaryDirectory(prefix="oshal-bench-sqlprofile-") as home:
        pg = EmbeddedPostgres(Path(home))
        pg._initdb()  # the library must be loaded when the server starts
        with open(pg.pgdata / "postgresql.auto.conf", "a") as conf:
            conf.write("shared_preload_libraries = 'pg_stat_statements, auto_explain'\n"
                       "pg_stat_statements.track = 'all'\nauto_explain.log_nested_statements = on\n"
                       "auto_explain.log_analyze = on\nauto_explain.log_buffers = on\n"
                       "auto_explain.log_min_duration = -1\n")
        pg.start()
        try:
            bootstrap_embedded(pg.url(), "owner-pw", "api-pw", "report-pw")
            owner_url = pg.url(OWNER_ROLE, "owner-pw", DATABASE)
            superuser = pg.url(database=DATABASE)
            migrate(owner_url)
            with psycopg.connect(superuser, autocommit=True) as conn:
                conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            db = Database(pg.url(API_ROLE, "api-pw", DATABASE))
            await db.open()
            try:
                tenant = uuid.uuid4()
                async with db.system() as conn:
                    await conn.execute("INSERT INTO tenants (id, name) VALUES (%s, 'bench')", (tenant,))
                async with db.tenant(tenant) as conn:
                    await conn.execute("INSERT INTO budgets (id, tenant_id, scope, period, limit_micros) "
                                       "VALUES (%s, %s, 'tenant', 'month', 1000000000000)", (uuid.uuid4(), tenant))
                for warm in range(200):  # plans cached, then statistics as autovacuum would have them
                    rows = await _create(db, tenant, 1)
                    await db.call(record_results_unflushed(tenant, *_results(rows, calls), [str(rows[0].id)]))
                    if warm == 100:
                        with psycopg.connect(owner_url, autocommit=True) as conn:
                            conn.execute("ANALYZE")
                with psycopg.connect(superuser, autocommit=True) as conn:
                    conn.execute("SELECT pg_stat_statements_reset()")
                create_s, record_s = [], []
                for _ in range(singles):
                    t0 = time.perf_counter()
                    rows = await _create(db, tenant, 1)
                    t1 = time.perf_counter()
                    got = await db.call(record_results_unflushed(tenant, *_results(rows, calls), [str(rows[0].id)]))
                    record_s.append(time.perf_counter() - t1)
                    create_s.append(t1 - t0)
                    assert got[0]["finished_status"] == "done", got
                create_s.sort()
                record_s.sort()
                print(f"singles: create p50 {create_s[len(create_s) // 2] * 1000:.3f} ms, "
                      f"record p50 {record_s[len(record_s) // 2] * 1000:.3f} ms (client side)")
                _print_statements(superuser, f"{singles} one-at-a-time round trips", singles, top)
                if reads:  # the read back alone, as GET /v1/tickets/{id} makes it
                    for _ in range(reads):
                        await db.call(("SELECT * FROM oshal_ticket(%s, %s)", (tenant, rows[0].id)))
                    _print_statements(superuser, f"{reads} reads of one ticket", reads, 6)
                for n in range(batches):
                    rows = await _create(db, tenant, batch)
                    t0 = time.perf_counter()
                    got = await db.call(record_results_unflushed(tenant, *_results(rows, calls), []))
                    print(f"batch {n}: {batch} results in {(time.perf_counter() - t0) * 1000:.1f} ms")
                    assert sum(1 for r in got if r["finished_status"] == "done") == batch
                    if vacuum:  # as autovacuum would between batches: are the slower batches dead rows?
                        with psycopg.connect(owner_url, autocommit=True) as conn:
                            conn.execute("VACUUM tickets, phases, attempts, tenants")
                    if per_batch:
                        _print_statements(superuser, f"batch {n}", 1, 6)
                _print_statements(superuser, f"{batches} batches of {batch} (create + record)", batches, top)
                if explain:
                    await _explain(db, superuser, Path(home), tenant, calls)
            finally:
                await db.close()
        finally:
            pg.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--singles", type=int, default=2000)
    parser.add_argument("--batches", type=int, default=5)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--calls", action="store_true", help="each result carries one priced model call")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--per-batch", action="store_true", help="each batch's statements apart")
    parser.add_argument("--reads", type=int, default=0, help="then read one ticket back this many times")
    parser.add_argument("--vacuum", action="store_true", help="vacuum the ticket tables after each batch")
    parser.add_argument("--explain", action="store_true", help="print the plan of one ticket's read back")
    args = parser.parse_args()
    asyncio.run(main(args.singles, args.batches, args.batch, args.calls, args.top, args.explain,
                     args.per_batch, args.vacuum, args.reads))
