"""The operations loop end to end against a running platform: a real failure is detected, its evidence gathered,
the incident diagnosed by the loop's bots on their lanes, the remedy approved by an operator, acted on, verified
and reported. Times to detect and recover are printed (measured, never asserted)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import Platform, free_port, wait_done
from console_client import signed_in
from control.test_crash_safety import node_processes
from external.fake_shop import FakeShop
from fleet_runner import fleet_runner
from oshal.mesh.redis_keys import dead_stream, lane_stream
from oshal_ops.api import PlatformAPI
from oshal_ops.config import OpsConfig
from oshal_ops.heal import executor_for
from oshal_ops.model import rca_to_json
from oshal_ops.service import Incident, OpsService, rca_of_run
from oshal_ops.webhook import create_app
from shopfront import enable_shop

DATA = Path(__file__).parent / "data"
RUNBOOKS = Path(__file__).resolve().parents[2] / "src" / "oshal_ops" / "runbooks"


@pytest.fixture
async def api(platform: Platform, ops_key: str) -> AsyncIterator[PlatformAPI]:
    async with PlatformAPI(platform.url, ops_key) as client:
        for path in sorted(RUNBOOKS.glob("*.md")):
            body = path.read_text()
            await client.put(f"/v1/knowledge/runbooks/{path.stem}",
                             {"title": body.splitlines()[0].removeprefix("# "), "body": body,
                              "tags": [t.strip() for t in body.splitlines()[2].split(":", 1)[1].split(",")]})
        yield client


def _service(api: PlatformAPI, **config: object) -> OpsService:
    settings = OpsConfig.model_validate({"interval_s": 0.5, **config})
    return OpsService(api, settings, executor_for(api, settings))


async def _drive(service: OpsService, until: Callable[[], Awaitable[bool] | bool], what: str,
                 timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        await service.tick()
        outcome = until()
        if await outcome if asyncio.iscoroutine(outcome) else outcome:
            return
        await asyncio.sleep(0.3)
    raise AssertionError(f"the loop did not get there within {timeout} s: {what}; incidents: "
                         f"{[i.as_dict() for i in service.incidents.values()]}")


def _opened(service: OpsService, key: str) -> Incident | None:
    return service.incidents.get(key)


async def _rca(api: PlatformAPI, incident: Incident) -> dict[str, Any]:
    timeline = await api.get(f"/v1/tickets/{incident.ticket}/timeline")
    found = rca_of_run(timeline)
    assert found is not None, timeline.get("run")
    return rca_to_json(found)


class _Healthy(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b'{"status": "ok"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def _endpoint(port: int) -> Iterator[None]:
    server = ThreadingHTTPServer(("127.0.0.1", port), _Healthy)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()


def _seconds(start: float, end: float) -> str:
    return f"{end - start:.1f} s"


async def test_an_endpoint_that_stops_is_an_incident_diagnosed_with_citations_reported_and_resolved(
        platform: Platform, api: PlatformAPI) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/health"
    service = _service(api, endpoints=[{"name": "shop", "url": url, "timeout_s": 1}], bots=[])
    await service.start()
    with _endpoint(port):
        await service.tick()
    stopped = time.monotonic()
    key = "check:endpoint:shop"
    await _drive(service, lambda: _opened(service, key) is not None, "the endpoint's incident opens")
    detected = time.monotonic()
    incident = service.incidents[key]
    await _drive(service, lambda: incident.state == "awaiting_approval", "diagnosed, at the approval gate")
    rca = await _rca(api, incident)
    assert rca["failure_mode"] == "endpoint_down"
    assert "check:endpoint:shop" in rca["root_cause"]["citations"]
    with _endpoint(port):
        # It comes back before anyone approved a remedy: the loop closes the gate itself and reports.
        await _drive(service, lambda: incident.state == "closed", "recovered on its own, reported")
        recovered = time.monotonic()
    gate = await api.get(f"/v1/tickets/{incident.ticket}/timeline")
    assert any("recovered on its own" in (e["reason"] or "") for e in gate["events"])
    report = await api.get(f"/v1/knowledge/incidents/{incident.ticket}")
    assert "endpoint_down" in report["body"] and "`check:endpoint:shop`" in report["body"]
    assert "closed, recovered" in report["body"] and "Actions taken\n\nNone." in report["body"]
    assert report["body"].count("| `") >= 5  # the evidence table, each row with its source and time
    filed = await api.get("/v1/tickets", bot="ops-reporter")
    assert [t["status"] for t in filed["items"]] == ["done"]
    business = await api.get("/v1/topology/business", format="json")
    labels = {n["id"]: n["label"] for n in business["nodes"]}
    assert labels["app_operations_loop"] == "operations loop"
    with signed_in(platform, platform.admin_key) as console:  # the console shows the application and its work
        apps = console.get("/apps").text
        assert "operations loop" in apps and incident.ticket[:8] in apps
        shown = console.get(f"/tickets/{incident.ticket}").text
        assert "Step <code>review</code> output" in shown and "endpoint_down" in shown
    final = (await api.get(f"/v1/tickets/{incident.ticket}"))["status"]
    assert labels["app_operations_loop_incident"].endswith(f": {final} 1")  # the incident, counted live
    print(f"\nendpoint down: detected after {_seconds(stopped, detected)}, recovered after "
          f"{_seconds(stopped, recovered)} (the loop checks every {service.config.interval_s:g} s)")


@pytest.mark.parametrize("automatic", [False, True], ids=["after approval", "automatic by policy"])
async def test_a_poison_message_is_diagnosed_requeued_verified_and_reported(
        platform: Platform, api: PlatformAPI, automatic: bool) -> None:
    ticket = (await api.post("/v1/tickets", {"bot": "idle", "input": {"job": "poison"}}))["id"]
    admin = platform.redis_admin()
    lane = lane_stream("idle")
    [(_, [(message_id, _)])] = admin.xreadgroup("bots", "ghost-1", {lane: ">"}, count=1)
    for ghost in ("ghost-2", "ghost-3"):  # three replicas take it in turn and die before acknowledging it
        admin.xclaim(lane, "bots", ghost, 0, [message_id])
    try:
        with node_processes(platform, "idle", 1):
            with platform.client() as http:
                assert wait_done(http, ticket)["status"] == "dead_letter"
            poisoned = time.monotonic()
            service = _service(api, bots=["idle"], automatic=["poison_message"] if automatic else [])
            await service.start()
            key = "check:dead_letters:idle"
            await _drive(service, lambda: _opened(service, key) is not None, "the dead letter opens an incident")
            detected = time.monotonic()
            incident = service.incidents[key]
            if not automatic:
                await _drive(service, lambda: incident.state == "awaiting_approval", "diagnosed, at the gate")
                await api.post(f"/v1/tickets/{incident.ticket}/approve", {"reason": "the bot is fixed; requeue"})
            await _drive(service, lambda: incident.state == "closed", "healed, verified and reported", timeout=90)
            rca = await _rca(api, incident)
            assert rca["failure_mode"] == "poison_message"
            assert any(r["action"] == "requeue_dead_letters" for r in rca["remediation"])
            events = (await api.get(f"/v1/tickets/{incident.ticket}/timeline"))["events"]
            assert any(e["to_status"] == "approval_required" for e in events) is not automatic
            healed = time.monotonic()
        requeue = next(a for a in incident.actions if a["action"] == "requeue_dead_letters")
        assert requeue["verified"] and not requeue["rolled_back"], requeue
        assert (await api.get(f"/v1/tickets/{ticket}"))["status"] == "done"
        report = await api.get(f"/v1/knowledge/incidents/{incident.ticket}")
        assert "requeue_dead_letters" in report["body"] and "verified" in report["body"]
        how = "healed by policy" if automatic else "healed after the operator's approval"
        print(f"\npoison message ({how}): detected {_seconds(poisoned, detected)} after the dead letter, "
              f"recovered {_seconds(poisoned, healed)} after it")
    finally:
        admin.delete(dead_stream("idle"))
        admin.close()


async def test_a_dead_bot_is_diagnosed_with_citations_restarted_after_approval_verified_and_reported(
        platform: Platform, api: PlatformAPI) -> None:
    """The bot's node process hangs (SIGSTOP: alive, but no heartbeat and no work), so its runner sees nothing to
    restart on its own; the loop finds it dead, proposes a restart, and after approval orders it through the
    platform's fleet control, which the runner carries out."""
    service = _service(api, bots=["slow"])
    await service.start()
    with fleet_runner(platform, "slow") as unit:
        await _wait(lambda: _live_replicas(platform, "slow") == 1, "slow online")  # not watched while it starts
        await service.tick()  # healthy: its last good reading
        hung = unit.processes[0].process.pid  # type: ignore[attr-defined]
        os.kill(hung, signal.SIGSTOP)
        stopped = time.monotonic()
        key = "check:bot:slow"
        await _drive(service, lambda: _opened(service, key) is not None, "the dead bot opens an incident")
        detected = time.monotonic()
        incident = service.incidents[key]
        await _drive(service, lambda: incident.state == "awaiting_approval", "diagnosed, at the gate")
        diagnosed = time.monotonic()
        rca = await _rca(api, incident)
        assert rca["failure_mode"] == "dead_bot"
        citations = set(rca["root_cause"]["citations"])
        assert citations & {"bots", "lane:slow"}, citations
        assert [r["action"] for r in rca["remediation"]][:1] == ["restart_bot"]
        await api.post(f"/v1/tickets/{incident.ticket}/approve", {"reason": "restart it"})
        approved = time.monotonic()
        await _drive(service, lambda: incident.state == "closed", "acted on, verified and reported")
        healed = time.monotonic()
        restart = next(a for a in incident.actions if a["action"] == "restart_bot")
        assert restart["verified"] and not restart["refused_reason"], restart
        assert unit.processes[0].process.pid != hung  # type: ignore[attr-defined]
        assert _live_replicas(platform, "slow") == 1
    report = await api.get(f"/v1/knowledge/incidents/{incident.ticket}")
    assert "dead_bot" in report["body"] and "restart_bot" in report["body"]
    assert "NOT recovered" not in report["body"]
    print(f"\ndead (hung) bot: detected {_seconds(stopped, detected)} after SIGSTOP (heartbeat TTL 2 s), "
          f"diagnosed {_seconds(detected, diagnosed)} later; recovered {_seconds(approved, healed)} after approval")


