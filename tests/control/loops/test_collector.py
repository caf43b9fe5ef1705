"""The collector on real engines: a batch of results from an output stream becomes attempt, phase, ticket and
ledger rows in one pass; redelivered and duplicate results change nothing twice; results with a bad dispatch
signature are refused; what a dead collector read is claimed; a phase sent twice gets its done marker; a batch's
stream entries are acknowledged only once its commit is on disk."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from uuid import UUID

import psycopg
import pytest

from conftest import Core
from oshal.control.bot_registry import BotRegistry
from oshal.control.events import EventHub
from oshal.control.loops.collector import Collector
from oshal.control.tickets import TicketService
from oshal.ledger import PriceTable, load_price_file, price_call
from oshal.mesh.dispatcher import Dispatcher
from oshal.mesh.envelopes import CallUsage, Envelope, Result
from oshal.mesh.redis_keys import COLLECTOR_GROUP, EVENTS_CHANNEL, done_marker, out_stream
from oshal.mesh.results import ResultStreams
from oshal.mesh.signing import DispatchSigner
from oshal.store import tickets as tickets_repo
from oshal.store.db import Database
from oshal.store.migrate import API_ROLE
from oshal.workflows.runner import WorkflowRunner

PRICES = PriceTable(load_price_file())


def _collector(core: Core, events: EventHub | None = None) -> Collector:
    events = events or EventHub(core.redis)
    dispatcher = Dispatcher(core.db, core.redis, core.signer)
    runner = WorkflowRunner(core.db, dispatcher, BotRegistry(core.db).resolve, events.publish)
    return Collector(core.db, ResultStreams(core.redis, "collector-test"), core.signer, events, lambda: PRICES,
                     lambda: frozenset({"unit-a", "unit-b"}), batch=100, runner=runner, done_marker_ttl_s=600)


def _result(env: Envelope, outcome: str, output: Any = None, *, calls: tuple[CallUsage, ...] = (),
            deliveries: int = 1) -> Result:
    finished = time.time()
    return Result(env, outcome, output, None if outcome == "done" else "it broke", calls, finished - 0.01, finished,
                  "replica-1", deliveries)


async def _publish(core: Core, *results: Result, stream: str | None = None) -> None:
    """What a bot writes to its own output stream."""
    for result in results:
        await core.redis.xadd(stream or out_stream(result.envelope.bot), result.encode())  # type: ignore[arg-type]


def _counts(core: Core, ticket: UUID) -> tuple[int, int]:
    attempts = core.row("SELECT count(*) AS n FROM attempts WHERE ticket_id = %s", ticket)["n"]
    ledger = core.row("SELECT count(*) AS n FROM ledger WHERE ticket_id = %s", ticket)["n"]
    return int(attempts), int(ledger)


async def _stream_is_empty(core: Core, bot: str) -> bool:
    pending = await core.redis.xpending(out_stream(bot), COLLECTOR_GROUP)
    return int(await core.redis.xlen(out_stream(bot))) == 0 and int(pending["pending"]) == 0


async def _acknowledged(collector: Collector, core: Core, *bots: str, timeout_s: float = 30) -> bool:
    """Whether the collector acknowledged every entry of ``bots``' output streams once its commits reached the disk
    (it looks again on each pass; Postgres flushes asynchronous commits within a second)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if all([await _stream_is_empty(core, bot) for bot in bots]):
            return True
        assert await collector.step(block_ms=None) == 0  # nothing new: a pass that only acknowledges
        await asyncio.sleep(0.02)
    return False


