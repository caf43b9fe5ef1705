"""Re-drives that never race the original, and at most one successful execution per phase.

The sweeper re-sends a stale phase only when Redis holds no copy of it; the collector fences phases sent more
than once with a done marker that workers check before running a copy; executions that did run anyway are
recorded, billed once each and reported as duplicates.
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import REGISTRY

from cli.test_cli import run as run_cli
from conftest import Platform, TenantClient, wait_done
from control.test_crash_safety import _wait_for, node_processes
from oshal.mesh.envelopes import CallUsage, Envelope, Result
from oshal.mesh.redis_keys import done_marker, lane_stream, out_stream
from oshal.mesh.signing import DispatchSigner


def _submit(tc: TenantClient, bot: str, value: Any) -> str:
    response = tc.http.post("/v1/tickets", json={"bot": bot, "input": value})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _phase(platform: Platform, ticket: str) -> str:
    with platform.superuser() as conn:
        row = conn.execute("SELECT id::text FROM phases WHERE ticket_id = %s", (ticket,)).fetchone()
    assert row is not None
    return str(row[0])


def _result(platform: Platform, tc: TenantClient, ticket: str, phase: str, attempt: int, outcome: str,
            output: Any = None, deliveries: int = 1) -> Result:
    """The result a bot would publish for this execution, with one model call whose id names the execution."""
    signer = DispatchSigner(platform.engines.dispatch_key)
    env = Envelope(ticket, phase, attempt, tc.tenant_id, "idle", None)
    call = f"{phase}:{attempt}:0" if deliveries == 1 else f"{phase}:{attempt}.{deliveries}:0"
    return Result(env.signed(signer.sign(env)), outcome, output, None if outcome == "done" else "it died",
                  calls=(CallUsage(call, "deterministic", "echo-1", 3, 3),), deliveries=deliveries)


def _publish(platform: Platform, *results: Result) -> None:
    admin = platform.redis_admin()
    for result in results:
        admin.xadd(out_stream("idle"), result.encode())  # type: ignore[arg-type]
    _wait_for(lambda: admin.xlen(out_stream("idle")) == 0, 15, "the collector to commit the results")
    admin.close()


def _executions(platform: Platform, ticket: str) -> tuple[int, int]:
    """(attempt rows, ledger rows) of the ticket: one each per execution that reported."""
    with platform.superuser() as conn:
        attempts = conn.execute("SELECT count(*) FROM attempts WHERE ticket_id = %s", (ticket,)).fetchone()
        ledger = conn.execute("SELECT count(*) FROM ledger WHERE ticket_id = %s", (ticket,)).fetchone()
    assert attempts is not None and ledger is not None
    return int(attempts[0]), int(ledger[0])


def _attempts(tc: TenantClient, ticket: str) -> int:
    return int(tc.http.get(f"/v1/tickets/{ticket}").json()["attempts"])


def _sweep_with_stale_after(platform: Platform, seconds: float, passes: int = 1) -> None:
    sweeper = platform.plane.sweeper
    sweeper.stale_after_s = seconds
    try:
        time.sleep(seconds * 2)
        for _ in range(passes):
            platform.on_plane(sweeper.redrive_lost())
    finally:
        sweeper.stale_after_s = platform.settings.stale_after_s


def test_only_phases_redis_holds_no_copy_of_are_resent(platform: Platform, tenant_client: TenantClient) -> None:
    tc, admin = tenant_client, platform.redis_admin()
    lane, out = lane_stream("idle"), out_stream("idle")
    pending, answered, lost, acked = (_submit(tc, "idle", {"n": n}) for n in range(4))
    # All four were read by replicas; `pending`'s is still at work on it, the others are gone.
    read = {Envelope.decode(f).ticket_id: mid for _, entries in admin.xreadgroup("bots", "replica", {lane: ">"})
            for mid, f in entries}
    unread = _submit(tc, "idle", {"n": 4})  # nobody has read this one yet
    for ticket in (answered, lost):
        admin.xack(lane, "bots", read[ticket])
        admin.xdel(lane, read[ticket])
    admin.xack(lane, "bots", read[acked])  # acknowledged, not deleted: nobody will ever deliver it again
    # `answered` ran: its result waits in the output stream, read by a collector that died before committing it.
    # `lost` left no trace anywhere (Redis lost its result, or the envelope itself).
    with admin.pipeline(transaction=True) as multi:
        multi.xadd(out, _result(platform, tc, answered, _phase(platform, answered), 1, "done", 1).encode())  # type: ignore[arg-type]
        multi.xreadgroup("collector", "collector-dead-host", {out: ">"}, count=1)
        _, [[_, [(stolen, _)]]] = multi.execute()
    try:
        _sweep_with_stale_after(platform, 0.05, passes=3)
        attempts = {t: _attempts(tc, t) for t in (unread, pending, answered, lost, acked)}
        assert attempts == {unread: 1, pending: 1, answered: 1, lost: 2, acked: 2}
        copies = sorted(Envelope.decode(f).ticket_id for _, f in admin.xrange(lane))
        assert copies == sorted([pending, unread, lost, acked, acked])  # `acked`'s ghost and its new copy
    finally:
        admin.xack(out, "collector", stolen)
        admin.xdel(out, stolen)
        admin.close()


def test_lost_phases_behind_a_long_wait_are_found(platform: Platform, tenant_client: TenantClient) -> None:
    """Candidates are paged through, all of them: phases waiting in the lane cannot hide a lost one."""
    batch = {"tickets": [{"bot": "idle", "input": {"n": n}} for n in range(25)]}
    ids = [t["id"] for t in tenant_client.http.post("/v1/tickets/batch", json=batch).json()["tickets"]]
    admin = platform.redis_admin()
    newest = admin.xrevrange(lane_stream("idle"), count=1)[0][0]
    admin.xdel(lane_stream("idle"), newest)
    admin.close()
    sweeper = platform.plane.sweeper
    sweeper.page = 10
    try:
        _sweep_with_stale_after(platform, 0.05)
    finally:
        sweeper.page = 5000
    lost = [t for t in ids if _attempts(tenant_client, t) == 2]
    assert len(lost) == 1 and all(_attempts(tenant_client, t) == 1 for t in ids if t not in lost)


def test_a_copy_of_a_phase_that_succeeded_is_skipped_unrun(platform: Platform, tenant_client: TenantClient) -> None:
    tc, admin = tenant_client, platform.redis_admin()
    ticket = _submit(tc, "idle", {"original": True})
    phase = _phase(platform, ticket)
    # The original was taken by a replica that keeps running it after Redis lost the lane's copy...
    admin.xreadgroup("bots", "slow-replica", {lane_stream("idle"): ">"}, count=1)
    admin.delete(lane_stream("idle"))
    admin.xgroup_create(lane_stream("idle"), "bots", id="0", mkstream=True)
    _sweep_with_stale_after(platform, 0.05)  # ... so the sweeper sends a second copy (attempt 2)
    assert _attempts(tc, ticket) == 2 and admin.xlen(lane_stream("idle")) == 1
    _publish(platform, _result(platform, tc, ticket, phase, 1, "done", {"original": True}))  # the original ends
    assert wait_done(tc.http, ticket)["status"] == "done"
    assert admin.exists(done_marker("idle", phase)) == 1
    assert 0 < admin.ttl(done_marker("idle", phase)) <= platform.settings.done_marker_ttl_s

    with node_processes(platform, "idle", 1):  # a replica comes up and reads the copy
        _wait_for(lambda: admin.xlen(lane_stream("idle")) == 0, 30, "the copy to leave the lane")
        _wait_for(lambda: admin.xlen(out_stream("idle")) == 0, 15, "the collector")
    ticket_now = tc.http.get(f"/v1/tickets/{ticket}").json()
    assert ticket_now["result"] == {"original": True} and ticket_now["duplicates"] == 0
    assert _executions(platform, ticket) == (1, 1)  # the copy was acknowledged, never run
    admin.close()


def test_a_second_success_is_recorded_billed_once_and_reported_as_a_duplicate(
        platform: Platform, tenant_client: TenantClient) -> None:
    tc = tenant_client
    ticket = _submit(tc, "idle", {"twice": True})
    phase = _phase(platform, ticket)
    before = REGISTRY.get_sample_value("oshal_duplicate_executions_total") or 0.0
    first = _result(platform, tc, ticket, phase, 1, "done", {"run": 1})
    # The same envelope, reclaimed from a replica that looked dead but was not, ran a second time.
    second = _result(platform, tc, ticket, phase, 1, "done", {"run": 2}, deliveries=2)
    _publish(platform, first)
    _publish(platform, second)
    _publish(platform, second)  # that execution's result delivered twice changes nothing
    shown = tc.http.get(f"/v1/tickets/{ticket}").json()
    assert shown["status"] == "done" and shown["result"] == {"run": 1}
    assert shown["duplicates"] == 1 and shown["calls"] == 2  # both ran, both are billed, each once
    assert _executions(platform, ticket) == (2, 2)
    assert (REGISTRY.get_sample_value("oshal_duplicate_executions_total") or 0.0) == before + 1
    admin = platform.redis_admin()
    assert admin.exists(done_marker("idle", phase)) == 1  # any further copy is skipped
    admin.close()
    cli = run_cli(platform, "ticket", "show", ticket, key=tc.key)
    assert cli.returncode == 0, cli.stderr
    assert "duplicates" in cli.stdout and "1 execution beyond the first success" in cli.stdout


def test_a_late_success_ends_a_dead_letter(platform: Platform, tenant_client: TenantClient) -> None:
    """A ticket with a successful execution never stays dead_letter."""
    tc = tenant_client
    ticket = _submit(tc, "idle", {"late": True})
    phase = _phase(platform, ticket)
    _publish(platform, _result(platform, tc, ticket, phase, 1, "dead_letter", deliveries=4))
    assert wait_done(tc.http, ticket)["status"] == "dead_letter"
    _publish(platform, _result(platform, tc, ticket, phase, 1, "done", {"late": True}, deliveries=3))
    shown = tc.http.get(f"/v1/tickets/{ticket}").json()
    assert shown["status"] == "done" and shown["result"] == {"late": True} and shown["error"] is None
    with platform.superuser() as conn:
        moves = conn.execute("SELECT from_status, to_status FROM ticket_events WHERE ticket_id = %s ORDER BY at",
                             (ticket,)).fetchall()
    assert moves[-2:] == [("in_progress", "dead_letter"), ("dead_letter", "done")]
