"""Crash safety with real processes: SIGKILL mid-work, Redis losing its data, poison messages, replays."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from conftest import Platform, TenantClient, make_tenant, wait_done
from fleet_runner import node_argv, node_env
from oshal.control.loops.collector import UNFLUSHED_BATCH_MAX
from oshal.mesh.envelopes import CallUsage, Envelope, Result
from oshal.mesh.redis_keys import dead_stream, lane_stream, out_stream
from oshal.mesh.signing import DispatchSigner


@contextmanager
def node_processes(platform: Platform, bot: str, count: int) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Real node-host processes running one bot, each with the bot's own Redis credentials."""
    env, argv = node_env(platform, log_level="info"), node_argv(platform, bot)
    procs = [subprocess.Popen(argv, env=env) for _ in range(count)]
    try:
        _wait_for(lambda: _replicas(platform, bot) == count, 30, f"{count} replicas of {bot} online")
        yield procs
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()  # don't leave it behind; the failure below still reports the hang
                proc.wait()
                raise


def _replicas(platform: Platform, bot: str) -> int:
    bots = platform.client().get("/v1/bots").json()
    return int(next(b["replicas"] for b in bots if b["name"] == bot))


def _wait_for(condition, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _done_count(platform: Platform, tenant_id: str) -> int:
    with platform.superuser() as conn:
        row = conn.execute("SELECT count(*) FROM tickets WHERE tenant_id = %s AND status = 'done'",
                           (tenant_id,)).fetchone()
    return int(row[0]) if row else 0


def _ledger_per_ticket(platform: Platform, ids: list[str]) -> dict[str, int]:
    with platform.superuser() as conn:
        rows = conn.execute("SELECT t.id::text, count(l.call_id) FROM tickets t LEFT JOIN ledger l "
                            "ON l.ticket_id = t.id WHERE t.id = ANY(%s::uuid[]) GROUP BY t.id", (ids,)).fetchall()
    return {tid: n for tid, n in rows}


def test_sigkill_mid_work_completes_every_ticket_exactly_once(platform: Platform,
                                                               tenant_client: TenantClient) -> None:
    with node_processes(platform, "slow", 2) as (victim, survivor):
        batch = {"tickets": [{"bot": "slow", "input": {"n": i}} for i in range(120)]}
        ids = [t["id"] for t in tenant_client.http.post("/v1/tickets/batch", json=batch).json()["tickets"]]
        _wait_for(lambda: _done_count(platform, tenant_client.tenant_id) >= 10, 30, "first results")
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
        tickets = [wait_done(tenant_client.http, tid, timeout=60) for tid in ids]
        assert survivor.poll() is None

    assert [t["status"] for t in tickets] == ["done"] * 120
    assert [t["result"] for t in tickets] == [{"n": i} for i in range(120)]
    assert set(_ledger_per_ticket(platform, ids).values()) == {1}  # one call each, recorded once
    assert max(t["deliveries"] for t in tickets) >= 2  # the victim's in-flight work was reclaimed
    with platform.superuser() as conn:
        attempts = conn.execute("SELECT count(*), max(attempt) FROM attempts WHERE ticket_id = ANY(%s::uuid[])",
                                (ids,)).fetchone()
    assert attempts == (120, 1)


def test_redis_losing_all_data_mid_run_loses_no_ticket(platform: Platform, tenant_client: TenantClient) -> None:
    sweeper = platform.plane.sweeper
    with node_processes(platform, "slow", 1):
        batch = {"tickets": [{"bot": "slow", "input": {"n": i}} for i in range(40)]}
        ids = [t["id"] for t in tenant_client.http.post("/v1/tickets/batch", json=batch).json()["tickets"]]
        _wait_for(lambda: _done_count(platform, tenant_client.tenant_id) >= 5, 30, "first results")
        admin = platform.redis_admin()
        admin.flushall()
        admin.close()
        sweeper.stale_after_s = 1.0
        try:
            tickets = [wait_done(tenant_client.http, tid, timeout=60) for tid in ids]
        finally:
            sweeper.stale_after_s = platform.settings.stale_after_s
    assert [t["status"] for t in tickets] == ["done"] * 40
    assert [t["result"] for t in tickets] == [{"n": i} for i in range(40)]
    assert max(t["attempts"] for t in tickets) >= 2  # the lost ones were re-driven as new attempts
    ledger = _ledger_per_ticket(platform, ids)
    with platform.superuser() as conn:
        ran = dict(conn.execute("SELECT ticket_id::text, count(*) FROM attempts WHERE outcome = 'done' "
                                "AND ticket_id = ANY(%s::uuid[]) GROUP BY ticket_id", (ids,)).fetchall())
    assert ledger == ran  # every call that ran is recorded exactly once


def test_poison_message_dead_letters_after_max_deliveries_and_an_operator_requeues_it(
        platform: Platform) -> None:
    ops = make_tenant(platform, "ops", role="operator")
    tid = ops.http.post("/v1/tickets", json={"bot": "idle", "input": {"job": 7}}).json()["id"]
    admin = platform.redis_admin()
    lane = lane_stream("idle")
    # Three replicas take the message in turn and die before acknowledging it (deliveries 1..3).
    [(_, [(message_id, _)])] = admin.xreadgroup("bots", "ghost-1", {lane: ">"}, count=1)
    for ghost in ("ghost-2", "ghost-3"):
        admin.xclaim(lane, "bots", ghost, 0, [message_id])
    with node_processes(platform, "idle", 1):
        ticket = wait_done(ops.http, tid, timeout=30)
        assert ticket["status"] == "dead_letter"
        assert "delivered 4 times" in ticket["error"] and "max_deliveries=3" in ticket["error"]
        assert admin.xlen(dead_stream("idle")) == 1
        listed = ops.http.get("/v1/dead-letters").json()["items"]
        assert [t["id"] for t in listed] == [tid]

        member = make_tenant(platform, "viewer")
        assert member.http.post(f"/v1/tickets/{tid}/requeue").status_code == 403
        requeued = ops.http.post(f"/v1/tickets/{tid}/requeue")
        assert requeued.status_code == 200 and requeued.json()["attempts"] == 2
        ticket = wait_done(ops.http, tid, timeout=30)
    assert ticket["status"] == "done" and ticket["result"] == {"job": 7} and ticket["error"] is None
    assert ops.http.post(f"/v1/tickets/{tid}/requeue").status_code == 409
    admin.delete(dead_stream("idle"))
    admin.close()


def test_a_redelivered_result_changes_nothing_and_a_forged_one_is_dropped(
        platform: Platform, tenant_client: TenantClient) -> None:
    tid = tenant_client.http.post("/v1/tickets", json={"bot": "echo", "input": {"v": 1}}).json()["id"]
    ticket = wait_done(tenant_client.http, tid)
    with platform.superuser() as conn:
        phase_id, call_id = conn.execute("SELECT phase_id::text, call_id FROM ledger WHERE ticket_id = %s",
                                         (tid,)).fetchone()
    signer = DispatchSigner(platform.engines.dispatch_key)
    env = Envelope(tid, phase_id, 1, tenant_client.tenant_id, "echo", None)
    signed = Envelope(tid, phase_id, 1, tenant_client.tenant_id, "echo", None, signer.sign(env))
    replay = Result(signed, "done", {"v": "changed"}, calls=(CallUsage(call_id, "deterministic", "m", 5, 5),))
    other_tenant = str(uuid.uuid4())
    forged_env = Envelope(tid, phase_id, 2, other_tenant, "echo", None, signer.sign(env))
    forged = Result(forged_env, "done", {"v": "forged"}, calls=(CallUsage("forged:1:0", "openai", "gpt-4o", 9, 9),))
    admin = platform.redis_admin()
    for result in (replay, forged):
        admin.xadd(out_stream("echo"), result.encode())  # type: ignore[arg-type]
    _wait_for(lambda: admin.xlen(out_stream("echo")) == 0, 15, "collector to consume the results")
    admin.close()
    after = tenant_client.http.get(f"/v1/tickets/{tid}").json()
    assert after["result"] == {"v": 1} and after["calls"] == 1 and after["cost_micros"] == ticket["cost_micros"]
    with platform.superuser() as conn:
        assert conn.execute("SELECT count(*) FROM ledger").fetchone() == (1,)
        assert conn.execute("SELECT count(*) FROM attempts").fetchone() == (1,)


def test_a_dead_bot_shows_offline_within_one_heartbeat_ttl(platform: Platform) -> None:
    admin = platform.redis_admin()
    with node_processes(platform, "idle", 1) as (proc,):
        [key] = admin.keys("oshal:hb:idle:*")
        # Presence is a key with a TTL of one heartbeat period: nothing refreshes it once the bot dies.
        assert 0 < admin.pttl(key) <= 2000
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        _wait_for(lambda: _replicas(platform, "idle") == 0, 10, "the bot to show offline")
        assert admin.exists(key) == 0
    admin.close()


def test_a_dispatch_lost_between_commit_and_lane_is_redriven(platform: Platform,
                                                              tenant_client: TenantClient) -> None:
    tid = tenant_client.http.post("/v1/tickets", json={"bot": "idle", "input": {"lost": 1}}).json()["id"]
    admin = platform.redis_admin()
    admin.xtrim(lane_stream("idle"), maxlen=0)  # as if the process died after COMMIT, before XADD
    admin.close()
    sweeper = platform.plane.sweeper
    with node_processes(platform, "idle", 1):
        sweeper.stale_after_s = 0.5
        try:
            ticket = wait_done(tenant_client.http, tid, timeout=30)
        finally:
            sweeper.stale_after_s = platform.settings.stale_after_s
    assert ticket["status"] == "done" and ticket["result"] == {"lost": 1} and ticket["attempts"] == 2


def test_a_phase_waiting_in_its_lane_is_never_resent_nor_dead_lettered(platform: Platform,
                                                                        tenant_client: TenantClient) -> None:
    """Old is not lost: nobody runs `idle`, so its envelope waits in the lane however stale the phase is."""
    tid = tenant_client.http.post("/v1/tickets", json={"bot": "idle", "input": {"waits": 1}}).json()["id"]
    sweeper = platform.plane.sweeper
    sweeper.stale_after_s = 0.05
    try:
        time.sleep(0.1)
        for _ in range(5):  # more passes than the old limit of three re-sends
            platform.on_plane(sweeper.sweep())
        waiting = tenant_client.http.get(f"/v1/tickets/{tid}").json()
        admin = platform.redis_admin()
        assert admin.xlen(lane_stream("idle")) == 1  # the original, and no copy of it
        assert admin.xlen(dead_stream("idle")) == 0
        admin.close()
        assert waiting["status"] == "in_progress" and waiting["attempts"] == 1
        with node_processes(platform, "idle", 1):
            ticket = wait_done(tenant_client.http, tid, timeout=30)
    finally:
        sweeper.stale_after_s = platform.settings.stale_after_s
    assert ticket["status"] == "done" and ticket["result"] == {"waits": 1} and ticket["attempts"] == 1


def test_results_left_pending_by_a_dead_collector_are_taken_over(platform: Platform,
                                                                 tenant_client: TenantClient) -> None:
    """A collector on another host read a result and died before committing it: the live one commits it."""
    tid = tenant_client.http.post("/v1/tickets", json={"bot": "idle", "input": {"orphan": 1}}).json()["id"]
    admin = platform.redis_admin()
    [(_, [(message_id, fields)])] = admin.xreadgroup("bots", "ghost", {lane_stream("idle"): ">"}, count=1)
    env = Envelope.decode(fields)
    result = Result(env, "done", env.input, calls=(CallUsage(f"{env.phase_id}:1:0", "deterministic", "m", 1, 1),))
    # Atomically (MULTI): the bot's result lands and the dead collector reads it, so the entry is pending for
    # that collector and invisible to the live one's ">" reads.
    with admin.pipeline(transaction=True) as multi:
        multi.xadd(out_stream("idle"), result.encode())  # type: ignore[arg-type]
        multi.xreadgroup("collector", "collector-dead-host", {out_stream("idle"): ">"}, count=1)
        _, stolen = multi.execute()
    assert stolen and stolen[0][1]
    admin.xack(lane_stream("idle"), "bots", message_id)
    admin.xdel(lane_stream("idle"), message_id)
    admin.close()
    collector = platform.plane.collector
    collector.claim_idle_ms = 1  # its own loop may now take the orphan over too; either way it gets committed
    time.sleep(0.01)  # XAUTOCLAIM takes entries idle for at least claim_idle_ms
    try:
        platform.on_plane(collector.claim_orphans())
        ticket = wait_done(tenant_client.http, tid, timeout=15)
    finally:
        collector.claim_idle_ms = 60_000
    assert ticket["status"] == "done" and ticket["result"] == {"orphan": 1} and ticket["calls"] == 1


def test_results_committed_without_waiting_for_the_disk_survive_a_postgres_crash_exactly_once(
        platform: Platform, tenant_client: TenantClient) -> None:
    """The collector's commits do not wait for the disk; their stream entries are acknowledged only once the WAL is
    flushed past them. Postgres is SIGKILLed, with its WAL writer stopped and every backend killed with it, right
    after the results were committed: whatever it lost is re-read from Redis and recorded, each result once."""
    assert platform.engines.postgres is not None
    postmaster = platform.engines.postgres.server_pid()
    writer = subprocess.run(["pgrep", "-P", str(postmaster), "-f", "walwriter"], capture_output=True, text=True)
    [walwriter] = [int(pid) for pid in writer.stdout.split()]
    batch = {"tickets": [{"bot": "echo", "input": {"n": i}} for i in range(60)]}
    collector = platform.plane.collector
    collector.unflushed_batch_max = len(batch["tickets"])  # every batch commits without waiting for the disk
    os.kill(walwriter, signal.SIGSTOP)  # asynchronous commits now reach the disk only when something else flushes
    try:
        ids = [t["id"] for t in tenant_client.http.post("/v1/tickets/batch", json=batch).json()["tickets"]]
        _wait_for(lambda: _done_count(platform, tenant_client.tenant_id) == len(ids), 30,
                  "every result committed")
    finally:
        platform.kill_engine("postgres", children=True)  # the stopped WAL writer too: it never flushes
    assert platform.engines.postgres.server_pid() not in (None, postmaster)

    try:
        tickets = [wait_done(tenant_client.http, tid, timeout=60) for tid in ids]
    finally:
        collector.unflushed_batch_max = UNFLUSHED_BATCH_MAX
    assert [t["status"] for t in tickets] == ["done"] * len(ids)
    assert [t["result"] for t in tickets] == [{"n": i} for i in range(len(ids))]
    assert set(_ledger_per_ticket(platform, ids).values()) == {1}  # one call each, recorded once
    with platform.superuser() as conn:
        attempts = conn.execute("SELECT count(*), count(DISTINCT phase_id), max(attempt) FROM attempts "
                                "WHERE ticket_id = ANY(%s::uuid[])", (ids,)).fetchone()
    assert attempts == (len(ids), len(ids), 1)  # one execution each, recorded once, none re-driven
    admin = platform.redis_admin()
    _wait_for(lambda: int(admin.xpending(out_stream("echo"), "collector")["pending"]) == 0, 30,
              "the re-read results to be acknowledged")
    admin.close()