@contextmanager
def wal_writer_paused(core: Core) -> Iterator[None]:
    """Postgres' WAL writer stopped (SIGSTOP): an asynchronous commit stays off the disk until something flushes
    the WAL (a commit that waits, a checkpoint)."""
    assert core.engines.postgres is not None
    postmaster = core.engines.postgres.server_pid()
    children = subprocess.run(["pgrep", "-P", str(postmaster), "-f", "walwriter"], capture_output=True, text=True)
    [writer] = [int(pid) for pid in children.stdout.split()]
    os.kill(writer, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(writer, signal.SIGCONT)


async def test_a_batch_of_results_becomes_attempts_phases_tickets_and_priced_ledger_rows(core: Core) -> None:
    events = EventHub(core.redis)
    collector = _collector(core, events)
    dispatcher = Dispatcher(core.db, core.redis, core.signer)
    tenant = await core.new_tenant("collect-batch")
    done_a, done_b, failed = await core.dispatched(tenant, "unit-a", [{"text": "a"}, {"text": "b"}, {"text": "c"}])
    envs = [dispatcher.envelope(tenant, t, p, "unit-a", None) for t, p in (done_a, done_b, failed)]
    calls = [CallUsage(f"call-{n}", "openai", "gpt-4o-mini", 1000 * (n + 1), 200) for n in range(2)]
    results = [_result(envs[0], "done", {"label": "a"}, calls=(calls[0],)),
               _result(envs[1], "done", {"label": "b"}, calls=(calls[1],)),
               _result(envs[2], "failed")]
    await _publish(core, *results)

    async with events.watch(str(done_a[0])) as changes:
        assert await collector.step(block_ms=None) == 3
        assert changes.get_nowait() == "done"  # waiters are woken by the same pass

    for (ticket, phase), result in zip((done_a, done_b, failed), results, strict=True):
        status = result.outcome
        attempt = core.row("SELECT outcome, output, error, consumer, deliveries FROM attempts "
                           "WHERE phase_id = %s AND attempt = 1", phase)
        assert attempt == {"outcome": status, "output": result.output, "error": result.error,
                           "consumer": "replica-1", "deliveries": 1}
        assert core.row("SELECT status FROM phases WHERE id = %s", phase)["status"] == status
        row = core.row("SELECT status, result, error FROM tickets WHERE id = %s", ticket)
        assert row == {"status": status, "result": result.output, "error": result.error}
    for call, (ticket, phase), result in zip(calls, (done_a, done_b), results[:2], strict=True):
        assert result.finished_at is not None
        priced = price_call(PRICES, call, dt.datetime.fromtimestamp(result.finished_at, dt.UTC))
        ledger = core.row("SELECT ticket_id, phase_id, attempt, bot, model, input_tokens, output_tokens, cost_micros, "
                          "price_source FROM ledger WHERE call_id = %s", call.call_id)
        assert priced.cost_micros > 0
        assert ledger == {"ticket_id": ticket, "phase_id": phase, "attempt": 1, "bot": "unit-a",
                          "model": "gpt-4o-mini", "input_tokens": call.input_tokens, "output_tokens": 200,
                          "cost_micros": priced.cost_micros, "price_source": priced.source}
    assert _counts(core, failed[0]) == (1, 0)
    assert await _acknowledged(collector, core, "unit-a")  # acknowledged and deleted once the commit is on disk


async def test_results_are_acknowledged_only_once_their_commit_is_on_disk(core: Core) -> None:
    events = EventHub(core.redis)
    collector = _collector(core, events)
    dispatcher = Dispatcher(core.db, core.redis, core.signer)
    tenant = await core.new_tenant("collect-unflushed")
    [(ticket, phase)] = await core.dispatched(tenant, "unit-a", [{"n": 1}])
    await _publish(core, _result(dispatcher.envelope(tenant, ticket, phase, "unit-a", None), "done", {"n": 1}))
    with wal_writer_paused(core):
        async with events.watch(str(ticket)) as changes:
            assert await collector.step(block_ms=None) == 1
            assert changes.get_nowait() == "done"  # committed (visible) and the waiter woken at once
        assert core.row("SELECT status FROM tickets WHERE id = %s", ticket)["status"] == "done"
        for _ in range(3):  # the commit is not on disk: its entry stays pending, to be read again after a crash
            assert await collector.step(block_ms=None) == 0
            pending = await core.redis.xpending(out_stream("unit-a"), COLLECTOR_GROUP)
            assert int(pending["pending"]) == 1
        with core.superuser() as conn:
            conn.execute("CHECKPOINT")  # flushes the WAL, with the writer still stopped
        assert await collector.step(block_ms=None) == 0
        assert await _stream_is_empty(core, "unit-a")
    assert _counts(core, ticket) == (1, 0)


async def test_a_redelivered_result_changes_nothing_twice(core: Core) -> None:
    collector = _collector(core)
    dispatcher = Dispatcher(core.db, core.redis, core.signer)
    tenant = await core.new_tenant("collect-redelivered")
    [(ticket, phase)] = await core.dispatched(tenant, "unit-b", [{"n": 1}])
    env = dispatcher.envelope(tenant, ticket, phase, "unit-b", None)
    result = _result(env, "done", {"n": 1}, calls=(CallUsage("call-once", "openai", "gpt-4o-mini", 10, 10),))
    await _publish(core, result)
    assert await collector.step(block_ms=None) == 1
    assert _counts(core, ticket) == (1, 1)

    await _publish(core, result)  # the same execution's result again (a bot that crashed before its ack)
    assert await collector.step(block_ms=None) == 1
    assert _counts(core, ticket) == (1, 1)
    assert core.row("SELECT status, result FROM tickets WHERE id = %s", ticket) == {"status": "done",
                                                                                    "result": {"n": 1}}
    assert await _acknowledged(collector, core, "unit-b")


async def test_a_second_execution_of_a_finished_phase_is_recorded_as_a_duplicate_and_fenced(core: Core) -> None:
    collector = _collector(core)
    dispatcher = Dispatcher(core.db, core.redis, core.signer)
    tenant = await core.new_tenant("collect-duplicate")
    [(ticket, phase)] = await core.dispatched(tenant, "unit-b", [{"n": 1}])
    env = dispatcher.envelope(tenant, ticket, phase, "unit-b", None)
    await _publish(core, _result(env, "done", {"first": True}))
    await collector.step(block_ms=None)
    assert await _acknowledged(collector, core, "unit-b")
    assert await core.redis.exists(done_marker("unit-b", phase)) == 0  # sent once: no copy can be waiting

    # Another replica ran the same envelope (it was reclaimed), with its own model call: recorded and billed.
    again = _result(env, "done", {"first": False}, deliveries=2,
                    calls=(CallUsage("call-again", "openai", "gpt-4o-mini", 10, 10),))
    await _publish(core, again)
    await collector.step(block_ms=None)
    assert _counts(core, ticket) == (2, 1)
    assert core.row("SELECT result FROM tickets WHERE id = %s", ticket)["result"] == {"first": True}
    assert await _acknowledged(collector, core, "unit-b")  # the done marker goes with the acknowledgement
    assert await core.redis.exists(done_marker("unit-b", phase)) == 1  # workers now skip any copy left


async def test_a_phase_sent_twice_gets_its_done_marker_when_it_succeeds(core: Core) -> None:
    collector = _collector(core)
    dispatcher = Dispatcher(core.db, core.redis, core.signer)
    tenant = await core.new_tenant("collect-fence")
    [(ticket, phase)] = await core.dispatched(tenant, "unit-b", [{"n": 1}])
    with core.superuser() as conn:  # the sweeper re-sent it: attempt 2 is in the lane
        conn.execute("UPDATE phases SET attempt = 2 WHERE id = %s", (phase,))
    await _publish(core, _result(dispatcher.envelope(tenant, ticket, phase, "unit-b", None), "done", {"n": 1}))
    await collector.step(block_ms=None)
    assert core.row("SELECT status FROM tickets WHERE id = %s", ticket)["status"] == "done"
    assert await _acknowledged(collector, core, "unit-b")
    assert 0 < await core.redis.ttl(done_marker("unit-b", phase)) <= 600


async def test_results_with_a_bad_dispatch_signature_are_refused(core: Core) -> None:
    collector = _collector(core)
    dispatcher = Dispatcher(core.db, core.redis, core.signer)
    tenant = await core.new_tenant("collect-forged")
    other = await core.new_tenant("collect-victim")
    [(ticket, phase)] = await core.dispatched(tenant, "unit-a", [{"text": "x"}])
    [(victim, victim_phase)] = await core.dispatched(other, "unit-a", [{"text": "y"}])
    genuine = dispatcher.envelope(tenant, ticket, phase, "unit-a", None)
    forged_key = Dispatcher(core.db, core.redis, DispatchSigner(b"not the control plane's key")).envelope(
        tenant, ticket, phase, "unit-a", None)
    unsigned = Envelope(str(victim), str(victim_phase), 1, str(other), "unit-a", None, "")
    moved = Envelope(str(victim), str(victim_phase), 1, str(other), "unit-a", None, genuine.sig)  # another's sig
    await _publish(core, _result(forged_key, "done", "forged"), _result(unsigned, "done", "forged"),
                   _result(moved, "done", "forged"))
    await _publish(core, _result(genuine, "done", "right stream only"), stream=out_stream("unit-b"))
    await core.redis.xadd(out_stream("unit-a"), {b"e": b"not json"})

    assert await collector.step(block_ms=None) == 5  # read, and all refused
    for t in (ticket, victim):
        assert _counts(core, t) == (0, 0)
        assert core.row("SELECT status FROM tickets WHERE id = %s", t)["status"] == "in_progress"
    assert await _stream_is_empty(core, "unit-a") and await _stream_is_empty(core, "unit-b")  # dropped, not retried


async def test_results_a_dead_collector_read_are_claimed_and_committed(core: Core) -> None:
    collector = _collector(core)
    collector.claim_idle_ms = 0
    dispatcher = Dispatcher(core.db, core.redis, core.signer)
    tenant = await core.new_tenant("collect-orphans")
    [(ticket, phase)] = await core.dispatched(tenant, "unit-b", [{"n": 1}])
    await _publish(core, _result(dispatcher.envelope(tenant, ticket, phase, "unit-b", None), "done", {"n": 1}))
    await core.redis.xreadgroup(COLLECTOR_GROUP, "collector-dead-host", {out_stream("unit-b"): ">"}, count=10)
    assert await collector.step(block_ms=None) == 0  # read by the other collector: not new to this one

    assert await collector.claim_orphans() == 1
    assert core.row("SELECT status FROM tickets WHERE id = %s", ticket)["status"] == "done"
    assert await _stream_is_empty(core, "unit-b")


async def test_a_waiter_here_is_handed_its_finished_ticket_as_get_shows_it_and_only_its_own_tenants(
        core: Core) -> None:
    events = EventHub(core.redis)
    collector = _collector(core, events)
    dispatcher = Dispatcher(core.db, core.redis, core.signer)
    mine, other = await core.new_tenant("collect-handover-a"), await core.new_tenant("collect-handover-b")
    [(ticket, phase)] = await core.dispatched(mine, "unit-a", [{"n": 1}])
    [(foreign, foreign_phase)] = await core.dispatched(other, "unit-a", [{"n": 2}])
    await _publish(core, _result(dispatcher.envelope(mine, ticket, phase, "unit-a", None), "done", {"n": 1},
                                 calls=(CallUsage("call-handover", "openai", "gpt-4o-mini", 10, 10),)),
                   _result(dispatcher.envelope(other, foreign, foreign_phase, "unit-a", None), "done", {"n": 2}))
    service = TicketService(core.db, BotRegistry(core.db), events, dispatcher, collector.runner, max_input_bytes=1000)
    async with events.watch(str(ticket)), events.watch(str(foreign)):
        assert await collector.step(block_ms=None) == 2
        for tenant, tid in ((mine, ticket), (other, foreign)):  # each read under its own tenant
            assert events.finished_row(str(tid)) == (await core.db.call(tickets_repo.get(tenant, tid)))[0]
        assert events.finished_row(str(ticket))["calls"] == 1  # type: ignore[index]
        assert service._handed_over(mine, ticket, "done") == events.finished_row(str(ticket))
        assert service._handed_over(mine, foreign, "done") is None  # another tenant's: never handed over
        assert service._handed_over(mine, ticket, "failed") is None  # not the status announced: read it again
    assert events.finished_row(str(ticket)) is None  # kept only while someone watches


async def test_a_batch_larger_than_the_unflushed_limit_waits_for_the_disk_and_is_acknowledged_at_once(
        core: Core) -> None:
    collector = _collector(core)
    collector.unflushed_batch_max = 2
    dispatcher = Dispatcher(core.db, core.redis, core.signer)
    tenant = await core.new_tenant("collect-durable-batch")
    pairs = await core.dispatched(tenant, "unit-a", [{"n": n} for n in range(3)])
    await _publish(core, *(_result(dispatcher.envelope(tenant, t, p, "unit-a", None), "done", {"n": n})
                           for n, (t, p) in enumerate(pairs)))
    with wal_writer_paused(core):  # nothing else flushes: the commit itself did
        assert await collector.step(block_ms=None) == 3
        assert await _stream_is_empty(core, "unit-a")
    assert [_counts(core, t) for t, _ in pairs] == [(1, 0)] * 3


async def _until_done(core: Core, ticket: UUID, timeout_s: float = 30) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if core.row("SELECT status FROM tickets WHERE id = %s", ticket)["status"] == "done":
            return True
        await asyncio.sleep(0.05)
    return False


@pytest.mark.parametrize("loops", [1, 2])
async def test_a_running_collector_whose_connection_breaks_ends_and_the_next_run_commits_what_it_left(
        core: Core, loops: int) -> None:
    """While it runs, the collector's statements go on one connection it holds (one per loop): when Postgres drops
    it, the loops end with the error itself (the plane restarts them), the broken connection leaves the pool, and the
    next run commits the results the first left unacknowledged."""
    collector = _collector(core)
    collector.loops = loops
    dispatcher = Dispatcher(core.db, core.redis, core.signer)
    tenant = await core.new_tenant("collect-held-connection")
    (first, first_phase), (second, second_phase) = await core.dispatched(tenant, "unit-a", [{"n": 1}, {"n": 2}])
    stop = asyncio.Event()
    running = asyncio.create_task(collector.run(stop))
    try:
        await _publish(core, _result(dispatcher.envelope(tenant, first, first_phase, "unit-a", None), "done", {"n": 1}))
        assert await _until_done(core, first)
        with core.superuser() as conn:  # every connection of the API role, the collector's among them
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s",
                         (API_ROLE,))
        await _publish(core, _result(dispatcher.envelope(tenant, second, second_phase, "unit-a", None), "done",
                                     {"n": 2}))
        with pytest.raises(psycopg.OperationalError):
            await asyncio.wait_for(running, 30)
        await core.db.drop_broken()  # what the plane's engine health does when it sees Postgres back
        assert core.row("SELECT status FROM tickets WHERE id = %s", second)["status"] == "in_progress"  # not yet
        running = asyncio.create_task(collector.run(stop))
        assert await _until_done(core, second)
        assert await _until_done(core, first)  # committed once: the second run changed nothing of it
        assert _counts(core, first) == (1, 0) and _counts(core, second) == (1, 0)
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(running, return_exceptions=True), 30)
    assert await _stream_is_empty(core, "unit-a")