async def test_a_killed_node_process_is_brought_back_by_its_runner_before_anyone_approves(
        platform: Platform, api: PlatformAPI) -> None:
    """SIGKILL: the process is gone, so its runner restarts it by itself (as `oshal up`'s supervisor does); an
    incident the loop opened meanwhile closes as recovered on its own, with nothing applied."""
    service = _service(api, bots=["slow"])
    await service.start()
    with fleet_runner(platform, "slow") as unit:
        await _wait(lambda: _live_replicas(platform, "slow") == 1, "slow online")
        await service.tick()
        first = unit.processes[0].process.pid  # type: ignore[attr-defined]
        os.kill(first, signal.SIGKILL)
        killed = time.monotonic()
        await _drive(service, lambda: unit.processes[0].process.pid != first  # type: ignore[attr-defined]
                     and _live_replicas(platform, "slow") == 1, "the runner brings slow back")
        back = time.monotonic()
        await _drive(service, lambda: all(i.state == "closed" for i in service.incidents.values()),
                     "every incident closed")
    applied = [a for i in service.incidents.values() for a in i.actions if a.get("applied_at")]
    assert applied == [], applied
    with platform.client() as admin:
        assert admin.get("/v1/bots/slow/control").json()["restart_seq"] == 0
    print(f"\nkilled bot: back {_seconds(killed, back)} after SIGKILL by its runner, no order needed "
          f"({len(service.incidents)} incident(s) opened meanwhile, closed as recovered on their own)")


