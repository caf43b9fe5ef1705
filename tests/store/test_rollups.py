"""The daily roll-ups behind ticket counts and ledger totals (issue 17, migration 023), on real Postgres as the API
role under RLS: every read equals a brute-force count or sum over the raw rows, before and after the cut-offs move,
across day boundaries, for windows that start or end inside a rolled day, after old tickets change status, for
rows dated before the cut-off, after the retention drops per-call rows, and per tenant."""

from __future__ import annotations

import datetime as dt
import random
import uuid
from typing import Any

import psycopg

from conftest import Core
from oshal.control import rollups
from oshal.control.bot_registry import BotRegistry
from oshal.control.budgets import BudgetService
from oshal.control.events import EventHub
from oshal.control.loops.sweeper import Sweeper
from oshal.control.ticket_actions import Lifecycle
from oshal.ledger import PriceTable, load_price_file
from oshal.mesh.dispatcher import Dispatcher
from oshal.security.killswitch import KillSwitches
from oshal.settings import Settings
from oshal.store import ledger as ledger_repo
from oshal.store import rollups as rollup_repo
from oshal.store import tickets as ticket_repo
from oshal.workflows.runner import WorkflowRunner

_STATUSES = ("done", "done", "done", "failed", "cancelled", "dead_letter", "in_progress", "paused")
_BOTS = ("echo", "scorer", "triage")
_SUMS = ("calls", "input_tokens", "output_tokens", "cached_read_tokens", "cache_write_tokens", "cost_micros")
_TICKET = "INSERT INTO tickets (id, tenant_id, bot, status, input) VALUES (%s, %s, %s, %s, '{}')"
_LEDGER = ("INSERT INTO ledger (call_id, tenant_id, ticket_id, phase_id, attempt, bot, provider, model, input_tokens, "
           "output_tokens, cached_read_tokens, cost_micros, computed_cost_micros, reported_cost_micros, price_source, "
           "created_at) VALUES (%s, %s, %s, %s, 1, %s, 'openai', %s, %s, %s, %s, %s, %s, %s, 'estimated', %s)")


def _id_at(at: dt.datetime, rng: random.Random) -> uuid.UUID:
    """A UUIDv7 of that instant (as oshal.types.new_id makes them)."""
    ms = int(at.timestamp() * 1000)
    return uuid.UUID(int=(ms << 80) | (0x7 << 76) | (rng.getrandbits(12) << 64) | (0b10 << 62) | rng.getrandbits(62))


def _moments(now: dt.datetime) -> list[dt.datetime]:
    """Instants over the last six days, crowded around each UTC midnight (either side of the boundary)."""
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    found = []
    for days in range(6, -1, -1):
        day = midnight - dt.timedelta(days=days)
        for offset in (dt.timedelta(minutes=-7), dt.timedelta(seconds=-1), dt.timedelta(0), dt.timedelta(seconds=1),
                       dt.timedelta(hours=5, minutes=13), dt.timedelta(hours=13, minutes=37)):
            if day + offset < now - dt.timedelta(minutes=5):
                found.append(day + offset)
    return found


def _load(core: Core, tenant: uuid.UUID, seed: int, scale: int) -> list[tuple[uuid.UUID, dt.datetime, str]]:
    """Tickets and ledger rows of ``tenant`` at every moment (``scale`` of each), written past RLS as an import
    would; returns the tickets (id, created, status)."""
    rng = random.Random(seed)
    made = []
    with core.superuser() as conn:
        for at in _moments(dt.datetime.now(dt.UTC)):
            for _ in range(scale):
                ticket, status = _id_at(at, rng), rng.choice(_STATUSES)
                conn.execute(_TICKET, (ticket, tenant, rng.choice(_BOTS), status))
                made.append((ticket, at, status))
                computed = rng.choice((None, rng.randrange(1, 900)))
                conn.execute(_LEDGER, (f"call-{uuid.uuid4()}", tenant, ticket, uuid.uuid4(), rng.choice(_BOTS),
                                       rng.choice(("gpt-4o", "gpt-4o-mini")), rng.randrange(10, 2000),
                                       rng.randrange(1, 300), rng.randrange(0, 50), rng.randrange(1, 1000),
                                       computed, rng.choice((None, rng.randrange(1, 900))), at))
    return made


def _brute_counts(core: Core, tenant: uuid.UUID) -> dict[str, int]:
    with core.superuser() as conn:
        rows = conn.execute("SELECT status, count(*) FROM tickets WHERE tenant_id = %s GROUP BY 1", (tenant,))
        return {str(status): int(n) for status, n in rows.fetchall()}


def _brute_summary(core: Core, tenant: uuid.UUID, since: dt.datetime | None) -> list[dict[str, Any]]:
    sums = ", ".join(f"sum({c})::bigint AS {c}" for c in _SUMS[1:])
    with core.superuser() as conn, conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        return cur.execute(
            f"SELECT bot AS key, count(*)::bigint AS calls, {sums} FROM ledger WHERE tenant_id = %s "
            "AND created_at >= coalesce(%s::timestamptz, '-infinity') GROUP BY 1 ORDER BY cost_micros DESC, key",
            (tenant, since)).fetchall()


