"""Remote nodes end to end: a node on "another machine" (a second OS process with its own OSHAL_HOME, talking only
HTTP and Redis) enrolls, joins, works its bot's lane, and is cut off on revoke without losing a ticket."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import redis as sync_redis

from conftest import Platform, TenantClient, make_tenant, run_cli, wait_done
from oshal.mesh.redis_keys import LANE_GROUP, lane_stream

BOT = "slow"  # a test bot no in-process node runs: only the nodes these tests start work its lane
_FORGED = {"t": "00000000-0000-7000-8000-000000000001", "p": "00000000-0000-7000-8000-000000000002", "a": 1,
           "n": "00000000-0000-7000-8000-000000000003", "b": BOT, "g": "0" * 64}


def _wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _node_env(home: Path) -> dict[str, str]:
    """The other machine's environment: nothing of the platform's (no OSHAL_* setting, its own home)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OSHAL_")}
    env.update({"OSHAL_HOME": str(home), "OSHAL_LOG_LEVEL": "info"})
    return env


def _enroll(platform: Platform, ttl: str = "10m") -> dict[str, Any]:
    done = run_cli(platform, "node", "enroll", "--bot", BOT, "--ttl", ttl, "--label", "test machine", "--json")
    assert done.returncode == 0, done.stderr
    doc: dict[str, Any] = json.loads(done.stdout)
    assert doc["code"].startswith("onj_") and doc["bot"] == BOT
    return doc


def _nodes(platform: Platform) -> dict[str, dict[str, Any]]:
    with platform.client() as admin:
        listed = admin.get("/v1/nodes")
    assert listed.status_code == 200, listed.text
    return {row["id"]: row for row in listed.json()}


@contextmanager
def joined_node(platform: Platform, home: Path) -> Iterator[tuple[subprocess.Popen[bytes], dict[str, Any]]]:
    """`oshal node join` in a process of its own; yields it once the node beats, with the identity it kept."""
    enrolled = _enroll(platform)
    argv = [sys.executable, "-m", "oshal.cli.main", "node", "join", enrolled["code"], "--api", platform.url,
            "--bot", BOT]
    proc = subprocess.Popen(argv, env=_node_env(home), stdin=subprocess.DEVNULL)
    try:
        _wait_for(lambda: _nodes(platform)[enrolled["node_id"]]["state"] == "online" or proc.poll() is not None, 60,
                  "the joined node to come online")
        assert proc.poll() is None, f"oshal node join exited with {proc.returncode}"
        identity: dict[str, Any] = json.loads((home / "remote-node" / "identity.json").read_text())
        yield proc, identity
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise


def _submit(tenant: TenantClient, count: int) -> list[str]:
    created = tenant.http.post("/v1/tickets/batch", json={"tickets": [{"bot": BOT, "input": {"n": i}}
                                                                       for i in range(count)]})
    assert created.status_code in (200, 201), created.text
    return [str(t["id"]) for t in created.json()["tickets"]]


def _consumers(platform: Platform, ticket_ids: list[str]) -> list[str]:
    with platform.superuser() as conn:
        rows = conn.execute("SELECT consumer FROM attempts WHERE ticket_id = ANY(%s::uuid[]) AND outcome = 'done'",
                            (ticket_ids,)).fetchall()
    return [str(r[0]) for r in rows]


def _gateway_status(platform: Platform, token: str) -> int:
    response = httpx.post(f"{platform.url}/v1/tools/list", json={"envelope": _FORGED},
                          headers={"X-Oshal-Bot-Token": token}, timeout=30)
    return response.status_code