async def _wait(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.2)


def _live_replicas(platform: Platform, bot: str) -> int:
    with platform.client() as admin:
        return int(next(b["replicas"] for b in admin.get("/v1/bots").json() if b["name"] == bot))


async def test_alertmanager_notifications_open_one_incident_even_in_a_storm(platform: Platform,
                                                                            api: PlatformAPI) -> None:
    service = _service(api, bots=[])
    await service.start()
    token = "t" * 32
    app = create_app(service.on_alerts, token=token)
    payload = json.loads((DATA / "alertmanager_v4_firing.json").read_text())
    storm = {**payload, "alerts": [{**payload["alerts"][0], "fingerprint": f"{i:016x}",
                                    "labels": {**payload["alerts"][0]["labels"], "instance": f"host-{i}"}}
                                   for i in range(200)]}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://ops") as http:
        headers = {"Authorization": f"Bearer {token}"}
        first = await http.post("/v1/ops/alerts", json=payload, headers=headers)
        assert first.status_code == 200, first.text
        for _ in range(3):
            assert (await http.post("/v1/ops/alerts", json=storm, headers=headers)).status_code == 200
        refused = await http.post("/v1/ops/alerts", json=payload, headers={"Authorization": "Bearer wrong"})
        assert refused.status_code == 401
    incidents = [t for t in (await api.get("/v1/tickets", limit=500))["items"] if t.get("type") == "incident"]
    assert len(incidents) == 1, [t["input"]["key"] for t in incidents]
    assert incidents[0]["input"]["key"].startswith("alertmanager:")
    kinds = {e["kind"] for e in incidents[0]["input"]["evidence"]}
    assert {"alert", "bots", "metrics", "audit", "readyz"} <= kinds, kinds
    assert all(e["source"] and e["collected_at"] for e in incidents[0]["input"]["evidence"])
    assert len(service.book.get(incidents[0]["input"]["key"]).alerts) == 201  # type: ignore[union-attr]


