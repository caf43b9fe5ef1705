"""The topology views drawn from a running platform: its live bots, stores, controls and drift, over the API
and the CLI, for platform operators only."""

from __future__ import annotations

import json
from typing import Any

import pytest

from conftest import Platform, make_tenant, run_cli, wait_online
from oshal.topology.render import MEDIA_TYPES
from oshal.topology.views import VIEWS


def _view(platform: Platform, name: str, fmt: str = "json") -> Any:
    with platform.client() as admin:
        response = admin.get(f"/v1/topology/{name}", params={"format": fmt})
    assert response.status_code == 200, response.text
    return json.loads(response.text) if fmt == "json" else response


@pytest.mark.parametrize("name", sorted(VIEWS))
def test_a_platform_operator_draws_every_view_in_every_format(platform: Platform, name: str) -> None:
    for fmt, media_type in MEDIA_TYPES.items():
        response = _view(platform, name, fmt) if fmt != "json" else None
        if response is not None:
            assert response.headers["content-type"].startswith(media_type.split(";")[0]) and response.text.strip()
    diagram = _view(platform, name)
    assert diagram["view"] == name and (diagram["nodes"] or diagram["notes"])


def test_the_deployment_view_shows_live_bots_stores_and_drift(platform: Platform) -> None:
    wait_online(platform, "echo")
    redis = platform.redis_admin()
    redis.set("oshal:hb:stray:replica-1", "{}", px=30_000)  # a bot that beats but no manifest declares
    try:
        diagram = _view(platform, "deployment")
    finally:
        redis.delete("oshal:hb:stray:replica-1")
    health = {n["id"]: n["health"] for n in diagram["nodes"]}
    assert health["bot_echo"] == "ok" and health["store_postgres"] == "ok" and health["store_redis"] == "ok"
    assert health["bot_idle"] == "down"  # declared in the test fleet, never run
    assert health["bot_stray"] == "degraded"
    assert any(note.startswith("bot idle is declared") for note in diagram["notes"])
    assert "bot stray runs but is not declared in the fleet" in diagram["notes"]


def test_the_security_view_shows_forced_rls_and_the_kill_switches(platform: Platform) -> None:
    diagram = _view(platform, "security")
    labels = {n["id"]: (n["label"], n["health"]) for n in diagram["nodes"]}
    label, health = labels["control_enforced_row-level_security"]
    forced, _, total = label.split(": ")[1].split()[:3]
    assert health == "ok" and forced == total and int(total) > 10
    assert labels["control_enforced_kill_switches"] == ("kill switches: none engaged", "ok")


def test_the_workflows_view_draws_the_lifecycle_and_each_workflow(platform: Platform) -> None:
    diagram = _view(platform, "workflows")
    ids = {n["id"] for n in diagram["nodes"]}
    assert {"state_in_progress", "state_done", "wf_build"} <= ids
    assert {"source": "state_in_progress", "target": "state_done", "label": ""} in diagram["edges"]


def test_tenants_are_refused_and_bad_names_are_422(platform: Platform) -> None:
    member, operator = make_tenant(platform, "topo-a"), make_tenant(platform, "topo-b", role="operator")
    for client in (member, operator):
        assert client.http.get("/v1/topology/system").status_code == 403
    with platform.client() as admin:
        assert admin.get("/v1/topology/marketing").status_code == 422
        assert admin.get("/v1/topology/system", params={"format": "png"}).status_code == 422


def test_the_cli_draws_a_view_and_names_a_wrong_one(platform: Platform) -> None:
    drawn = run_cli(platform, "diagram", "deployment", "--format", "dot")
    assert drawn.returncode == 0, drawn.stderr
    assert drawn.stdout.startswith("digraph deployment {") and "bot_echo [label=" in drawn.stdout
    wrong = run_cli(platform, "diagram", "marketing")
    assert wrong.returncode != 0 and "marketing" in wrong.stderr


