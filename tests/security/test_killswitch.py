"""Kill switches: stop new dispatch and tool calls at once, hold work without failing it, release it after."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx

from conftest import Platform, make_tenant, wait_done
from oshal.mesh.envelopes import Envelope
from oshal.mesh.redis_keys import KILL_SWITCHES_LOADED, lane_stream


def _phase(platform: Platform, ticket: str) -> tuple[str, int]:
    with platform.superuser() as conn:
        row = conn.execute("SELECT status, attempt FROM phases WHERE ticket_id = %s", (ticket,)).fetchone()
    return str(row[0]), int(row[1])


def _lane_length(platform: Platform, bot: str) -> int:
    r = platform.redis_admin()
    try:
        return int(r.xlen(lane_stream(bot)))
    finally:
        r.close()


def test_a_bot_switch_holds_new_work_and_release_runs_it(platform: Platform) -> None:
    tenant = make_tenant(platform, "held")
    with platform.client() as admin:
        engaged = admin.post("/v1/kill", json={"bot": "echo", "reason": "investigating a leak"})
        assert engaged.status_code == 201 and engaged.json()["scope"] == "bot:echo"
        again = admin.post("/v1/kill", json={"bot": "echo", "reason": "twice"})
        assert again.status_code == 409
    # Visible everywhere: to every caller, on the bot, in the security summary.
    assert [k["scope"] for k in tenant.http.get("/v1/kill").json()] == ["bot:echo"]
    echo = next(b for b in tenant.http.get("/v1/bots").json() if b["name"] == "echo")
    assert "investigating a leak" in echo["kill_switch"]
    with platform.client() as admin:
        assert admin.get("/v1/security/summary").json()["kill_switches"] == ["bot:echo"]

    held = tenant.http.post("/v1/tickets", params={"wait": 1}, json={"bot": "echo", "input": {"n": 1}}).json()
    other = tenant.http.post("/v1/tickets", params={"wait": 10}, json={"bot": "summarizer",
                                                                       "input": {"text": "a. b."}}).json()
    assert other["status"] == "done"  # only echo is stopped
    assert held["status"] == "in_progress"
    assert _phase(platform, held["id"]) == ("queued", 0)  # held before the lane: its attempt is not spent
    time.sleep(1.5)  # sweeper passes (every 0.5 s) must leave it alone, not re-drive or dead-letter it
    assert _phase(platform, held["id"]) == ("queued", 0)

    with platform.client() as admin:
        released = admin.delete("/v1/kill/echo")
    assert released.status_code == 200 and released.json()["dispatched"] >= 1
    done = wait_done(tenant.http, held["id"])
    assert done["status"] == "done" and done["result"] == {"n": 1}
    assert _phase(platform, held["id"]) == ("done", 1)
    assert tenant.http.get("/v1/kill").json() == []


def test_the_global_switch_stops_everything_and_only_a_platform_operator_sets_it(platform: Platform) -> None:
    ops = make_tenant(platform, "other-ops", role="operator")
    refused = ops.http.post("/v1/kill", json={"reason": "not mine to pull"})
    assert refused.status_code == 403 and "system tenant" in refused.json()["message"]
    member = make_tenant(platform, "plain-member")
    assert member.http.delete("/v1/kill/global").status_code == 403

    with platform.client() as admin:
        assert admin.post("/v1/kill", json={"reason": "incident 42"}).status_code == 201
        before = {bot: _lane_length(platform, bot) for bot in ("echo", "summarizer")}
        tickets = [ops.http.post("/v1/tickets", json={"bot": bot, "input": {"text": "x"}}).json()["id"]
                   for bot in ("echo", "summarizer")]
        assert {bot: _lane_length(platform, bot) for bot in before} == before  # nothing reached a lane
        assert all(_phase(platform, t) == ("queued", 0) for t in tickets)
        assert admin.delete("/v1/kill/global").json()["dispatched"] == 2
    assert all(wait_done(ops.http, t)["status"] == "done" for t in tickets)


def test_a_lost_mirror_fails_closed_until_rebuilt(platform: Platform) -> None:
    """Redis losing the switches must not let work through: without the mirror, dispatch holds everything."""
    tenant = make_tenant(platform, "mirror")
    r = platform.redis_admin()
    r.delete(KILL_SWITCHES_LOADED)
    r.close()
    ticket = tenant.http.post("/v1/tickets", json={"bot": "echo", "input": {"m": 1}}).json()
    # The dispatcher noticed the missing mirror, rebuilt it from Postgres; the sweeper dispatches what it held.
    done = wait_done(tenant.http, ticket["id"])
    assert done["status"] == "done"


def test_a_killed_bot_may_not_call_tools(platform: Platform) -> None:
    """The gateway refuses a killed bot's tool call, on both the one-statement and the general path, and audits
    the refusal."""
    from oshal.connectors.broker import GrantRequest

    tenant = make_tenant(platform, "tools-held")
    ticket = tenant.http.post("/v1/tickets", params={"wait": 10}, json={"bot": "echo", "input": {}}).json()
    with platform.client() as admin:
        assert admin.post("/v1/kill", json={"bot": "echo", "reason": "tools off"}).status_code == 201
    request = GrantRequest(_uuid(tenant.tenant_id), "echo", _uuid(ticket["id"]), "shop", "listProducts", {})
    refused: Any = platform.on_plane(_refusal(platform, request))
    assert "kill switch bot:echo is engaged: tools off" in refused
    with platform.client() as admin:
        admin.delete("/v1/kill/echo")


async def _refusal(platform: Platform, request: Any) -> str:
    from oshal.errors import Forbidden

    try:
        await platform.plane.broker.issue(request)
    except Forbidden as e:
        return e.message
    return "granted"


def _uuid(value: str) -> Any:
    from uuid import UUID

    return UUID(value)


def test_a_killed_bot_may_not_call_its_model(platform: Platform) -> None:
    tenant = make_tenant(platform, "models-held")
    with platform.client() as admin:
        assert admin.post("/v1/kill", json={"bot": "writer", "reason": "model off"}).status_code == 201
    try:
        # Work already on the lane when the switch was pulled reaches the bot, but its model call is refused.
        server = platform.extra["openai"]
        server.requests.clear()
        ticket = tenant.http.post("/v1/tickets", json={"bot": "echo", "input": {}}).json()["id"]
        phase = _phase_id(platform, ticket)
        env = Envelope(ticket, phase, 1, tenant.tenant_id, "writer", None)
        env = env.signed(platform.plane.signer.sign(env))
        token = json.loads((platform.home / "run" / "bot-tokens.json").read_text())["writer"]
        refused = httpx.post(f"{platform.url}/v1/models/begin", headers={"X-Oshal-Bot-Token": token}, json={
            "envelope": {"t": ticket, "p": phase, "a": 1, "n": tenant.tenant_id, "b": "writer", "g": env.sig},
            "seq": 0, "provider": "openai", "model": "gpt-4o-mini", "input_bytes": 10, "max_output_tokens": 10,
            "request_sha256": "0" * 64})
        assert refused.status_code == 403 and "kill switch bot:writer is engaged" in refused.json()["message"]
        assert server.requests == []
    finally:
        with platform.client() as admin:
            admin.delete("/v1/kill/writer")


def _phase_id(platform: Platform, ticket: str) -> str:
    with platform.superuser() as conn:
        return str(conn.execute("SELECT id FROM phases WHERE ticket_id = %s", (ticket,)).fetchone()[0])


def test_a_rebuild_from_a_stale_read_cannot_undo_a_switch(platform: Platform) -> None:
    """A replica that read Postgres before another engaged a switch must not rebuild the mirror without it."""
    from oshal.mesh.kill_gate import _REBUILD
    from oshal.mesh.redis_keys import KILL_SWITCHES, KILL_SWITCHES_VERSION

    r = platform.redis_admin()
    try:
        stale_version = r.get(KILL_SWITCHES_VERSION) or b"0"  # what a slow replica read before the change
        with platform.client() as admin:
            assert admin.post("/v1/kill", json={"bot": "echo", "reason": "race"}).status_code == 201
        applied = r.eval(_REBUILD, 3, KILL_SWITCHES, "oshal:kill:loaded", KILL_SWITCHES_VERSION,
                         stale_version.decode())  # its rebuild, from a read with no switch in it
        assert applied == 0 and r.hget(KILL_SWITCHES, "bot:echo") == b"race"
    finally:
        r.close()
        with platform.client() as admin:
            admin.delete("/v1/kill/echo")
