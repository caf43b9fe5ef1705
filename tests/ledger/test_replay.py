"""Record and replay: a multi-step, tool-using ticket re-runs from its recordings with the same steps, the same
tool calls and the same result, at $0 and without one outbound request; a change shows up in the diff."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from conftest import MODEL_BOT, Platform, TenantClient, make_tenant, wait_done
from external.fake_openai import FakeOpenAI, OpenAIUsage, tool_results_digest
from external.fake_shop import FakeShop
from shopfront import enable_shop

SHOP_KEY = "replay-shop-key-3c9d"


@pytest.fixture
def shop() -> Iterator[FakeShop]:
    with FakeShop(api_key=SHOP_KEY) as server:
        yield server


@pytest.fixture
def model(platform: Platform) -> Iterator[FakeOpenAI]:
    server: FakeOpenAI = platform.extra["openai"]
    saved = server.reply
    server.requests.clear()
    server.usage = OpenAIUsage(900, 60, 0)
    server.tool_turns = [[{"name": "shop__listProducts", "arguments": {"limit": 2}}]]
    server.reply = tool_results_digest
    yield server
    server.requests.clear()
    server.tool_turns, server.reply = [], saved


@pytest.fixture
def tenant(platform: Platform, shop: FakeShop, model: FakeOpenAI) -> TenantClient:
    ops = make_tenant(platform, "replayer", role="operator")
    enable_shop(platform, shop, ["listProducts"])
    assert ops.http.post("/v1/connections", json={"connector": "shop", "secret": SHOP_KEY}).status_code == 201
    assert ops.http.put(f"/v1/bots/{MODEL_BOT}/tools", json={"connector": "shop", "operation": "listProducts",
                                                               "mode": "auto"}).status_code == 200
    return ops


def _original(tenant: TenantClient, model: FakeOpenAI, shop: FakeShop) -> dict[str, Any]:
    ticket = tenant.http.post("/v1/tickets", params={"wait": 20}, json={
        "bot": MODEL_BOT, "input": {"prompt": "What do we sell? Check the catalog."}}).json()
    assert ticket["status"] == "done", ticket
    assert len(model.completions) == 2 and shop.api_requests  # model -> tool -> model, for real
    assert ticket["calls"] == 2 and ticket["cost_micros"] > 0
    return ticket


def _recordings(platform: Platform, ticket: str) -> list[tuple[str, int]]:
    with platform.superuser() as conn:
        return [(r[0], r[1]) for r in conn.execute(
            "SELECT kind, seq FROM recordings WHERE ticket_id = %s ORDER BY kind, seq", (ticket,)).fetchall()]


def test_a_recorded_tool_using_ticket_replays_identically_for_free_and_offline(
        platform: Platform, tenant: TenantClient, model: FakeOpenAI, shop: FakeShop) -> None:
    original = _original(tenant, model, shop)
    expected = [("model", 0), ("model", 1), ("tool", 0)]
    deadline = time.monotonic() + 30  # tool-call recordings are batched off the call's path: they land shortly after
    while (recorded := _recordings(platform, original["id"])) != expected and time.monotonic() < deadline:
        time.sleep(0.05)
    assert recorded == expected
    with platform.superuser() as conn:
        stored = json.dumps([r[0] for r in conn.execute("SELECT row_to_json(r) FROM recordings r").fetchall()])
    assert SHOP_KEY not in stored  # what is recorded never holds a credential
    outbound = (len(model.requests), len(shop.requests))

    created = tenant.http.post(f"/v1/tickets/{original['id']}/replay")
    assert created.status_code == 201, created.text
    replay = wait_done(tenant.http, created.json()["id"])
    assert replay["status"] == "done" and replay["replay_of"] == original["id"]
    assert replay["result"] == original["result"]
    assert (len(model.requests), len(shop.requests)) == outbound  # nothing left the platform
    diff = tenant.http.get(f"/v1/tickets/{replay['id']}/replay-diff").json()
    assert diff["identical"] is True, json.dumps(diff)[:3000]
    assert diff["calls"] == {"original": 3, "replay": 3, "differing": []}
    assert diff["spend"] == {"calls": 2, "cost_micros": 0, "live_calls": 0}
    with platform.superuser() as conn:
        sources = {r[0] for r in conn.execute("SELECT price_source FROM ledger WHERE ticket_id = %s",
                                              (replay["id"],)).fetchall()}
        reserved = conn.execute("SELECT count(*) FROM reservations WHERE ticket_id = %s", (replay["id"],)).fetchone()
    assert sources == {"replay"} and reserved == (0,)  # no budget is touched by a replay


def test_a_change_since_the_recording_shows_in_the_diff(platform: Platform, tenant: TenantClient,
                                                         model: FakeOpenAI, shop: FakeShop) -> None:
    """As if the persona had changed since: the recorded request of the first model call no longer matches
    what the bot sends now. The replay still answers from the recording (and stays offline) but reports it."""
    original = _original(tenant, model, shop)
    with platform.superuser() as conn:
        conn.execute("UPDATE recordings SET request = jsonb_set(request::jsonb, '{messages,0,content}', "
                     "'\"You were another persona.\"')::json WHERE ticket_id = %s AND kind = 'model' AND seq = 0",
                     (original["id"],))
    env = {k: v for k, v in os.environ.items() if not k.startswith("OSHAL_")}
    env.update(OSHAL_API_URL=platform.url, OSHAL_API_KEY=tenant.key, COLUMNS="200")
    done = subprocess.run([sys.executable, "-m", "oshal.cli.main", "ticket", "replay", original["id"], "--json"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr  # diverged
    diff = json.loads(done.stdout)
    assert diff["identical"] is False and diff["spend"]["cost_micros"] == 0
    [changed] = diff["calls"]["differing"]
    assert (changed["kind"], changed["seq"]) == ("model", 0)
    assert "another persona" in changed["original"] and "another persona" not in changed["replay"]


def test_only_finished_top_level_tickets_can_be_replayed(platform: Platform) -> None:
    tenant = make_tenant(platform, "impatient")
    running = tenant.http.post("/v1/tickets", json={"bot": "idle", "input": {}}).json()
    refused = tenant.http.post(f"/v1/tickets/{running['id']}/replay")
    assert refused.status_code == 409 and "only a finished ticket" in refused.json()["message"]
    assert tenant.http.post("/v1/tickets/01a21539-0000-7000-8000-000000000000/replay").status_code == 404
    done = tenant.http.post("/v1/tickets", params={"wait": 10}, json={"bot": "echo", "input": {"x": 1}}).json()
    plain = tenant.http.get(f"/v1/tickets/{done['id']}/replay-diff")
    assert plain.status_code == 422 and "not a replay" in plain.json()["message"]


def test_a_workflow_ticket_replays_the_same_steps_to_the_same_outcome(platform: Platform) -> None:
    ops = make_tenant(platform, "flows", role="operator")
    created = ops.http.post("/v1/tickets", json={"type": "ticket", "input": {"text": "checkout is down"}}).json()
    original = wait_done(ops.http, created["id"])
    assert original["status"] == "customer_action"
    replay = wait_done(ops.http, ops.http.post(f"/v1/tickets/{original['id']}/replay").json()["id"])

    def steps(ticket: str) -> list[str]:
        return [p["step"] for p in ops.http.get(f"/v1/tickets/{ticket}/timeline").json()["phases"]]

    assert replay["type"] == "ticket" and replay["replay_of"] == original["id"]
    assert (replay["status"], replay["result"]) == (original["status"], original["result"])
    assert steps(replay["id"]) == steps(original["id"]) == ["work", "review", "work", "review"]
    diff = ops.http.get(f"/v1/tickets/{replay['id']}/replay-diff").json()
    assert diff["identical"] is True and diff["spend"]["cost_micros"] == 0


def test_a_fan_out_replays_through_child_tickets_that_stand_for_the_originals(platform: Platform) -> None:
    ops = make_tenant(platform, "fanned", role="operator")
    created = ops.http.post("/v1/tickets", json={"type": "build", "input": {"request": "add a login page"}}).json()
    original = wait_done(ops.http, created["id"])
    assert original["status"] == "done"
    replay = wait_done(ops.http, ops.http.post(f"/v1/tickets/{original['id']}/replay").json()["id"])
    assert (replay["status"], replay["result"]) == (original["status"], original["result"])
    with platform.superuser() as conn:
        pairs = conn.execute(
            "SELECT c.replay_of, o.id FROM tickets c JOIN tickets o ON o.id = c.replay_of WHERE c.parent_id = %s "
            "ORDER BY c.id", (replay["id"],)).fetchall()
        originals = [r[0] for r in conn.execute("SELECT id FROM tickets WHERE parent_id = %s ORDER BY id",
                                                (original["id"],)).fetchall()]
    assert [p[0] for p in pairs] == originals and len(originals) == 2  # each child replays its counterpart
