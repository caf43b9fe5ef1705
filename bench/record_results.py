"""The collector's result commit alone: ``oshal_record_results`` through the store API on an embedded Postgres.

Each round creates ``--tickets`` dispatched tickets, then records one done result per ticket (an attempt row with
its output and one priced ledger row, under a tenant budget) in batches of ``--batch``, as the collector does for
one tenant. Prints the throughput in results per second and each batch's p50/p99 latency, per round and over all
rounds after the first (the warm-up, after which the tables are analyzed).

    .venv/bin/python bench/record_results.py [--rounds 6] [--tickets 1000] [--batch 100]
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
from oshal.store.results import AttemptRow, LedgerRow, record_results
from oshal.store.tickets import NewTicket, insert_dispatched
from tools import _pct  # bench/tools.py

_OUTPUT = json.dumps({"text": "a short answer of about the size a bot returns " * 2})


async def _round(db: Database, tenant: uuid.UUID, tickets: int, batch: int) -> list[float]:
    rows = [NewTicket(uuid.uuid4(), uuid.uuid4(), "echo", '{"text": "hi"}', None, None) for _ in range(tickets)]
    for start in range(0, tickets, 1000):
        await db.call(insert_dispatched(tenant, None, rows[start:start + 1000]))
    now = dt.datetime.now(dt.UTC)
    seconds: list[float] = []
    for start in range(0, tickets, batch):
        part = rows[start:start + batch]
        attempts = [AttemptRow(r.phase_id, 1, r.id, "done", _OUTPUT, None, "echo-0", 1, now, now) for r in part]
        ledger = [LedgerRow(f"call-{r.id}", r.id, r.phase_id, 1, "echo", "openai", "gpt-4o-mini", 1200, 300, 0, 0,
                            540, "estimated", computed_cost_micros=540) for r in part]
        t0 = time.perf_counter()
        finished = await db.call(record_results(tenant, attempts, ledger))
        seconds.append(time.perf_counter() - t0)
        assert len(finished) == len(part), f"{len(finished)} of {len(part)} tickets finished"
    return seconds


def _line(label: str, seconds: list[float], batch: int) -> str:
    rate = len(seconds) * batch / sum(seconds)
    return (f"{label}: {rate:8.0f} results/s   batch p50 {_pct(seconds, 0.5) * 1000:6.2f} ms   "
            f"p99 {_pct(seconds, 0.99) * 1000:6.2f} ms")


async def main(rounds: int, tickets: int, batch: int) -> None:
    with tempfile.TemporaryDirectory(prefix="oshal-bench-record-") as home:
        pg = EmbeddedPostgres(Path(home))
        pg.start()
        try:
            bootstrap_embedded(pg.url(), "owner-pw", "api-pw", "report-pw")
            owner_url = pg.url(OWNER_ROLE, "owner-pw", DATABASE)
            migrate(owner_url)
            db = Database(pg.url(API_ROLE, "api-pw", DATABASE))
            await db.open()
            try:
                tenant = uuid.uuid4()
                async with db.system() as conn:
                    await conn.execute("INSERT INTO tenants (id, name) VALUES (%s, 'bench')", (tenant,))
                async with db.tenant(tenant) as conn:
                    await conn.execute("INSERT INTO budgets (id, tenant_id, scope, period, limit_micros) "
                                       "VALUES (%s, %s, 'tenant', 'month', 1000000000000)", (uuid.uuid4(), tenant))
                measured: list[float] = []
                for n in range(rounds):
                    seconds = await _round(db, tenant, tickets, batch)
                    print(_line(f"round {n}{' (warm-up)' if n == 0 else ''}", seconds, batch), flush=True)
                    if n:
                        measured += seconds
                    else:  # as autovacuum would have by now: plans made on empty tables scan a tenant's tickets
                        with psycopg.connect(owner_url, autocommit=True) as conn:
                            conn.execute("ANALYZE")
                if measured:
                    print(_line("all rounds after the warm-up", measured, batch))
            finally:
                await db.close()
        finally:
            pg.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--tickets", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=100)
    args = parser.parse_args()
    asyncio.run(main(args.rounds, args.tickets, args.batch))