async def test_the_read_follows_the_set_of_bots_as_it_changes(core: Core) -> None:
    streams = ResultStreams(core.redis, "collector-read-shape")
    await streams.ensure_groups(["unit-a", "unit-b"])
    await core.redis.xadd(out_stream("unit-a"), {b"e": b"a1"})
    await core.redis.xadd(out_stream("unit-b"), {b"e": b"b1"})
    only_a = frozenset({"unit-a"})
    assert [(s, f) for s, _, f in await streams.read(only_a, 10, None)] == [(out_stream("unit-a"), {b"e": b"a1"})]
    assert await streams.read(only_a, 10, None) == []  # the same set again: still only its stream
    both = frozenset({"unit-a", "unit-b"})  # the registry refreshed with a new bot
    assert [(s, f) for s, _, f in await streams.read(both, 10, None)] == [(out_stream("unit-b"), {b"e": b"b1"})]
    bots = {"unit-a"}  # a mutable set, changed in place between reads
    await core.redis.xadd(out_stream("unit-b"), {b"e": b"b2"})
    assert await streams.read(bots, 10, None) == []
    bots.add("unit-b")
    assert [(s, f) for s, _, f in await streams.read(bots, 10, None)] == [(out_stream("unit-b"), {b"e": b"b2"})]
    reread = await streams.read(both, 10, None, "0")  # what this consumer read and never acknowledged, by stream
    assert sorted((s, f[b"e"]) for s, _, f in reread if f) == [
        (out_stream("unit-a"), b"a1"), (out_stream("unit-b"), b"b1"), (out_stream("unit-b"), b"b2")]
    assert await streams.read(both, 10, 50) == []  # a blocking read that times out with nothing new
    with pytest.raises(ValueError, match="at least one bot"):
        await streams.read(frozenset(), 10, None)