def _brute_reconciliation(core: Core, tenant: uuid.UUID, since: dt.datetime,
                          until: dt.datetime) -> list[dict[str, Any]]:
    with core.superuser() as conn, conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        rows = cur.execute(
            "SELECT provider, model, count(*) FILTER (WHERE both_known)::bigint AS calls, "
            "coalesce(sum(computed_cost_micros) FILTER (WHERE both_known), 0)::bigint AS computed, "
            "coalesce(sum(reported_cost_micros) FILTER (WHERE both_known), 0)::bigint AS reported, "
            "count(*)::bigint AS all_calls FROM (SELECT *, computed_cost_micros IS NOT NULL "
            "AND reported_cost_micros IS NOT NULL AS both_known FROM ledger) l "
            "WHERE tenant_id = %s AND created_at >= %s AND created_at < %s GROUP BY 1, 2 ORDER BY 1, 2",
            (tenant, since, until)).fetchall()
    return [r for r in rows if r["calls"]]


def _windows() -> list[tuple[dt.datetime | None, dt.datetime | None]]:
    """(since, until) pairs: all time, from inside a day, from a midnight, inside one day, across several days."""
    now = dt.datetime.now(dt.UTC)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    inside = midnight - dt.timedelta(days=3) + dt.timedelta(hours=9, minutes=1)
    return [(None, None), (inside, None), (midnight - dt.timedelta(days=2), None),
            (now - dt.timedelta(days=1), None), (inside, inside + dt.timedelta(hours=6)),
            (inside, inside + dt.timedelta(days=2, hours=1)),
            (midnight - dt.timedelta(days=4), midnight - dt.timedelta(days=1)),
            (midnight - dt.timedelta(days=5, seconds=1), midnight - dt.timedelta(days=1, seconds=-1))]


async def _assert_reads_match_the_raw_rows(core: Core, tenants: list[uuid.UUID]) -> None:
    for tenant in tenants:
        async with core.db.tenant(tenant) as conn:
            assert await ticket_repo.counts(conn) == _brute_counts(core, tenant)
            for since, until in _windows():
                if until is None:
                    expected = _brute_summary(core, tenant, since)
                    assert await ledger_repo.summary(conn, "bot", since) == expected, since
                    if since is not None:
                        spend = await ledger_repo.spend_by_bot(conn, since)
                        assert spend == [{k: r[k] for k in ("key", "calls", "cost_micros")} for r in expected]
                else:
                    assert since is not None
                    assert (await ledger_repo.reconciliation(conn, since, until)
                            == _brute_reconciliation(core, tenant, since, until)), (since, until)


def _rolled(core: Core) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], tuple[Any, ...]]:
    with core.superuser() as conn:
        return (conn.execute("SELECT * FROM ticket_counts_daily ORDER BY 1, 2, 3").fetchall(),
                conn.execute("SELECT * FROM ledger_daily ORDER BY 1, 2, 3, 4, 5, 6").fetchall(),
                conn.execute("SELECT tickets_before, tickets_below, ledger_before FROM rollup_cutoff").fetchone() or ())