def test_with_redis_unreachable_the_bots_are_drawn_unknown_not_down(platform: Platform) -> None:
    from conftest import free_port
    from oshal.mesh.redis import connect
    from oshal.topology.live import TopologySource
    from oshal.topology.views import view

    async def build() -> Any:
        plane = platform.plane
        unreachable = connect(f"redis://127.0.0.1:{free_port()}/0")
        try:
            source = TopologySource(plane.db, unreachable, plane.kill, plane.health, plane.settings)
            return await source.build(await plane.admin.system_tenant())
        finally:
            await unreachable.aclose()

    model = platform.on_plane(build())
    echo = next(b for b in model.bots if b.name == "echo")
    assert echo.observed is False and echo.health.value == "unknown" and echo.replicas_desired >= 1
    assert model.drift == ("redis is down: the bots' heartbeats and lanes cannot be observed",)
    assert "redis is down" in view("deployment", model).notes[0]


def test_the_routing_view_carries_measured_timings_recent_and_for_one_ticket(platform: Platform) -> None:
    tenant = make_tenant(platform, "topo-route", role="operator")
    with platform.client() as admin:
        system = admin.get("/v1/tickets", params={"limit": 1})  # the admin key's tenant is the system tenant
        assert system.status_code == 200
        created = admin.post("/v1/tickets", params={"wait": 10}, json={"bot": "echo", "input": {"n": 1}})
        assert created.status_code == 201 and created.json()["status"] == "done", created.text
        ticket = created.json()["id"]
        one = admin.get("/v1/topology/routing", params={"format": "json", "ticket": ticket}).json()
        recent = admin.get("/v1/topology/routing", params={"format": "json"}).json()
        elsewhere = admin.get("/v1/topology/routing", params={"ticket": tenant.tenant_id})
    labels = {(e["source"], e["target"]): e["label"] for e in one["edges"]}
    assert ticket in one["title"] and labels[("bot", "result")].endswith(" ms")
    assert all(labels[hop].endswith(" ms") for hop in [("ticket", "lane"), ("lane", "bot"), ("result", "collector")])
    assert all(e["label"].startswith("p50 ") for e in recent["edges"] if e["label"])
    assert any(e["label"] for e in recent["edges"]) and recent["notes"] == []
    assert elsewhere.status_code == 404  # not a ticket of the caller's tenant (here: not a ticket at all)


def test_a_ticket_of_another_tenant_has_no_route_for_the_platform_operator(platform: Platform) -> None:
    tenant = make_tenant(platform, "topo-other")
    created = tenant.http.post("/v1/tickets", params={"wait": 10}, json={"bot": "echo", "input": {"n": 2}})
    assert created.status_code == 201 and created.json()["status"] == "done", created.text
    ghost = "01a2478b-0000-7000-8000-000000000000"
    with platform.client() as admin:
        response = admin.get("/v1/topology/routing", params={"ticket": created.json()["id"]})
        unknown = admin.get("/v1/topology/routing", params={"ticket": ghost})
    assert response.status_code == unknown.status_code == 404  # the same answer as for no ticket at all
    assert response.json()["message"].replace(created.json()["id"], ghost) == unknown.json()["message"]


def test_a_bot_killed_turns_down_on_the_deployment_view_within_one_heartbeat_ttl(platform: Platform) -> None:
    """The nodes started here beat with a 2 s TTL; after a SIGKILL nothing removes the heartbeat but its expiry."""
    import signal
    import time

    from control.test_crash_safety import node_processes

    def slow_health() -> str:
        return str({n["id"]: n["health"] for n in _view(platform, "deployment")["nodes"]}["bot_slow"])

    redis = platform.redis_admin()
    with node_processes(platform, "slow", 1) as [victim]:
        assert slow_health() == "ok"
        beats = list(redis.scan_iter(match="oshal:hb:slow:*"))
        # what the view reads expires by itself within one TTL: nothing must renew it once the node is dead
        assert beats and all(0 < redis.pttl(key) <= 2000 for key in beats)
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        deadline = time.monotonic() + 30  # a bound on the wait, not a timing claim (the TTL above is the claim)
        while slow_health() != "down":
            assert time.monotonic() < deadline, "a killed bot is still drawn up"
            time.sleep(0.1)