async def test_a_session_holds_a_connection_only_from_a_pool_that_can_spare_one(core: Core) -> None:
    for size, held in ((1, False), (2, False), (3, True)):
        db = Database(core.engines.api_url, min_size=1, max_size=size, name=f"oshal-session-{size}")
        await db.open()
        try:
            async with db.session() as session:
                assert (await session.call(("SELECT 1 AS one", ())))[0]["one"] == 1
                wal = await session.wal()
                assert wal.written >= wal.flushed > 0
                assert (session is not db) == held
                # the others still get connections while it is open (a held pool of one would time out here)
                assert (await asyncio.wait_for(db.call(("SELECT 2 AS two", ())), 10))[0]["two"] == 2
        finally:
            await db.close()


async def test_a_waiter_in_another_process_is_handed_its_row_on_its_own_channel_and_nothing_else_is(
        core: Core) -> None:
    """The waiter's hub (another control-plane process: it shares nothing with the collector's but Redis) names
    itself in the envelope; the collector reads the row back and publishes it only to that hub's channel."""
    events, waiting, bystander = EventHub(core.redis), EventHub(core.redis), EventHub(core.redis)
    collector = _collector(core, events)
    dispatcher = Dispatcher(core.db, core.redis, core.signer)
    mine, other = await core.new_tenant("handover-far-a"), await core.new_tenant("handover-far-b")
    [(ticket, phase), (unwaited, unwaited_phase)] = await core.dispatched(mine, "unit-a", [{"n": 1}, {"n": 2}])
    [(foreign, foreign_phase)] = await core.dispatched(other, "unit-a", [{"n": 3}])
    await waiting.start()
    await bystander.start()
    broadcast = core.redis.pubsub()
    await broadcast.subscribe(EVENTS_CHANNEL)
    try:
        assert waiting.token and waiting.token != bystander.token
        envelopes = [dispatcher.envelope(mine, ticket, phase, "unit-a", None).waited_in(waiting.token),
                     dispatcher.envelope(mine, unwaited, unwaited_phase, "unit-a", None),
                     dispatcher.envelope(other, foreign, foreign_phase, "unit-a", None).waited_in(waiting.token)]
        await _publish(core, *[_result(env, "done", {"n": n}) for n, env in enumerate(envelopes)])
        async with waiting.watch(str(ticket)) as changes, waiting.watch(str(foreign)), \
                bystander.watch(str(ticket)) as seen:
            assert await collector.step(block_ms=None) == 3
            assert await asyncio.wait_for(changes.get(), 10) == "done"
            assert await asyncio.wait_for(seen.get(), 10) == "done"  # the status reaches every process
            for tenant, tid in ((mine, ticket), (other, foreign)):  # each read under its own tenant
                assert waiting.finished_row(str(tid)) == (await core.db.call(tickets_repo.get(tenant, tid)))[0]
            service = TicketService(core.db, BotRegistry(core.db), waiting, dispatcher, collector.runner,
                                    max_input_bytes=1000)
            assert service._handed_over(mine, ticket, "done") == waiting.finished_row(str(ticket))
            assert service._handed_over(mine, foreign, "done") is None  # another tenant's: never used
            assert bystander.finished_row(str(ticket)) is None  # the row went to the waiter's process only
            assert events.finished_row(str(ticket)) is None
        assert waiting.finished_row(str(ticket)) is None  # kept only while someone watches
        statuses: list[list[str]] = []  # the shared channel: every finished ticket's id and status, and no row
        deadline = time.monotonic() + 10
        while len(statuses) < 3 and time.monotonic() < deadline:
            message = await broadcast.get_message(ignore_subscribe_messages=True, timeout=1)
            if message is not None:
                statuses += json.loads(message["data"])
        assert sorted(map(tuple, statuses)) == sorted((str(t), "done") for t in (ticket, unwaited, foreign))
    finally:
        await broadcast.aclose()
        await waiting.stop()
        await bystander.stop()