async def test_counts_and_totals_equal_the_raw_rows_before_and_after_the_cut_offs_move(core: Core) -> None:
    a, b = await core.new_tenant("rollup-a"), await core.new_tenant("rollup-b")
    made = _load(core, a, seed=1, scale=3)
    _load(core, b, seed=2, scale=1)
    assert _brute_counts(core, a) != _brute_counts(core, b)  # so a leak between them would show
    await _assert_reads_match_the_raw_rows(core, [a, b])

    now = dt.datetime.now(dt.UTC)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    partly = await rollups.advance(core.db, until=midnight - dt.timedelta(days=3, hours=-2))
    assert partly == {"ticket_counts": midnight - dt.timedelta(days=3), "ledger_daily": midnight - dt.timedelta(days=3)}
    await _assert_reads_match_the_raw_rows(core, [a, b])

    reached = await rollups.advance(core.db)
    latest = (now - dt.timedelta(hours=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    assert reached == {"ticket_counts": latest, "ledger_daily": latest}  # never within the last hour
    with core.superuser() as conn:
        rolled_tickets = conn.execute("SELECT sum(n) FROM ticket_counts_daily").fetchone()
        assert rolled_tickets is not None and rolled_tickets[0] > 0  # the reads above did use the roll-up
    await _assert_reads_match_the_raw_rows(core, [a, b])

    before = _rolled(core)
    assert await rollups.advance(core.db) == reached
    assert _rolled(core) == before  # a second run changes nothing

    # An operator retries an old failed ticket and cancels an old one still in progress: statuses change below the
    # cut-off, in the tenant's transaction as the API role.
    old = [(t, s) for t, at, s in made if at < latest - dt.timedelta(days=1)]
    failed = next(t for t, s in old if s == "failed")
    running = next(t for t, s in old if s == "in_progress")
    async with core.db.tenant(a) as conn:
        assert await ticket_repo.set_status(conn, failed, from_status="failed", to_status="in_progress", reason="retry")
        assert await ticket_repo.set_status(conn, running, from_status="in_progress", to_status="cancelled",
                                            reason="stop", finished=True)
    await _assert_reads_match_the_raw_rows(core, [a, b])
    async with core.db.tenant(a) as conn:
        assert await ticket_repo.set_status(conn, failed, from_status="in_progress", to_status="done", reason=None,
                                            finished=True)
    await _assert_reads_match_the_raw_rows(core, [a, b])

    # Rows dated before the cut-off that arrive after it moved (a restore): counted at once.
    _load(core, b, seed=3, scale=1)
    await _assert_reads_match_the_raw_rows(core, [a, b])


async def test_the_retention_keeps_every_total_once_the_days_are_rolled(core: Core) -> None:
    tenant = await core.new_tenant("rollup-retention")
    _load(core, tenant, seed=4, scale=2)
    await rollups.advance(core.db)
    expected = {since: _brute_summary(core, tenant, since) for since, until in _windows() if until is None}
    with core.superuser() as conn:
        dropped = conn.execute("SELECT oshal_rollup_ledger(now() - interval '3 days 7 hours')").fetchone()
        assert dropped is not None and dropped[0] > 0
    async with core.db.tenant(tenant) as conn:
        # all time and from a rolled midnight: unchanged; a window starting inside a dropped day has lost that part
        # of the day, as before the roll-ups
        assert await ledger_repo.summary(conn, "bot", None) == expected[None]
        midnight = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        since = midnight - dt.timedelta(days=2)
        assert await ledger_repo.summary(conn, "bot", since) == expected[since]


async def test_the_cut_offs_start_at_nothing_rolled_and_only_the_owner_moves_them(core: Core) -> None:
    async with core.db.system() as conn:
        assert (await rollup_repo.cutoffs(conn))["tickets_before"] is None
    api = psycopg.connect(core.engines.api_url, autocommit=True)
    with api:
        for statement in ("UPDATE rollup_cutoff SET ledger_before = now()",
                          "INSERT INTO ticket_counts_daily VALUES (gen_random_uuid(), current_date, 'done', 1)"):
            try:
                api.execute(statement)
            except psycopg.errors.InsufficientPrivilege:
                continue
            raise AssertionError(f"the API role may run: {statement}")


async def test_an_advance_waits_for_writers_and_gives_up_on_a_long_one_until_the_next_pass(core: Core) -> None:
    tenant = await core.new_tenant("rollup-lock")
    made = _load(core, tenant, seed=5, scale=1)
    old_failed = next(t for t, at, s in made if s == "failed" and at < dt.datetime.now(dt.UTC) - dt.timedelta(days=3))
    with core.superuser() as writer:
        writer.autocommit = False
        # a transaction that changed an old ticket and has not committed: the count of its day must wait for it
        writer.execute("UPDATE tickets SET status = 'in_progress', finished_at = NULL WHERE id = %s AND "
                       "status = 'failed'", (old_failed,))
        reached = await rollups.advance(core.db)
        assert reached["ticket_counts"] is None  # not granted its lock within lock_timeout: left for the next pass
        assert reached["ledger_daily"] is not None  # the ledger's writers were not held up
        writer.commit()
    reached = await rollups.advance(core.db)
    assert reached["ticket_counts"] == reached["ledger_daily"]
    await _assert_reads_match_the_raw_rows(core, [tenant])


async def test_the_sweepers_first_pass_advances_both_roll_ups(core: Core) -> None:
    tenant = await core.new_tenant("rollup-sweeper")
    _load(core, tenant, seed=6, scale=1)
    dispatcher = Dispatcher(core.db, core.redis, core.signer)
    runner = WorkflowRunner(core.db, dispatcher, BotRegistry(core.db).resolve, EventHub(core.redis).publish)
    prices = PriceTable(load_price_file())
    budgets = BudgetService(core.db, core.redis, lambda: prices, Lifecycle(core.db, runner), Settings(home=core.home))
    sweeper = Sweeper(core.db, core.redis, dispatcher, frozenset, runner=runner, kill=KillSwitches(core.db, dispatcher),
                      budgets=budgets, stale_after_s=30.0, interval_s=1.0)

    await sweeper.sweep()

    latest = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    async with core.db.system() as conn:
        reached = await rollup_repo.cutoffs(conn)
    assert (reached["tickets_before"], reached["ledger_before"]) == (latest, latest)
    await _assert_reads_match_the_raw_rows(core, [tenant])
