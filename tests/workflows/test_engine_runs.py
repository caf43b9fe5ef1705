"""Workflow runs on the real platform: transitions, version pinning, parallel join, pause/resume, recovery."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import Any

import httpx
import psycopg
import pytest

from conftest import Platform, TenantClient, free_port, make_tenant, wait_done
from control.test_crash_safety import _wait_for, node_processes


def _phase_status(platform: Platform, ticket: str, step: str) -> str | None:
    with platform.superuser() as conn:
        row = conn.execute("SELECT status FROM phases WHERE ticket_id = %s AND step = %s", (ticket, step)).fetchone()
    return None if row is None else str(row[0])


def _phase_count(platform: Platform, step: str) -> int:
    with platform.superuser() as conn:
        return int(conn.execute("SELECT count(*) FROM phases WHERE step = %s", (step,)).fetchone()[0])


@pytest.fixture
def operator(platform: Platform) -> Any:
    tc = make_tenant(platform, "ops", role="operator")
    yield tc
    tc.http.close()


def publish(http: httpx.Client, definition: dict[str, Any]) -> dict[str, Any]:
    response = http.post("/v1/workflows", json={"definition": definition})
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def create(http: httpx.Client, type_: str, value: Any, **extra: Any) -> dict[str, Any]:
    response = http.post("/v1/tickets", json={"type": type_, "input": value, **extra})
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


PARALLEL = {"name": "fan", "steps": [
    {"id": "both", "kind": "parallel", "branches": [
        {"id": "sum", "bot": "summarizer", "input": {"text": "${ticket.input.text}"}},
        {"id": "cls", "bot": "triage", "input": {"text": "${ticket.input.text}"}},
    ]},
    {"id": "out", "kind": "end", "result": {"summary": "${steps.sum.output.summary}",
                                            "label": "${steps.cls.output.label}"}},
]}


def test_parallel_split_joins_both_branches(operator: TenantClient) -> None:
    publish(operator.http, PARALLEL)
    ticket = wait_done(operator.http, create(operator.http, "fan", {"text": "The checkout is down. Errors."})["id"])
    assert ticket["status"] == "done", ticket
    assert ticket["result"] == {"summary": "The checkout is down. Errors.", "label": "incident"}
    phases = operator.http.get(f"/v1/tickets/{ticket['id']}/timeline").json()["phases"]
    assert sorted(p["bot"] for p in phases) == ["summarizer", "triage"]


def test_illegal_transitions_are_409_with_the_allowed_actions(operator: TenantClient) -> None:
    ticket = wait_done(operator.http, create(operator.http, "ticket", {"text": "checkout is down"})["id"])
    assert ticket["status"] == "customer_action"
    refused = operator.http.post(f"/v1/tickets/{ticket['id']}/resume")
    assert refused.status_code == 409
    body = refused.json()
    assert "customer_action" in body["message"] and "close" in body["hint"] and "escalate" in body["hint"]
    closed = operator.http.post(f"/v1/tickets/{ticket['id']}/close", json={"reason": "customer confirmed"})
    assert closed.status_code == 200 and closed.json()["status"] == "done"
    final = operator.http.post(f"/v1/tickets/{ticket['id']}/pause")
    assert final.status_code == 409 and "none (it is final)" in final.json()["hint"]


def test_the_database_refuses_a_transition_the_table_does_not_list(platform: Platform,
                                                                  operator: TenantClient) -> None:
    ticket = wait_done(operator.http, operator.http.post("/v1/tickets", json={"bot": "echo", "input": {}}).json()["id"])
    with platform.superuser() as conn:
        with pytest.raises(psycopg.Error, match="illegal ticket transition from done to in_progress"):
            conn.execute("UPDATE tickets SET status = 'in_progress' WHERE id = %s", (ticket["id"],))
        events = conn.execute("SELECT from_status, to_status FROM ticket_events WHERE ticket_id = %s ORDER BY at",
                              (ticket["id"],)).fetchall()
    assert [tuple(e) for e in events] == [("in_progress", "done")]  # creation is on the ticket, not a transition
    timeline = operator.http.get(f"/v1/tickets/{ticket['id']}/timeline").json()["events"]
    assert [(e["from_status"], e["to_status"], e["reason"]) for e in timeline] == [
        (None, "in_progress", "created"), ("in_progress", "done", None)]


def test_a_run_finishes_on_the_version_it_started_on(operator: TenantClient) -> None:
    v1 = {"name": "pinned", "steps": [
        {"id": "gate", "kind": "approval"},
        {"id": "work", "kind": "task", "bot": "echo", "input": {"version": 1}},
    ]}
    assert publish(operator.http, v1)["version"] == 1
    first = create(operator.http, "pinned", {})
    assert wait_done(operator.http, first["id"])["status"] == "approval_required"
    v2 = {**v1, "steps": [v1["steps"][0], {"id": "work", "kind": "task", "bot": "echo", "input": {"version": 2}}]}
    assert publish(operator.http, v2)["version"] == 2
    operator.http.post(f"/v1/tickets/{first['id']}/approve")
    assert wait_done(operator.http, first["id"])["result"] == {"version": 1}
    second = create(operator.http, "pinned", {})
    operator.http.post(f"/v1/tickets/{second['id']}/approve")
    assert wait_done(operator.http, second["id"])["result"] == {"version": 2}
    shown = operator.http.get("/v1/workflows/pinned").json()
    assert shown["version"] == 2 and [v["version"] for v in shown["versions"]] == [1, 2]


def test_pause_holds_the_run_and_resume_continues_it(platform: Platform, operator: TenantClient) -> None:
    publish(operator.http, {"name": "slowflow", "steps": [
        {"id": "a", "kind": "task", "bot": "slow", "input": {"n": 1}},
        {"id": "b", "kind": "task", "bot": "echo", "input": {"after": "${steps.a.output}"}},
    ]})
    ticket = create(operator.http, "slowflow", {})  # nobody runs `slow` yet: step a waits on its lane
    paused = operator.http.post(f"/v1/tickets/{ticket['id']}/pause", json={"reason": "hold on"})
    assert paused.status_code == 200 and paused.json()["status"] == "paused"
    with node_processes(platform, "slow", 1):
        _wait_for(lambda: _phase_status(platform, ticket["id"], "a") == "done", 30, "step a done")
        time.sleep(1.0)  # the collector and the sweeper have had their chance: the run must not move on
        timeline = operator.http.get(f"/v1/tickets/{ticket['id']}/timeline").json()
        assert [p["step"] for p in timeline["phases"]] == ["a"]
        assert operator.http.get(f"/v1/tickets/{ticket['id']}").json()["status"] == "paused"
        resumed = operator.http.post(f"/v1/tickets/{ticket['id']}/resume")
        assert resumed.status_code == 200
        done = wait_done(operator.http, ticket["id"])
    assert done["status"] == "done" and done["result"] == {"after": {"n": 1}}
    events = operator.http.get(f"/v1/tickets/{ticket['id']}/timeline").json()["events"]
    assert ("in_progress", "paused", "hold on") in [(e["from_status"], e["to_status"], e["reason"]) for e in events]


def test_a_bot_killed_mid_run_is_taken_over_and_no_step_runs_twice(platform: Platform,
                                                                   operator: TenantClient) -> None:
    publish(operator.http, {"name": "slowchain", "steps": [
        {"id": "a", "kind": "task", "bot": "slow", "input": {"n": "${index}"}},
        {"id": "b", "kind": "task", "bot": "slow", "input": {"prev": "${steps.a.output}"}},
        {"id": "c", "kind": "task", "bot": "echo", "input": {"last": "${steps.b.output}"}},
    ]})
    tickets = [create(operator.http, "slowchain", {})["id"] for _ in range(20)]
    with node_processes(platform, "slow", 2) as (victim, _survivor):
        _wait_for(lambda: _phase_count(platform, "b") > 0, 30, "some runs reached step b")
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        deadline = time.monotonic() + 180  # one deadline for all: the survivor takes over after the claim idle time
        results = [wait_done(operator.http, t, timeout=max(deadline - time.monotonic(), 1.0)) for t in tickets]
    unfinished = [(r["id"], r["status"], r.get("status_reason"), r.get("error")) for r in results
                  if r["status"] != "done"]
    assert not unfinished, f"{len(unfinished)} of {len(results)} not done: {unfinished[:5]}"
    with platform.superuser() as conn:
        per_step = conn.execute("SELECT ticket_id, step, count(*) FROM phases WHERE ticket_id = ANY(%s::uuid[]) "
                                "GROUP BY 1, 2", (tickets,)).fetchall()
    assert len(per_step) == 60 and all(n == 1 for _, _, n in per_step)  # one phase per step per run


def test_a_lost_advance_is_recovered_by_the_sweeper_without_repeating_a_step(platform: Platform,
                                                                             operator: TenantClient) -> None:
    """A crash after a step's result commits but before the run advances: the sweeper advances it, once."""
    publish(operator.http, {"name": "twostep", "steps": [
        {"id": "a", "kind": "task", "bot": "echo", "input": {"step": "a"}},
        {"id": "b", "kind": "task", "bot": "echo", "input": {"step": "b"}},
    ]})
    ticket = wait_done(operator.http, create(operator.http, "twostep", {})["id"])
    assert ticket["status"] == "done"
    with platform.superuser() as conn:  # rewind the checkpoint to "waiting on a", whose phase is done already
        phase_a = conn.execute("SELECT id FROM phases WHERE ticket_id = %s AND step = 'a'",
                               (ticket["id"],)).fetchone()[0]
        conn.execute("ALTER TABLE tickets DISABLE TRIGGER tickets_transition")
        conn.execute("UPDATE tickets SET status = 'in_progress', result = NULL, finished_at = NULL WHERE id = %s",
                     (ticket["id"],))
        conn.execute("ALTER TABLE tickets ENABLE TRIGGER tickets_transition")
        conn.execute("DELETE FROM phases WHERE ticket_id = %s AND step = 'b'", (ticket["id"],))
        conn.execute(
            "UPDATE workflow_runs SET finished = false, updated_at = now() - interval '1 minute', "
            "state = jsonb_set(jsonb_set(state, '{wait}', %s::jsonb), '{cursor}', '\"a\"') WHERE ticket_id = %s",
            (f'{{"step": "a", "kind": "phase", "phases": {{"a": "{phase_a}"}}, "children": []}}', ticket["id"]))
    recovered = wait_done(operator.http, ticket["id"])
    assert recovered["status"] == "done" and recovered["result"] == {"step": "b"}
    steps = [p["step"] for p in operator.http.get(f"/v1/tickets/{ticket['id']}/timeline").json()["phases"]]
    assert steps == ["a", "b"]  # a ran once; b once more after the rewind, never twice


