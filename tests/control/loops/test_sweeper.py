"""The sweeper on real engines: a stale dispatched phase of which Redis holds no copy is re-sent (signed, at the
next attempt); a phase with a copy anywhere (unread or pending in its lane, or its result waiting for the
collector) is not; a bot held by a kill switch is left alone; a Redis that lost its data is rebuilt and refilled."""

from __future__ import annotations

from uuid import UUID

from conftest import Core
from oshal.control.bot_registry import BotRegistry
from oshal.control.budgets import BudgetService
from oshal.control.events import EventHub
from oshal.control.loops.sweeper import Sweeper
from oshal.control.ticket_actions import Lifecycle
from oshal.ledger import PriceTable, load_price_file
from oshal.mesh.dispatcher import Dispatcher
from oshal.mesh.envelopes import Envelope, Result
from oshal.mesh.redis_keys import KILL_SWITCHES_LOADED, LANE_GROUP, lane_stream, out_stream
from oshal.security.killswitch import KillSwitches
from oshal.settings import Settings
from oshal.workflows.runner import WorkflowRunner

STALE_AFTER_S = 30.0
BOTS = frozenset({"unit-a", "unit-b"})


def _sweeper(core: Core) -> tuple[Sweeper, Dispatcher, KillSwitches]:
    dispatcher = Dispatcher(core.db, core.redis, core.signer)
    kill = KillSwitches(core.db, dispatcher)
    runner = WorkflowRunner(core.db, dispatcher, BotRegistry(core.db).resolve, EventHub(core.redis).publish)
    prices = PriceTable(load_price_file())
    budgets = BudgetService(core.db, core.redis, lambda: prices, Lifecycle(core.db, runner), Settings(home=core.home))
    sweeper = Sweeper(core.db, core.redis, dispatcher, lambda: BOTS, runner=runner, kill=kill, budgets=budgets,
                      stale_after_s=STALE_AFTER_S, interval_s=1.0)
    return sweeper, dispatcher, kill


def _age(core: Core, *phases: UUID) -> None:
    """No progress for longer than the sweeper waits (instead of waiting that long)."""
    with core.superuser() as conn:
        conn.execute("UPDATE phases SET updated_at = now() - make_interval(secs => %s) WHERE id = ANY(%s)",
                     (STALE_AFTER_S * 2, list(phases)))


def _attempt(core: Core, phase: UUID) -> tuple[str, int]:
    row = core.row("SELECT status, attempt FROM phases WHERE id = %s", phase)
    return str(row["status"]), int(row["attempt"])


async def _lane(core: Core, bot: str) -> list[Envelope]:
    return [Envelope.decode(fields) for _, fields in await core.redis.xrange(lane_stream(bot))]


async def test_a_stale_phase_that_never_reached_its_lane_is_resent_once(core: Core) -> None:
    sweeper, dispatcher, _ = _sweeper(core)
    tenant = await core.new_tenant("sweep-lost")
    (sent_ticket, sent), (lost_ticket, lost) = await core.dispatched(tenant, "unit-a", [{"text": "a"}, {"text": "b"}])
    await dispatcher.send([dispatcher.envelope(tenant, sent_ticket, sent, "unit-a", {"text": "a"})])
    # `lost` was committed, and the process died before its append.
    _age(core, sent, lost)

    assert await sweeper.redrive_lost() == 1

    assert _attempt(core, lost) == ("dispatched", 2) and _attempt(core, sent) == ("dispatched", 1)
    copies = {env.phase_id: env for env in await _lane(core, "unit-a")}
    assert set(copies) == {str(sent), str(lost)}
    resent = copies[str(lost)]
    assert (resent.ticket_id, resent.attempt, resent.input) == (str(lost_ticket), 2, {"text": "b"})
    assert core.signer.verify(resent)

    _age(core, sent, lost)  # still no progress, but both now have a copy in the lane: nothing is sent again
    assert await sweeper.redrive_lost() == 0
    assert len(await _lane(core, "unit-a")) == 2


async def test_a_phase_with_a_copy_anywhere_in_redis_is_not_resent(core: Core) -> None:
    sweeper, dispatcher, _ = _sweeper(core)
    tenant = await core.new_tenant("sweep-fenced")
    rows = await core.dispatched(tenant, "unit-b", [{"n": n} for n in range(4)])
    (_, running), (t_answered, answered), (_, ran), (t_unread, unread) = rows
    await dispatcher.send([dispatcher.envelope(tenant, t, p, "unit-b", {"n": n}) for n, (t, p) in enumerate(rows[:3])])
    lane = lane_stream("unit-b")
    read = {Envelope.decode(f).phase_id: mid
            for _, entries in await core.redis.xreadgroup(LANE_GROUP, "replica", {lane: ">"}) for mid, f in entries}
    # `running`: delivered and still pending on a replica. `answered`: ran, its result waits for the collector.
    # `ran`: ran and acknowledged, but its result was lost. `unread`: still to be appended (sent below).
    for phase in (answered, ran):
        await core.redis.xack(lane, LANE_GROUP, read[str(phase)])
        await core.redis.xdel(lane, read[str(phase)])
    env = dispatcher.envelope(tenant, t_answered, answered, "unit-b", None)
    await core.redis.xadd(out_stream("unit-b"), Result(env, "done", {"n": 1}).encode())  # type: ignore[arg-type]
    await dispatcher.send([dispatcher.envelope(tenant, t_unread, unread, "unit-b", {"n": 3})])
    _age(core, running, answered, ran, unread)

    assert await sweeper.redrive_lost() == 1

    assert {p: _attempt(core, p)[1] for p in (running, answered, ran, unread)} == {running: 1, answered: 1, ran: 2,
                                                                                   unread: 1}
    assert sorted(e.phase_id for e in await _lane(core, "unit-b")) == sorted(str(p) for p in (running, ran, unread))


async def test_a_bot_held_by_a_kill_switch_keeps_its_stale_phases(core: Core) -> None:
    sweeper, _, kill = _sweeper(core)
    tenant = await core.new_tenant("sweep-held")
    [(_, phase)] = await core.dispatched(tenant, "unit-a", [{"text": "a"}])
    await kill.engage("unit-a", reason="hold", actor="test", tenant=tenant)
    _age(core, phase)
    assert await sweeper.redrive_lost() == 0
    assert _attempt(core, phase) == ("dispatched", 1) and await _lane(core, "unit-a") == []
    await kill.release("unit-a", actor="test", tenant=tenant)
    assert await sweeper.redrive_lost() == 1 and _attempt(core, phase) == ("dispatched", 2)


async def test_a_pass_after_redis_lost_its_data_rebuilds_groups_and_mirror_and_resends(core: Core) -> None:
    sweeper, dispatcher, _ = _sweeper(core)
    tenant = await core.new_tenant("sweep-flushed")
    [(ticket, phase)] = await core.dispatched(tenant, "unit-b", [{"n": 1}])
    await dispatcher.send([dispatcher.envelope(tenant, ticket, phase, "unit-b", {"n": 1})])
    await core.redis.flushall()  # lanes, groups and the kill-switch mirror are gone
    _age(core, phase)

    assert await sweeper.sweep() >= 1

    assert await core.redis.exists(KILL_SWITCHES_LOADED) == 1
    groups = await core.redis.xinfo_groups(lane_stream("unit-b"))
    assert [g["name"] for g in groups] == [LANE_GROUP.encode()]
    assert [(e.phase_id, e.attempt) for e in await _lane(core, "unit-b")] == [(str(phase), 2)]
    assert _attempt(core, phase) == ("dispatched", 2)
