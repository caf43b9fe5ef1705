"""The dispatcher on real engines: a signed envelope lands on its bot's lane, a kill switch holds it (and gives it
back on release), a lost gate mirror holds everything, and a Redis that is down defers to the sweeper."""

from __future__ import annotations

from uuid import UUID

import pytest
from redis.exceptions import RedisError

from conftest import Core, free_port
from oshal.mesh.dispatcher import Dispatcher
from oshal.mesh.envelopes import PHASE_FIELD, Envelope
from oshal.mesh.redis import connect
from oshal.mesh.redis_keys import KILL_SWITCHES_LOADED, lane_stream
from oshal.mesh.signing import DispatchSigner
from oshal.security.killswitch import KillSwitches


def _phase(core: Core, phase: UUID) -> tuple[str, int]:
    row = core.row("SELECT status, attempt FROM phases WHERE id = %s", phase)
    return str(row["status"]), int(row["attempt"])


async def _lane(core: Core, bot: str) -> list[tuple[Envelope, bytes]]:
    return [(Envelope.decode(fields), fields[PHASE_FIELD]) for _, fields in await core.redis.xrange(lane_stream(bot))]


async def test_a_signed_envelope_lands_on_its_bots_lane_in_one_append(core: Core) -> None:
    dispatcher = Dispatcher(core.db, core.redis, core.signer)
    tenant = await core.new_tenant("dispatch-sign")
    [(ticket_a, phase_a)] = await core.dispatched(tenant, "unit-a", [{"text": "down"}])
    [(ticket_b, phase_b)] = await core.dispatched(tenant, "unit-b", [[1, 2]])
    sent = [dispatcher.envelope(tenant, ticket_a, phase_a, "unit-a", {"text": "down"}),
            dispatcher.envelope(tenant, ticket_b, phase_b, "unit-b", [1, 2])]

    assert await dispatcher.send(sent) == 0

    [(on_a, phase_field)] = await _lane(core, "unit-a")
    assert on_a == sent[0] and phase_field == str(phase_a).encode()
    assert (on_a.ticket_id, on_a.tenant_id, on_a.attempt, on_a.input) == (str(ticket_a), str(tenant), 1,
                                                                           {"text": "down"})
    assert core.signer.verify(on_a)  # the collector will accept its result
    assert not DispatchSigner(b"another key, 16+ bytes").verify(on_a)
    assert not core.signer.verify(Envelope(on_a.ticket_id, on_a.phase_id, 1, on_a.tenant_id, "unit-b", None,
                                           on_a.sig))  # the signature binds the routing: not valid for another bot
    assert [env for env, _ in await _lane(core, "unit-b")] == [sent[1]]
    assert _phase(core, phase_a) == ("dispatched", 1)


async def test_rows_of_redispatched_phases_become_signed_envelopes(core: Core) -> None:
    dispatcher = Dispatcher(core.db, core.redis, core.signer)
    tenant = await core.new_tenant("dispatch-rows")
    [(ticket, phase)] = await core.dispatched(tenant, "unit-b", [{"n": 1}])
    rows = [{"ticket_id": ticket, "phase_id": phase, "attempt": 3, "bot": "unit-b", "input": {"n": 1}}]
    [env] = dispatcher.envelopes(tenant, rows)
    assert env == dispatcher.envelope(tenant, ticket, phase, "unit-b", {"n": 1}, attempt=3)
    assert env.attempt == 3 and core.signer.verify(env)