async def test_a_waiter_in_another_process_reads_its_ticket_itself_when_the_result_does_not_name_it(
        core: Core) -> None:
    """An older node drops the envelope's waiter; a forged one names no process that listens: nothing is handed
    over, the status still wakes the waiter, and the service reads the ticket."""
    events, waiting = EventHub(core.redis), EventHub(core.redis)
    collector = _collector(core, events)
    dispatcher = Dispatcher(core.db, core.redis, core.signer)
    mine = await core.new_tenant("handover-none")
    [(dropped, dropped_phase), (forged, forged_phase)] = await core.dispatched(mine, "unit-a", [{"n": 1}, {"n": 2}])
    await waiting.start()
    try:
        await _publish(core, _result(dispatcher.envelope(mine, dropped, dropped_phase, "unit-a", None), "done"),
                       _result(dispatcher.envelope(mine, forged, forged_phase, "unit-a", None).waited_in("../x*"),
                               "done"))
        async with waiting.watch(str(dropped)) as one, waiting.watch(str(forged)) as two:
            assert await collector.step(block_ms=None) == 2
            assert await asyncio.wait_for(one.get(), 10) == "done"
            assert await asyncio.wait_for(two.get(), 10) == "done"
            assert waiting.finished_row(str(dropped)) is None
            assert waiting.finished_row(str(forged)) is None
    finally:
        await waiting.stop()


