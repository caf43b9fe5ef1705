"""Fleet control end to end: an operator's order (restart, replicas) through the API, carried out by the runner of
the bot's node processes, and visible as applied; who may order it, and what a bad order gets."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable

from conftest import Platform, make_tenant, wait_done
from fleet_runner import fleet_runner


def _wait_for(condition: Callable[[], bool], what: str, timeout: float = 40) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _live(platform: Platform, bot: str) -> int:
    with platform.client() as admin:
        return int(next(b["replicas"] for b in admin.get("/v1/bots").json() if b["name"] == bot))


def _control(platform: Platform, bot: str) -> dict[str, object]:
    with platform.client() as admin:
        response = admin.get(f"/v1/bots/{bot}/control")
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_a_hung_bot_is_restarted_on_order_and_the_order_shows_as_applied(platform: Platform) -> None:
    with fleet_runner(platform, "slow") as unit:
        _wait_for(lambda: _live(platform, "slow") == 1, "slow online")
        [process] = unit.processes
        assert process.process is not None  # type: ignore[attr-defined]
        hung = process.process.pid  # type: ignore[attr-defined]
        os.kill(hung, signal.SIGSTOP)  # alive, but no heartbeat and no work: what a restart is for
        _wait_for(lambda: _live(platform, "slow") == 0, "the hung bot's heartbeat to expire")

        with platform.client() as admin:
            order = admin.post("/v1/bots/slow/restart", json={"reason": "slow stopped heart-beating"})
        assert order.status_code == 202, order.text
        assert order.json()["restart_seq"] == 1 and order.json()["applied_seq"] == 0
        _wait_for(lambda: _control(platform, "slow")["applied_seq"] == 1, "the restart to be carried out")
        _wait_for(lambda: _live(platform, "slow") == 1, "slow back online")
        assert unit.processes[0].process.pid != hung  # type: ignore[attr-defined]
        assert "restarted 1 process(es) of slow" in str(_control(platform, "slow")["applied_note"])
        with platform.client() as admin:
            ticket = admin.post("/v1/tickets", json={"bot": "slow", "input": {"n": 1}}).json()
            assert wait_done(admin, ticket["id"])["status"] == "done"
            entries = admin.get("/v1/audit", params={"limit": 10_000}).json()
        assert any(e["action"] == "fleet.restart" and e["target"] == "slow"
                   and e["detail"]["reason"] == "slow stopped heart-beating" for e in entries), entries[-5:]


def test_replicas_are_scaled_on_order_and_back_to_the_manifest(platform: Platform) -> None:
    with fleet_runner(platform, "slow") as unit:
        _wait_for(lambda: _live(platform, "slow") == 1, "slow online")
        with platform.client() as admin:
            scaled = admin.put("/v1/bots/slow/replicas", json={"replicas": 2, "reason": "the lane lags"})
            assert scaled.status_code == 202 and scaled.json()["replicas"] == 2, scaled.text
        _wait_for(lambda: _live(platform, "slow") == 2, "two live replicas of slow")
        assert len(unit.processes) == 2 and _control(platform, "slow")["applied_replicas"] == 2
        with platform.client() as admin:
            desired = next(b for b in admin.get("/v1/bots").json() if b["name"] == "slow")["replicas_desired"]
            assert desired == 2
            back = admin.put("/v1/bots/slow/replicas", json={"replicas": None, "reason": "caught up"})
            assert back.status_code == 202 and back.json()["replicas"] is None
        _wait_for(lambda: len(unit.processes) == 1 and _control(platform, "slow")["applied_replicas"] is None,
                  "back to the manifest's one replica")
        _wait_for(lambda: _live(platform, "slow") == 1, "one live replica of slow")


def test_a_killed_node_process_is_restarted_by_its_runner_without_an_order(platform: Platform) -> None:
    with fleet_runner(platform, "slow") as unit:
        _wait_for(lambda: _live(platform, "slow") == 1, "slow online")
        first = unit.processes[0].process.pid  # type: ignore[attr-defined]
        os.kill(first, signal.SIGKILL)
        _wait_for(lambda: unit.processes[0].process.pid != first  # type: ignore[attr-defined]
                  and unit.processes[0].alive(), "the runner to start it again")
        _wait_for(lambda: _live(platform, "slow") == 1, "slow back online")
        assert _control(platform, "slow")["restart_seq"] == 0  # nobody had to order it


def test_fleet_orders_are_for_platform_operators_and_bad_ones_say_what_is_wrong(platform: Platform) -> None:
    operator = make_tenant(platform, "fleet-tenant", role="operator")
    refused = operator.http.post("/v1/bots/echo/restart", json={"reason": "mine now"})
    assert refused.status_code == 403 and "platform control" in refused.json()["message"]
    assert operator.http.put("/v1/bots/echo/replicas", json={"replicas": 9, "reason": "x"}).status_code == 403
    assert operator.http.get("/v1/bots/echo/control").status_code == 200  # the fleet is shared, readable
    with platform.client() as admin:
        unknown = admin.post("/v1/bots/nobody/restart", json={"reason": "r"})
        assert unknown.status_code == 404 and "GET /v1/bots" in unknown.json()["hint"]
        blank = admin.post("/v1/bots/echo/restart", json={"reason": "   "})
        assert blank.status_code == 422 and "reason" in blank.json()["message"]
        missing = admin.post("/v1/bots/echo/restart", json={})
        assert missing.status_code == 422
        too_many = admin.put("/v1/bots/echo/replicas", json={"replicas": 65, "reason": "more"})
        assert too_many.status_code == 422
        bad_name = admin.post("/v1/bots/ECHO;drop/restart", json={"reason": "r"})
        assert bad_name.status_code in (404, 422)
        assert admin.get("/v1/bots/echo/control").json()["restart_seq"] == 0  # nothing refused was recorded
