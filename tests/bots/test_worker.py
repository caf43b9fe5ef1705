"""A bot replica against a real Redis, logged in as its own ACL user: it reads its lane, runs a deterministic
intent, writes each result (with the envelope it was given) to its output stream and clears its lane; it skips a
re-sent copy of a phase that already succeeded, and takes over what a dead replica left pending."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

from conftest import Core
from oshal.bots.harnesses import build_harness
from oshal.bots.harnesses.intents import classify
from oshal.bots.manifest import load_fleet
from oshal.bots.worker import BotWorker, WorkerOptions
from oshal.mesh.dispatcher import Dispatcher
from oshal.mesh.envelopes import Result
from oshal.mesh.redis import connect
from oshal.mesh.redis_keys import LANE_GROUP, done_marker, heartbeat_key, lane_stream, out_stream


@contextlib.asynccontextmanager
async def _worker(core: Core, bot: str, claim_idle_ms: int = 15_000) -> AsyncIterator[BotWorker]:
    manifest = load_fleet(core.home / "fleet")[bot]
    redis = connect(core.bot_redis_url(bot))
    harness = build_harness(manifest)
    worker = BotWorker(manifest, redis, harness, WorkerOptions(claim_idle_ms=claim_idle_ms, heartbeat_ttl_s=2,
                                                               block_ms=200, drain_timeout_s=5))
    task = asyncio.create_task(worker.run())
    try:
        yield worker
    finally:
        worker.stop()
        await asyncio.wait_for(task, 30)
        await harness.aclose()
        await redis.aclose()


async def _results(core: Core, bot: str, count: int, timeout: float = 30) -> list[Result]:
    deadline = time.monotonic() + timeout
    while int(await core.redis.xlen(out_stream(bot))) < count:
        assert time.monotonic() < deadline, f"no {count} results from {bot} within {timeout}s"
        await asyncio.sleep(0.05)
    return [Result.decode(fields) for _, fields in await core.redis.xrange(out_stream(bot))]


async def _lane_is_clear(core: Core, bot: str) -> bool:
    pending: Any = await core.redis.xpending(lane_stream(bot), LANE_GROUP)
    return int(await core.redis.xlen(lane_stream(bot))) == 0 and int(pending["pending"]) == 0


async def test_a_worker_runs_its_intent_and_writes_each_result_to_its_output_stream(core: Core) -> None:
    dispatcher = Dispatcher(core.db, core.redis, core.signer)
    tenant = await core.new_tenant("worker-runs")
    inputs = [{"text": "the server is down with a 500 error"}, {"text": "please refund this invoice"}, {"n": 1}]
    rows = await core.dispatched(tenant, "unit-a", inputs)
    sent = [dispatcher.envelope(tenant, t, p, "unit-a", value) for (t, p), value in zip(rows, inputs, strict=True)]
    async with _worker(core, "unit-a") as worker:
        await dispatcher.send(sent)
        results = {r.envelope.phase_id: r for r in await _results(core, "unit-a", 3)}
        assert await core.redis.exists(heartbeat_key("unit-a", worker.consumer_name)) == 1
        consumer = worker.consumer_name

    incident, billing, unreadable = (results[env.phase_id] for env in sent)
    assert (incident.outcome, incident.output) == ("done", classify(inputs[0]))
    assert incident.output["label"] == "incident" and billing.output["label"] == "billing"
    assert unreadable.outcome == "failed" and "expects input.text" in str(unreadable.error)
    for env, result in zip(sent, (incident, billing, unreadable), strict=True):
        # The routing fields and signature come back unchanged, so the collector accepts the result.
        assert result.envelope.routing() == env.routing() and result.envelope.sig == env.sig
        assert core.signer.verify(result.envelope)
        assert (result.consumer, result.deliveries) == (consumer, 1)
        assert result.started_at is not None and result.finished_at is not None
    assert await _lane_is_clear(core, "unit-a")  # acknowledged and deleted
    assert await core.redis.exists(heartbeat_key("unit-a", consumer)) == 0  # cleared on a clean stop


async def test_a_resent_copy_of_a_phase_that_succeeded_is_skipped_unrun(core: Core) -> None:
    dispatcher = Dispatcher(core.db, core.redis, core.signer)
    tenant = await core.new_tenant("worker-fenced")
    (t_done, finished), (t_new, fresh) = await core.dispatched(tenant, "unit-b", [{"n": 1}, {"n": 2}])
    await core.redis.set(done_marker("unit-b", str(finished)), 1, ex=600)  # the collector saw it succeed
    copy = dispatcher.envelope(tenant, t_done, finished, "unit-b", {"n": 1}, attempt=2)
    other = dispatcher.envelope(tenant, t_new, fresh, "unit-b", {"n": 2})
    async with _worker(core, "unit-b") as worker:
        await dispatcher.send([copy, other])
        [result] = await _results(core, "unit-b", 1)
        fenced = worker.lane.fenced
    assert (result.envelope.phase_id, result.output) == (str(fresh), {"n": 2})
    assert fenced == 1 and await _lane_is_clear(core, "unit-b")


async def test_work_a_dead_replica_left_pending_is_taken_over(core: Core) -> None:
    dispatcher = Dispatcher(core.db, core.redis, core.signer)
    tenant = await core.new_tenant("worker-reclaims")
    [(ticket, phase)] = await core.dispatched(tenant, "unit-b", [{"n": 7}])
    await dispatcher.send([dispatcher.envelope(tenant, ticket, phase, "unit-b", {"n": 7})])
    taken = await core.redis.xreadgroup(LANE_GROUP, "dead-replica", {lane_stream("unit-b"): ">"}, count=1)
    assert len(taken[0][1]) == 1  # the dead replica holds it, unacknowledged
    async with _worker(core, "unit-b", claim_idle_ms=200):
        [result] = await _results(core, "unit-b", 1)
    assert (result.envelope.phase_id, result.outcome, result.output) == (str(phase), "done", {"n": 7})
    assert result.deliveries == 2  # delivered once to the dead replica, once to this one
    assert await _lane_is_clear(core, "unit-b")


async def test_a_replica_keeps_the_jobs_it_is_still_running(core: Core) -> None:
    """What the heartbeat loop does for long jobs: their entries are claimed again by the same replica, idle time
    reset, so no other replica takes them over. Done with the bot's own identity (its ACL allows it)."""
    from oshal.mesh.consumer import LaneConsumer

    dispatcher = Dispatcher(core.db, core.redis, core.signer)
    tenant = await core.new_tenant("worker-touch")
    [(ticket, phase)] = await core.dispatched(tenant, "unit-b", [{"n": 1}])
    await dispatcher.send([dispatcher.envelope(tenant, ticket, phase, "unit-b", {"n": 1})])
    redis = connect(core.bot_redis_url("unit-b"))
    try:
        lane = LaneConsumer(redis, "unit-b", "busy-replica")
        [delivery] = await lane.read(1, 100)
        await asyncio.sleep(1.0)  # it has been idle a while (the margin keeps the comparison below noise-proof)
        before = await core.redis.xpending_range(lane_stream("unit-b"), LANE_GROUP, "-", "+", 1)
        await lane.touch([delivery.message_id])
        after = await core.redis.xpending_range(lane_stream("unit-b"), LANE_GROUP, "-", "+", 1)
    finally:
        await redis.aclose()
    assert after[0]["consumer"] == b"busy-replica"
    assert after[0]["times_delivered"] == 1  # not counted as another delivery (that would bring a dead letter near)
    assert after[0]["time_since_delivered"] < before[0]["time_since_delivered"]  # idle time reset