def test_a_joined_node_works_its_lane_and_revoke_cuts_it_off_without_losing_tickets(
        platform: Platform, tenant_client: TenantClient, tmp_path: Path) -> None:
    home_a, home_b = tmp_path / "machine-a", tmp_path / "machine-b"
    with joined_node(platform, home_a) as (proc_a, identity_a):
        node_a = identity_a["node_id"]
        assert (home_a / "remote-node" / "identity.json").stat().st_mode & 0o777 == 0o600
        assert (home_a / "remote-node").stat().st_mode & 0o777 == 0o700
        assert identity_a["redis_url"].split("://", 1)[1].startswith(f"node-{node_a}:")  # its own ACL user

        # it works its bot's lane, as its own consumer
        first = _submit(tenant_client, 8)
        for ticket in first:
            assert wait_done(tenant_client.http, ticket)["status"] == "done"
        assert all(c.startswith(f"node-{node_a}-") for c in _consumers(platform, first))
        # its gateway token is the node's own: accepted (the forged envelope is what is refused), and it reads only
        # its bot's keys
        assert _gateway_status(platform, identity_a["gateway_token"]) == 403
        own = sync_redis.Redis.from_url(identity_a["redis_url"])
        assert "pending" in own.xpending(lane_stream(BOT), LANE_GROUP)
        with pytest.raises(sync_redis.exceptions.NoPermissionError, match="keys"):
            own.xpending(lane_stream("echo"), LANE_GROUP)
        own.close()

        # revoked with work in flight (200 tickets are seconds of work for its 8 slots): cut off at once, the work
        # waits in the lane for another replica
        in_flight = _submit(tenant_client, 200)
        _wait_for(lambda: len(_consumers(platform, in_flight)) > 0, 30, "node A to take work")
        with platform.client() as admin:
            revoked = admin.post(f"/v1/nodes/{node_a}/revoke")
        assert revoked.status_code == 200, revoked.text
        assert revoked.json()["state"] == "revoked"
        assert revoked.json()["connections_closed"] >= 1  # its live connections, closed
        with pytest.raises(sync_redis.exceptions.AuthenticationError):
            sync_redis.Redis.from_url(identity_a["redis_url"]).xpending(lane_stream(BOT), LANE_GROUP)
        assert _gateway_status(platform, identity_a["gateway_token"]) == 401
        assert _nodes(platform)[node_a]["state"] == "revoked"
        queued_after = _submit(tenant_client, 5)  # nobody reads the lane now: they wait
        assert proc_a.poll() is None  # still running, but locked out: it takes nothing more
        left = [t for t in in_flight + queued_after
                if tenant_client.http.get(f"/v1/tickets/{t}").json()["status"] != "done"]
        assert set(queued_after) <= set(left)

        with joined_node(platform, home_b) as (_, identity_b):
            for ticket in in_flight + queued_after:
                assert wait_done(tenant_client.http, ticket, timeout=60)["status"] == "done", ticket
            node_b = identity_b["node_id"]
            assert _nodes(platform)[node_b]["state"] == "online"
        assert all(c.startswith(f"node-{node_b}-") for c in _consumers(platform, queued_after))
    with platform.superuser() as conn:
        taken_over = conn.execute(
            "SELECT count(*) FROM attempts WHERE ticket_id = ANY(%s::uuid[]) AND consumer LIKE %s AND deliveries > 1",
            (in_flight, f"node-{node_b}-%")).fetchone()
    assert taken_over is not None and taken_over[0] >= 1  # what A held when it was cut off, B re-ran
    with platform.superuser() as conn:
        done = conn.execute("SELECT count(*) FROM attempts WHERE ticket_id = ANY(%s::uuid[]) AND outcome = 'done'",
                            (in_flight + queued_after,)).fetchone()
        actions = {row[0] for row in conn.execute(
            "SELECT action FROM audit_log WHERE target = ANY(%s)", ([node_a, node_b],)).fetchall()}
    assert done is not None and done[0] == len(in_flight) + len(queued_after)  # every ticket once, none lost
    assert {"node.enroll", "node.join", "node.revoke"} <= actions
    listed = run_cli(platform, "node", "list", "--wide")
    assert listed.returncode == 0 and node_a in listed.stdout and "revoked" in listed.stdout, listed.stdout


def _join(platform: Platform, code: str, bot: str | None = BOT) -> httpx.Response:
    return httpx.post(f"{platform.url}/v1/nodes/join", json={"code": code, "bot": bot, "hostname": "test"},
                      timeout=30)