def test_a_control_plane_killed_mid_run_loses_no_step_and_repeats_none(platform: Platform,
                                                                       operator: TenantClient) -> None:
    """A second control plane (its own process, collector and sweeper) takes the API traffic and is SIGKILLed
    while its runs are in flight; the surviving plane reclaims its unacknowledged results and stalled runs."""
    publish(operator.http, {"name": "threestep", "steps": [
        {"id": "a", "kind": "task", "bot": "echo", "input": {"n": "${ticket.input.n}"}},
        {"id": "b", "kind": "task", "bot": "summarizer", "input": {"text": "Step b. Of ${ticket.input.n}."}},
        {"id": "c", "kind": "task", "bot": "echo", "input": {"after": "${steps.b.output.summary}"}},
    ]})
    port = free_port()
    env = {**os.environ, "OSHAL_HOME": str(platform.home), "OSHAL_API_DATABASE_URL": platform.engines.api_url,
           "OSHAL_REDIS_URL": platform.engines.redis_url, "OSHAL_CLAIM_IDLE_MS": "1000",
           "OSHAL_SWEEP_INTERVAL_S": "0.5", "OSHAL_LOG_LEVEL": "warning"}
    plane = subprocess.Popen([sys.executable, "-m", "oshal.cli.main", "serve", "--port", str(port)], env=env)
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_for(lambda: _ready(url), 30, "second control plane ready")
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {operator.key}"}, timeout=30) as api:
            batch = [{"type": "threestep", "input": {"n": i}} for i in range(60)]
            created = api.post("/v1/tickets/batch", json={"tickets": batch})
            assert created.status_code == 201, created.text
        plane.send_signal(signal.SIGKILL)
        plane.wait()
    finally:
        if plane.poll() is None:
            plane.kill()
            plane.wait()
    tickets = [t["id"] for t in created.json()["tickets"]]
    deadline = time.monotonic() + 180  # one deadline for all: recovery waits on the sweeper, not on each ticket
    results = [wait_done(operator.http, t, timeout=max(deadline - time.monotonic(), 1.0)) for t in tickets]
    unfinished = [(r["id"], r["status"], r.get("status_reason"), r.get("error")) for r in results
                  if r["status"] != "done"]
    assert not unfinished, f"{len(unfinished)} of {len(results)} not done: {unfinished[:5]}"
    assert {r["result"]["after"] for r in results} >= {"Step b. Of 0."}
    with platform.superuser() as conn:
        per_step = conn.execute("SELECT ticket_id, step, count(*) FROM phases WHERE ticket_id = ANY(%s::uuid[]) "
                                "GROUP BY 1, 2", (tickets,)).fetchall()
        ledger = conn.execute("SELECT count(*), count(DISTINCT call_id) FROM ledger WHERE ticket_id = ANY(%s::uuid[])",
                              (tickets,)).fetchone()
    assert len(per_step) == 180 and all(n == 1 for _, _, n in per_step)
    assert ledger[0] == ledger[1] == 180  # one priced model call per step, none twice


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