async def _refused(core: Core, kind: str) -> int:
    stats: dict[str, Any] = await core.redis.info("errorstats")
    return int(stats.get(f"errorstat_{kind}", {}).get("count", 0))


async def test_results_redis_refuses_for_a_while_are_all_written_once_it_takes_them(core: Core) -> None:
    """A result refused on its way out with a read goes back to the writer, which retries until it is written."""
    dispatcher = Dispatcher(core.db, core.redis, core.signer)
    tenant = await core.new_tenant("worker-refused")
    inputs = [{"n": i} for i in range(5)]
    rows = await core.dispatched(tenant, "unit-b", inputs)
    sent = [dispatcher.envelope(tenant, t, p, "unit-b", value) for (t, p), value in zip(rows, inputs, strict=True)]
    refused_before = await _refused(core, "WRONGTYPE")
    await core.redis.set(out_stream("unit-b"), "not a stream")  # every XADD of a result is refused
    async with _worker(core, "unit-b") as worker:
        await dispatcher.send(sent)
        deadline = time.monotonic() + 30
        while await _refused(core, "WRONGTYPE") == refused_before:
            assert time.monotonic() < deadline, "the worker never tried to write a result"
            await asyncio.sleep(0.05)
        assert worker.processed == 0
        await core.redis.delete(out_stream("unit-b"))  # Redis takes results again
        results = await _results(core, "unit-b", len(sent))
    # Counted once the round trip that wrote them is back (one that also reads may block first): after the stop.
    assert worker.processed == len(sent)
    assert sorted(r.envelope.phase_id for r in results) == sorted(env.phase_id for env in sent)  # each once
    assert {r.envelope.phase_id: r.output for r in results} == {env.phase_id: env.input for env in sent}
    assert await _lane_is_clear(core, "unit-b")