async def test_an_exhausted_budget_is_diagnosed_and_its_spender_paused_after_approval(platform: Platform,
                                                                                     api: PlatformAPI) -> None:
    with platform.client() as admin:
        admin.put("/v1/budgets", json={"scope": "bot", "subject": "writer", "period": "day",
                                       "limit_micros": 0}).raise_for_status()
        paused = admin.post("/v1/tickets", json={"bot": "writer", "input": "a haiku"}).json()["id"]
        assert wait_done(admin, paused)["status"] == "paused"
    exhausted = time.monotonic()
    service = _service(api, bots=[])
    await service.start()
    await _drive(service, lambda: any(k.startswith("check:budget:") for k in service.incidents),
                 "the exhausted budget opens an incident")
    detected = time.monotonic()
    incident = next(i for k, i in service.incidents.items() if k.startswith("check:budget:"))
    await _drive(service, lambda: incident.state == "awaiting_approval", "diagnosed, at the gate")
    rca = await _rca(api, incident)
    assert rca["failure_mode"] == "exhausted_budget", rca
    assert "budgets" in rca["root_cause"]["citations"]
    remedies = [(r["action"], r["target"]) for r in rca["remediation"]]
    await api.post(f"/v1/tickets/{incident.ticket}/approve", {"reason": "stop the spender until finance decides"})
    await _drive(service, lambda: incident.state == "closed", "acted on and reported")
    if ("pause_bot", "writer") in remedies:  # a bot budget overrun: its spender is held, verified
        pause = next(a for a in incident.actions if a["action"] == "pause_bot")
        assert pause["verified"], pause
        assert any(k["scope"] == "bot:writer" for k in await api.get("/v1/kill"))
        await api.delete("/v1/kill/writer")
    report = await api.get(f"/v1/knowledge/incidents/{incident.ticket}")
    assert "exhausted_budget" in report["body"] and "`budgets`" in report["body"]
    print(f"\nexhausted budget: detected {_seconds(exhausted, detected)} after the ticket paused; remedies "
          f"proposed: {remedies or 'none (raising a budget is a person decision)'}")