def test_a_code_works_once_expires_and_names_its_bot(platform: Platform) -> None:
    code = _enroll(platform)["code"]
    wrong_bot = _join(platform, code, bot="echo")
    assert wrong_bot.status_code == 403 and "not 'echo'" in wrong_bot.json()["message"]
    first = _join(platform, code)  # the refusal above did not use the code up
    assert first.status_code == 200, first.text
    assert set(first.json()) >= {"node_id", "redis_url", "gateway_token", "manifest", "worker"}
    again = _join(platform, code)
    assert again.status_code == 401 and "already redeemed" in again.json()["message"]
    assert "gateway_token" not in again.text and "redis_url" not in again.text

    expiring = _enroll(platform, ttl="1s")
    expires = expiring["expires_at"]
    time.sleep(1.2)
    late = _join(platform, expiring["code"])
    assert late.status_code == 401 and "expired" in late.json()["message"], (late.text, expires)
    assert _nodes(platform)[expiring["node_id"]]["state"] == "expired"

    unknown = _join(platform, "onj_" + "x" * 43)
    assert unknown.status_code == 401 and "unknown enrollment code" in unknown.json()["message"]
    malformed = _join(platform, "not-a-code")
    assert malformed.status_code == 401 and "malformed" in malformed.json()["message"]

    def refusal_audited() -> bool:  # refusals are written in batches (every half second)
        with platform.superuser() as conn:
            row = conn.execute("SELECT count(*) FROM audit_log WHERE action = 'node.join_refused' "
                               "AND detail->>'reason' LIKE '%%already redeemed%%'").fetchone()
        return row is not None and row[0] >= 1

    _wait_for(refusal_audited, 30, "the refused join in the audit log")

    with platform.client() as admin:
        too_long = admin.post("/v1/nodes/enrollments", json={"bot": BOT, "ttl_s": 2 * 86400})
        assert too_long.status_code == 422 and "24 h" in too_long.json()["message"]
        unknown_bot = admin.post("/v1/nodes/enrollments", json={"bot": "no-such-bot"})
        assert unknown_bot.status_code == 422 and "unknown bot" in unknown_bot.json()["message"]
        pending = admin.post("/v1/nodes/enrollments", json={"bot": BOT}).json()
    voided = run_cli(platform, "node", "revoke", pending["node_id"], "--json")
    assert voided.returncode == 0 and json.loads(voided.stdout)["connections_closed"] == 0, voided.stderr
    void = _join(platform, pending["code"])
    assert void.status_code == 401 and "revoked" in void.json()["message"]


def test_only_platform_operators_enroll_list_and_revoke_and_tenants_never_see_nodes(platform: Platform) -> None:
    enrolled = _enroll(platform)
    acme = make_tenant(platform, "acme-ops", role="operator")
    try:
        assert acme.http.post("/v1/nodes/enrollments", json={"bot": BOT}).status_code == 403
        assert acme.http.get("/v1/nodes").status_code == 403
        assert acme.http.post(f"/v1/nodes/{enrolled['node_id']}/revoke").status_code == 403
    finally:
        acme.http.close()
    assert _nodes(platform)[enrolled["node_id"]]["state"] == "pending"  # the refused revoke changed nothing
    # row-level security: the API's role, in the tenant's transaction, sees no node at all
    with psycopg.connect(platform.engines.api_url, autocommit=True) as conn, conn.transaction():
        conn.execute("SELECT set_config('oshal.tenant_id', %s, true)", (acme.tenant_id,))
        row = conn.execute("SELECT count(*) FROM nodes").fetchone()
    assert row is not None and row[0] == 0


def test_redis_that_lost_a_nodes_user_gets_it_back(platform: Platform) -> None:
    code = _enroll(platform)["code"]
    joined = _join(platform, code).json()
    admin = platform.redis_admin()
    try:
        admin.execute_command("ACL", "DELUSER", f"node-{joined['node_id']}")
        with pytest.raises(sync_redis.exceptions.AuthenticationError):
            sync_redis.Redis.from_url(joined["redis_url"]).ping()
        restored = platform.on_plane(platform.plane.nodes.restore_users())
        assert str(joined["node_id"]) in {str(n) for n in restored}
        node = sync_redis.Redis.from_url(joined["redis_url"])
        assert node.ping()  # the same password works again
        node.close()
    finally:
        admin.close()


def test_join_refuses_plain_http_to_another_host_before_sending_anything(platform: Platform,
                                                                          tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "oshal.cli.main", "node", "join", "onj_whatever", "--api",
                           "http://192.0.2.10:8800"], env=_node_env(tmp_path), capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 3, done.stderr
    assert "over plain HTTP" in done.stderr
    assert not (tmp_path / "remote-node").exists()