async def test_a_kill_switch_holds_work_and_its_release_sends_it(core: Core) -> None:
    dispatcher = Dispatcher(core.db, core.redis, core.signer)
    kill = KillSwitches(core.db, dispatcher)
    tenant = await core.new_tenant("dispatch-held")
    held = await core.dispatched(tenant, "unit-a", [{"text": "one"}, {"text": "two"}])
    [(free_ticket, free_phase)] = await core.dispatched(tenant, "unit-b", [{"n": 1}])
    await kill.engage("unit-a", reason="investigating", actor="test", tenant=tenant)

    envelopes = [dispatcher.envelope(tenant, t, p, "unit-a", {"text": "x"}) for t, p in held]
    envelopes.append(dispatcher.envelope(tenant, free_ticket, free_phase, "unit-b", {"n": 1}))
    assert await dispatcher.send(envelopes) == 2

    assert await _lane(core, "unit-a") == []
    assert len(await _lane(core, "unit-b")) == 1  # another bot's work is not held
    for _, phase in held:
        assert _phase(core, phase) == ("queued", 0)  # handed back, its attempt unspent
    assert _phase(core, free_phase) == ("dispatched", 1)
    assert await dispatcher.resume_held(kill.blocks) == 0  # still engaged: nothing is sent

    assert await kill.release("unit-a", actor="test", tenant=tenant) == 2

    on_lane = {env.phase_id: env for env, _ in await _lane(core, "unit-a")}
    assert [on_lane[str(p)].input for _, p in held] == [{"text": "one"}, {"text": "two"}]  # read back from Postgres
    assert all(env.attempt == 1 and core.signer.verify(env) for env in on_lane.values())
    for _, phase in held:
        assert _phase(core, phase) == ("dispatched", 1)


async def test_a_global_switch_holds_every_bot(core: Core) -> None:
    dispatcher = Dispatcher(core.db, core.redis, core.signer)
    kill = KillSwitches(core.db, dispatcher)
    tenant = await core.new_tenant("dispatch-global")
    [(ticket, phase)] = await core.dispatched(tenant, "unit-b", [{"n": 1}])
    await kill.engage(None, reason="stop everything", actor="test", tenant=tenant)
    assert await dispatcher.send([dispatcher.envelope(tenant, ticket, phase, "unit-b", {"n": 1})]) == 1
    assert await _lane(core, "unit-b") == [] and _phase(core, phase) == ("queued", 0)
    assert await kill.release(None, actor="test", tenant=tenant) == 1
    assert [env.phase_id for env, _ in await _lane(core, "unit-b")] == [str(phase)]


async def test_without_its_mirror_the_gate_holds_everything_and_is_rebuilt(core: Core) -> None:
    """Redis lost the kill-switch mirror: a switch the gate cannot see must not let work through."""
    dispatcher = Dispatcher(core.db, core.redis, core.signer)
    kill = KillSwitches(core.db, dispatcher)
    tenant = await core.new_tenant("dispatch-mirror")
    [(ticket, phase)] = await core.dispatched(tenant, "unit-b", [{"n": 1}])
    await core.redis.delete(KILL_SWITCHES_LOADED)

    assert await dispatcher.send([dispatcher.envelope(tenant, ticket, phase, "unit-b", {"n": 1})]) == 1

    assert await _lane(core, "unit-b") == [] and _phase(core, phase) == ("queued", 0)
    assert await core.redis.exists(KILL_SWITCHES_LOADED) == 1  # rebuilt from Postgres on the spot
    assert await dispatcher.resume_held(kill.blocks) == 1  # what it held goes out (the sweeper's pass)
    assert [env.phase_id for env, _ in await _lane(core, "unit-b")] == [str(phase)]
    assert _phase(core, phase) == ("dispatched", 1)


async def test_with_redis_down_committed_work_is_left_to_the_sweeper(core: Core) -> None:
    down = connect(f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    dispatcher = Dispatcher(core.db, down, core.signer)
    tenant = await core.new_tenant("dispatch-down")
    [(ticket, phase)] = await core.dispatched(tenant, "unit-b", [{"n": 1}])
    env = dispatcher.envelope(tenant, ticket, phase, "unit-b", {"n": 1})
    try:
        with pytest.raises(RedisError):
            await dispatcher.send([env])  # the sweeper's own re-sends see the error (its pass is retried)
        await dispatcher.send_committed([env])  # accepted work: no error for the caller ...
    finally:
        await down.aclose()
    assert _phase(core, phase) == ("dispatched", 1)  # ... and it stays dispatched, for the sweeper to re-send
    assert await _lane(core, "unit-b") == []


async def test_sending_nothing_costs_no_round_trip(core: Core) -> None:
    down = connect(f"redis://127.0.0.1:{free_port()}/0")
    try:
        assert await Dispatcher(core.db, down, core.signer).send([]) == 0  # would raise if it reached Redis
    finally:
        await down.aclose()