async def test_concurrent_loops_commit_every_result_once_redeliveries_and_duplicates_included(core: Core) -> None:
    collector = _collector(core)
    collector.loops, collector.batch = 3, 7  # small batches: every loop gets some of the work
    dispatcher = Dispatcher(core.db, core.redis, core.signer)
    tenant = await core.new_tenant("collect-loops")
    phases = await core.dispatched(tenant, "unit-a", [{"n": n} for n in range(120)])
    results = []
    for n, (ticket, phase) in enumerate(phases):
        env = dispatcher.envelope(tenant, ticket, phase, "unit-a", None)
        first = _result(env, "done", {"n": n}, calls=(CallUsage(f"loops-{n}", "openai", "gpt-4o-mini", 10, 10),))
        results.append(first)
        if n % 3 == 0:  # the same execution's result twice (a bot that crashed before its ack), apart in the stream
            results.insert(len(results) // 2, first)
        if n % 4 == 0:  # a second execution of the phase (reclaimed by another replica), with its own call
            results.append(_result(env, "done", {"again": n}, deliveries=2,
                                   calls=(CallUsage(f"loops-{n}-again", "openai", "gpt-4o-mini", 10, 10),)))
    await _publish(core, *results)

    stop = asyncio.Event()
    running = asyncio.create_task(collector.run(stop))
    try:
        deadline = time.monotonic() + 60
        while not await _stream_is_empty(core, "unit-a") and time.monotonic() < deadline:
            assert not running.done(), running.exception()
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.wait_for(running, 30)
    assert await _stream_is_empty(core, "unit-a")

    for n, (ticket, _) in enumerate(phases):
        executions = 2 if n % 4 == 0 else 1
        assert _counts(core, ticket) == (executions, executions), n
        # of two executions, the one committed first is the phase's success (loops commit side by side, in no order)
        row = core.row("SELECT status, result FROM tickets WHERE id = %s", ticket)
        assert row["status"] == "done" and row["result"] in ({"n": n}, {"again": n} if executions == 2 else {"n": n})
    consumers = {c["name"]: c for c in await core.redis.xinfo_consumers(out_stream("unit-a"), COLLECTOR_GROUP)}
    assert {b"collector-test", b"collector-test-2", b"collector-test-3"} <= set(consumers)  # each loop read


async def test_a_collector_statement_that_postgres_rolls_back_to_break_a_deadlock_is_sent_again(
        core: Core) -> None:
    collector = _collector(core)
    dispatcher = Dispatcher(core.db, core.redis, core.signer)
    tenant = await core.new_tenant("collect-deadlock")
    (first_ticket, first_phase), (last_ticket, last_phase) = sorted(
        await core.dispatched(tenant, "unit-a", [{"n": 1}, {"n": 2}]), key=lambda tp: tp[1])
    await _publish(core, *(_result(dispatcher.envelope(tenant, t, p, "unit-a", None), "done", {"n": n})
                           for n, (t, p) in enumerate([(last_ticket, last_phase), (first_ticket, first_phase)])))

    with core.superuser() as other:
        # Another transaction holds the last ticket; the collector's statement (phases in id order) locks the first
        # phase, then waits for that ticket; the other then waits for the first phase: a deadlock. The other waits
        # longer before it looks for one, so Postgres breaks it by rolling back the collector's statement.
        other.execute("BEGIN")
        other.execute("SET LOCAL deadlock_timeout = '60s'")
        other.execute("SELECT 1 FROM tickets WHERE id = %s FOR UPDATE", (last_ticket,))
        step = asyncio.create_task(collector.step(block_ms=None))
        deadline = time.monotonic() + 30
        while not core.row("SELECT count(*) AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                           "AND query LIKE '%%oshal_record_results%%'")["n"]:
            assert time.monotonic() < deadline and not step.done()
            await asyncio.sleep(0.02)
        await asyncio.to_thread(other.execute, "UPDATE phases SET updated_at = now() WHERE id = %s", (first_phase,))
        other.execute("COMMIT")
        assert await asyncio.wait_for(step, 30) == 2
    for n, ticket in enumerate([last_ticket, first_ticket]):
        assert core.row("SELECT status, result FROM tickets WHERE id = %s", ticket) == {"status": "done",
                                                                                        "result": {"n": n}}
        assert _counts(core, ticket) == (1, 0)
    assert await _acknowledged(collector, core, "unit-a")
