"""A rolling upgrade of a bot: two node processes on one lane, one stopped with SIGTERM mid-run (as Compose and
Kubernetes stop a container), a replacement started; every ticket is done exactly once.

tests/control/test_crash_safety.py covers SIGKILL (the lost replica's messages are reclaimed by the survivor); this is
the orderly path an upgrade takes: the stopped node finishes and flushes what it holds, so nothing is even redelivered.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from conftest import Platform, TenantClient, wait_done
from fleet_runner import node_argv, node_env

BOT = "slow"  # 150 ms per job, 8 at a time per replica: a run long enough to stop a replica in the middle of it


def _node(platform: Platform) -> subprocess.Popen[bytes]:
    return subprocess.Popen(node_argv(platform, BOT, "--replicas", "1"), env=node_env(platform))


@contextmanager
def _stopped_at_exit(procs: list[subprocess.Popen[bytes]]) -> Iterator[list[subprocess.Popen[bytes]]]:
    try:
        yield procs
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _wait_for(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _replicas(platform: Platform) -> int:
    bots = platform.client().get("/v1/bots").json()
    return int(next(b["replicas"] for b in bots if b["name"] == BOT))


def _done(platform: Platform, tenant_id: str) -> int:
    with platform.superuser() as conn:
        row = conn.execute("SELECT count(*) FROM tickets WHERE tenant_id = %s AND status = 'done'",
                           (tenant_id,)).fetchone()
    return int(row[0]) if row else 0


def test_sigterm_one_replica_mid_run_then_replace_it_every_ticket_done_once(
        platform: Platform, tenant_client: TenantClient) -> None:
    with _stopped_at_exit([_node(platform), _node(platform)]) as procs:
        _wait_for(lambda: _replicas(platform) == 2, 30, "two replicas online")
        batch = {"tickets": [{"bot": BOT, "input": {"n": i}} for i in range(160)]}
        created = tenant_client.http.post("/v1/tickets/batch", json=batch)
        assert created.status_code == 201, created.text
        ids = [t["id"] for t in created.json()["tickets"]]
        _wait_for(lambda: _done(platform, tenant_client.tenant_id) >= 16, 30, "the first results")

        old = procs[0]
        old.send_signal(signal.SIGTERM)  # the upgrade stops the old container
        assert old.wait(30) == 0  # drained: it finished and flushed what it held, then exited cleanly
        assert _done(platform, tenant_client.tenant_id) < len(ids)  # it really was stopped mid-run
        procs.append(_node(platform))  # the new version's container
        _wait_for(lambda: _replicas(platform) == 2, 30, "the replacement online")
        tickets = [wait_done(tenant_client.http, tid, timeout=90) for tid in ids]

    assert [t["status"] for t in tickets] == ["done"] * len(ids)
    assert [t["result"] for t in tickets] == [{"n": i} for i in range(len(ids))]
    assert {t["deliveries"] for t in tickets} == {1}  # nothing the stopped node held was redelivered
    with platform.superuser() as conn:
        attempts = conn.execute("SELECT count(*), count(DISTINCT ticket_id), max(attempt) FROM attempts "
                                "WHERE ticket_id = ANY(%s::uuid[])", (ids,)).fetchone()
        ledger = conn.execute("SELECT count(*), count(DISTINCT ticket_id) FROM ledger "
                              "WHERE ticket_id = ANY(%s::uuid[])", (ids,)).fetchone()
    assert attempts == (len(ids), len(ids), 1)  # one execution each: no loss, no duplicate result
    assert ledger == (len(ids), len(ids))  # one cost row each