async def test_a_broken_connector_credential_is_diagnosed_and_its_connector_disabled_after_approval(
        platform: Platform, api: PlatformAPI) -> None:
    with FakeShop(api_key="k") as shop:
        enable_shop(platform, shop, ["listProducts"])
    with platform.client() as admin:
        admin.post("/v1/connections", json={"connector": "shop", "secret": "k",
                                            "expires_at": "2020-01-01T00:00:00Z"}).raise_for_status()
    broken = time.monotonic()
    service = _service(api, bots=[])
    await service.start()
    key = "check:credential:shop"
    await _drive(service, lambda: _opened(service, key) is not None, "the broken credential opens an incident")
    detected = time.monotonic()
    incident = service.incidents[key]
    await _drive(service, lambda: incident.state == "awaiting_approval", "diagnosed, at the gate")
    rca = await _rca(api, incident)
    assert rca["failure_mode"] == "failing_credential" and "connections" in rca["root_cause"]["citations"]
    await api.post(f"/v1/tickets/{incident.ticket}/approve", {"reason": "take it out of service"})
    await _drive(service, lambda: incident.state == "closed", "acted on and reported")
    disable = next(a for a in incident.actions if a["action"] == "disable_connector")
    assert disable["verified"] and not disable["refused_reason"], disable
    assert (await api.get("/v1/connectors/shop"))["state"] == "disabled"
    report = await api.get(f"/v1/knowledge/incidents/{incident.ticket}")
    # Disabling stops the failing calls; the expired credential itself still needs a person to replace it, so the
    # incident's signal has not recovered and the report says so.
    assert "failing_credential" in report["body"] and "NOT recovered" in report["body"]
    assert "the incident's signal did not recover" in report["body"]
    print(f"\nbroken credential: detected {_seconds(broken, detected)} after it expired; the connector was "
          "disabled after approval (verified); not recovered until someone stores a new credential")


async def test_a_restarted_loop_takes_up_its_open_incidents_from_their_tickets(platform: Platform,
                                                                               api: PlatformAPI) -> None:
    port = free_port()
    endpoint = [{"name": "shop", "url": f"http://127.0.0.1:{port}/health", "timeout_s": 1}]
    first = _service(api, endpoints=endpoint, bots=[])
    await first.start()
    key = "check:endpoint:shop"
    gated = lambda: key in first.incidents and first.incidents[key].state == "awaiting_approval"  # noqa: E731
    await _drive(first, gated, "diagnosed, at the gate")
    ticket = first.incidents[key].ticket
    first.incidents.clear()  # the loop dies: nothing of it but the platform's tickets remains

    second = _service(api, endpoints=endpoint, bots=[])
    await second.start()
    assert second.incidents[key].ticket == ticket  # taken up, not opened again
    await second.tick()
    assert [i.ticket for i in second.incidents.values()] == [ticket]
    await api.post(f"/v1/tickets/{ticket}/approve", {"reason": "known"})
    await _drive(second, lambda: second.incidents.get(key) is None, "concluded by the new loop")
    incidents = [t for t in (await api.get("/v1/tickets", limit=500))["items"] if t.get("type") == "incident"]
    assert [t["id"] for t in incidents] == [ticket]
    assert (await api.get(f"/v1/knowledge/incidents/{ticket}"))["title"] == f"Incident {key}"
