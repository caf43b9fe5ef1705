"""Cron schedules against the real platform: validation, the API and CLI, and exactly one ticket per tick.

The control plane's own scheduler loop keeps ticking (on the real clock) while these tests run, so every
firing assertion counts what happened in total, whoever fired. Tests that step through ticks use daily
crons whose next real tick is about twelve hours away and pass a later ``now`` to ``Scheduler.tick``: the
plane's loop can never fire those ticks itself, so each one is fired by the two test replicas alone.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from psycopg.rows import dict_row

from conftest import Platform, TenantClient, make_tenant, wait_done
from oshal.control.loops.scheduler import Scheduler, tick_key
from oshal.control.tickets import TicketRequest
from oshal.store.db import Database
from oshal.workflows.cron import next_fire

DAY = timedelta(days=1)
SRC = str(Path(__file__).resolve().parents[2] / "src")


@pytest.fixture
def ops(platform: Platform) -> Iterator[TenantClient]:
    tenant = make_tenant(platform, "sched-ops", role="operator")
    yield tenant
    tenant.http.close()


@pytest.fixture
def replicas(platform: Platform) -> Iterator[list[Scheduler]]:
    """Two more schedulers besides the plane's own: one on the plane's pool, one on a pool of its own."""
    own_db = Database(platform.engines.api_url, min_size=1, max_size=4, name="test-replica")
    platform.on_plane(own_db.open())
    plane = platform.plane
    yield [Scheduler(plane.db, plane.tickets, interval_s=1, instance="replica-a"),
           Scheduler(own_db, plane.tickets, interval_s=1, instance="replica-b")]
    platform.on_plane(own_db.close())


def cli(platform: Platform, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OSHAL_")}
    env.update({"OSHAL_API_URL": platform.url, "OSHAL_API_KEY": platform.admin_key, "COLUMNS": "200",
                "PYTHONPATH": os.pathsep.join(filter(None, [SRC, os.environ.get("PYTHONPATH")]))})
    return subprocess.run([sys.executable, "-m", "oshal.cli.main", *args], env=env, capture_output=True, text=True,
                          timeout=60)


def cli_json(platform: Platform, *args: str) -> Any:
    proc = cli(platform, *args, "--json")
    assert proc.returncode == 0, (proc.returncode, proc.stdout, proc.stderr)
    return json.loads(proc.stdout)


def far_daily_cron() -> str:
    """A daily cron whose real ticks are about twelve hours from now, so the real clock never fires one here."""
    return f"0 {(datetime.now(UTC).hour + 12) % 24} * * *"


def create(tenant: TenantClient, **body: Any) -> dict[str, Any]:
    response = tenant.http.post("/v1/schedules", json=body)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def tick_all(platform: Platform, replicas: list[Scheduler], now: datetime | None = None) -> list[int]:
    async def concurrently() -> list[int]:
        return list(await asyncio.gather(*(r.tick(now) for r in replicas)))

    return platform.on_plane(concurrently())  # type: ignore[no-any-return]


def last_tick(platform: Platform, schedule_id: str) -> datetime | None:
    with platform.superuser() as conn:
        row = conn.execute("SELECT last_tick FROM schedules WHERE id = %s", (schedule_id,)).fetchone()
    assert row is not None
    return row[0]  # type: ignore[no-any-return]


def make_due(platform: Platform, schedule_ids: list[str]) -> None:
    with platform.superuser() as conn:
        conn.execute("UPDATE schedules SET next_tick = now() - interval '1 second' WHERE id = ANY(%s::uuid[])",
                     (schedule_ids,))


def fire_at(platform: Platform, replicas: list[Scheduler], schedule_ids: list[str], now: datetime,
            expect_last: datetime) -> int:
    """Make the schedules due, tick every replica at once at ``now``, until each has handled ``expect_last``.

    The plane's loop, on the real clock, finds none of these ticks due and only pushes ``next_tick`` back into
    the future; when it does so between our update and our pass, that pass finds nothing due: try again.
    Returns how many ticks the replicas fired in total.
    """
    fired = 0
    for _ in range(50):
        pending = [s for s in schedule_ids if last_tick(platform, s) != expect_last]
        if not pending:
            return fired
        make_due(platform, pending)
        fired += sum(tick_all(platform, replicas, now))
    raise AssertionError(f"schedules {pending} never reached last_tick {expect_last}")


def fires(platform: Platform, schedule_id: str) -> list[dict[str, Any]]:
    with platform.superuser() as conn, conn.cursor(row_factory=dict_row) as cur:
        cur.execute("SELECT tick, ticket_id, fired_by FROM schedule_fires WHERE schedule_id = %s ORDER BY tick",
                    (schedule_id,))
        return cur.fetchall()


def scheduled_tickets(platform: Platform, schedule_id: str) -> dict[str, UUID]:
    """idempotency key -> ticket id of every ticket the schedule created."""
    with platform.superuser() as conn:
        rows = conn.execute("SELECT idempotency_key, id FROM tickets WHERE idempotency_key LIKE %s",
                            (f"schedule:{schedule_id}:%",)).fetchall()
    return {str(key): ticket for key, ticket in rows}


def error_of(response: Any, status: int = 422) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    return f"{body['message']} | hint: {body.get('hint')}"


def test_create_refuses_what_could_never_fire_and_says_why(platform: Platform, ops: TenantClient) -> None:
    base = {"name": "nightly", "cron": "0 3 * * *", "bot": "echo"}
    cases: list[tuple[dict[str, Any], list[str]]] = [
        ({"cron": "0 3 * *"}, ["cron expression '0 3 * *' has 4 fields, not 5", 'e.g. "*/15 * * * *"']),
        ({"cron": "61 * * * *"}, ["cron expression '61 * * * *' is not valid"]),
        ({"timezone": "Mars/Olympus"}, ["unknown time zone 'Mars/Olympus'", "Europe/Berlin"]),
        ({"bot": "nobody"}, ["unknown bot 'nobody'", "known bots:", "echo"]),
        ({"bot": None, "type": "no-such-type"}, ["unknown ticket type 'no-such-type'", "oshal workflow list"]),
        ({"type": "ticket"}, ['give exactly one of "type" (a ticket type) or "bot" (a bot name)']),
        ({"bot": None}, ['give exactly one of "type"']),
        ({"name": "Nightly Report"}, ["a schedule name is 1 to 80 lowercase letters", "'Nightly Report'"]),
        ({"name": "x" * 81}, ["a schedule name is 1 to 80"]),
        ({"policy": "always"}, ["policy", "'skip' or 'catch_up_once'"]),
        ({"every": "day"}, ["every: Extra inputs are not permitted"]),
        ({"bot": None, "type": "ticket", "input": {}}, ["does not fit ticket type 'ticket'", "'text' is a required"]),
    ]
    for change, expected in cases:
        message = error_of(ops.http.post("/v1/schedules", json={**base, **change}))
        for part in expected:
            assert part in message, (change, message)
    assert ops.http.get("/v1/schedules").json() == []

    create(ops, **base)
    assert "a schedule named 'nightly' exists already" in error_of(ops.http.post("/v1/schedules", json=base), 409)
    member = make_tenant(platform, "sched-readers")
    try:
        assert error_of(member.http.post("/v1/schedules", json=base), 403).startswith("this action needs an operator")
        assert member.http.get("/v1/schedules").json() == []  # another tenant's schedules are not visible
    finally:
        member.http.close()


def test_create_list_show_update_disable_enable(platform: Platform, ops: TenantClient) -> None:
    before = datetime.now(UTC)
    made = create(ops, name="berlin-report", cron="*/5 * * * *", timezone="Europe/Berlin", bot="echo",
                  input={"report": "sales"}, policy="catch_up_once")
    assert made["summary"] == "every 5 minutes (Europe/Berlin)"
    assert (made["bot"], made["type"], made["enabled"], made["last_tick"]) == ("echo", None, True, None)
    next_tick = datetime.fromisoformat(made["next_tick"])
    assert before < next_tick <= before + timedelta(minutes=5) and next_tick.minute % 5 == 0
    typed = create(ops, name="triage", cron="@hourly", type="ticket", input={"text": "check the queue"})
    assert (typed["type"], typed["bot"], typed["policy"]) == ("ticket", None, "skip")

    assert [s["name"] for s in ops.http.get("/v1/schedules").json()] == ["berlin-report", "triage"]
    shown = ops.http.get("/v1/schedules/berlin-report").json()
    assert shown["fires"] == [] and shown["input"] == {"report": "sales"} and shown["id"] == made["id"]
    assert "no schedule named 'nope'" in error_of(ops.http.get("/v1/schedules/nope"), 404)

    patched = ops.http.patch("/v1/schedules/berlin-report", json={"cron": "0 9 * * 1-5", "input": None})
    assert patched.status_code == 200, patched.text
    assert patched.json()["summary"] == "every weekday at 09:00 (Europe/Berlin)" and patched.json()["input"] is None
    assert "nothing to change" in error_of(ops.http.patch("/v1/schedules/berlin-report", json={}))
    assert "bot: Extra inputs are not permitted" in error_of(
        ops.http.patch("/v1/schedules/berlin-report", json={"bot": "summarizer"}))
    assert "unknown time zone" in error_of(ops.http.patch("/v1/schedules/triage", json={"timezone": "Nowhere"}))
    assert "'text' is a required" in error_of(ops.http.patch("/v1/schedules/triage", json={"input": {}}))

    disabled = ops.http.post("/v1/schedules/berlin-report/disable").json()
    assert (disabled["enabled"], disabled["next_tick"]) == (False, None)
    enabled = ops.http.post("/v1/schedules/berlin-report/enable").json()
    assert enabled["enabled"] is True
    assert datetime.fromisoformat(enabled["next_tick"]) > datetime.fromisoformat(enabled["last_tick"]) >= before


def test_each_tick_fires_exactly_one_ticket_with_two_replicas_racing(platform: Platform, ops: TenantClient,
                                                                      replicas: list[Scheduler]) -> None:
    made = create(ops, name="daily", cron=far_daily_cron(), bot="echo", input={"job": "daily"})
    first = datetime.fromisoformat(made["next_tick"])
    ticks = [first + n * DAY for n in range(3)]
    for tick in ticks:
        assert fire_at(platform, replicas, [made["id"]], tick + timedelta(seconds=5), tick) == 1
        make_due(platform, [made["id"]])
        assert tick_all(platform, replicas, tick + timedelta(seconds=30)) == [0, 0]  # handled: never again

    recorded = fires(platform, made["id"])
    assert [f["tick"] for f in recorded] == ticks
    assert {f["fired_by"] for f in recorded} <= {"replica-a", "replica-b"}
    created = scheduled_tickets(platform, made["id"])
    assert created == {tick_key(UUID(made["id"]), f["tick"]): f["ticket_id"] for f in recorded}
    ticket = wait_done(ops.http, str(recorded[0]["ticket_id"]))
    assert (ticket["bot"], ticket["status"], ticket["result"]) == ("echo", "done", {"job": "daily"})
    shown = ops.http.get("/v1/schedules/daily").json()
    assert [datetime.fromisoformat(f["tick"]) for f in shown["fires"]] == list(reversed(ticks))
    assert datetime.fromisoformat(shown["last_tick"]) == ticks[-1]
    assert datetime.fromisoformat(shown["next_tick"]) == ticks[-1] + DAY


def test_due_schedules_fire_once_each_whichever_replica_wins(platform: Platform, ops: TenantClient,
                                                             replicas: list[Scheduler]) -> None:
    """The plane's loop and two replicas race on the real clock; every due schedule fires exactly once."""
    cron = far_daily_cron()
    ids = [create(ops, name=f"race-{n:02d}", cron=cron, bot="echo", input={"n": n}, policy="catch_up_once")["id"]
           for n in range(12)]
    with platform.superuser() as conn:  # two days pass: two ticks are due, catch_up_once fires the latest
        conn.execute("UPDATE schedules SET created_at = created_at - interval '2 days', "
                     "next_tick = now() - interval '1 second' WHERE id = ANY(%s::uuid[])", (ids,))
    now = datetime.now(UTC)
    latest = next_fire(cron, "UTC", now - DAY)
    fired_here = sum(sum(tick_all(platform, replicas)) for _ in range(3))
    assert fired_here <= len(ids)
    deadline = time.monotonic() + 10  # the plane's loop may still hold a few; it commits within its pass
    while not all(fires(platform, s) for s in ids) and time.monotonic() < deadline:
        time.sleep(0.1)

    for schedule_id in ids:
        recorded = fires(platform, schedule_id)
        assert [f["tick"] for f in recorded] == [latest], schedule_id
        key = tick_key(UUID(schedule_id), latest)
        assert scheduled_tickets(platform, schedule_id) == {key: recorded[0]["ticket_id"]}
        assert recorded[0]["fired_by"] in {"replica-a", "replica-b", platform.plane.scheduler.instance}


def test_missed_ticks_skip_fires_nothing_late_and_catch_up_once_fires_the_latest_once(
        platform: Platform, ops: TenantClient, replicas: list[Scheduler]) -> None:
    cron = far_daily_cron()
    skip = create(ops, name="skipper", cron=cron, bot="echo", policy="skip")
    catch_up = create(ops, name="catcher", cron=cron, bot="echo", policy="catch_up_once")
    first = datetime.fromisoformat(skip["next_tick"])
    both = [skip["id"], catch_up["id"]]

    # Down for three ticks; back two hours after the latest of them.
    assert fire_at(platform, replicas, both, first + 2 * DAY + timedelta(hours=2), first + 2 * DAY) == 1
    assert fires(platform, skip["id"]) == []
    assert [f["tick"] for f in fires(platform, catch_up["id"])] == [first + 2 * DAY]

    # Back on time (within the grace minute): both fire the next tick.
    assert fire_at(platform, replicas, both, first + 3 * DAY + timedelta(seconds=20), first + 3 * DAY) == 2
    assert [f["tick"] for f in fires(platform, skip["id"])] == [first + 3 * DAY]
    assert [f["tick"] for f in fires(platform, catch_up["id"])] == [first + 2 * DAY, first + 3 * DAY]
    assert len(scheduled_tickets(platform, skip["id"])) == 1
    assert len(scheduled_tickets(platform, catch_up["id"])) == 2


def test_a_disabled_schedule_never_fires(platform: Platform, ops: TenantClient, replicas: list[Scheduler]) -> None:
    made = create(ops, name="paused", cron=far_daily_cron(), bot="echo", policy="catch_up_once")
    first = datetime.fromisoformat(made["next_tick"])
    assert ops.http.post("/v1/schedules/paused/disable").status_code == 200
    with platform.superuser() as conn:  # as if a due query had listed it just before it was disabled
        conn.execute("UPDATE schedules SET next_tick = now() - interval '1 minute', "
                     "created_at = created_at - interval '3 days' WHERE id = %s", (made["id"],))
    for _ in range(3):
        assert tick_all(platform, replicas, first + 5 * DAY) == [0, 0]
    assert fires(platform, made["id"]) == [] and scheduled_tickets(platform, made["id"]) == {}

    enabled = ops.http.post("/v1/schedules/paused/enable").json()
    assert datetime.fromisoformat(enabled["next_tick"]) == first  # the days spent disabled are not owed
    assert fire_at(platform, replicas, [made["id"]], first + timedelta(seconds=5), first) == 1


def test_a_fire_interrupted_after_its_ticket_was_created_completes_with_that_ticket(
        platform: Platform, ops: TenantClient, replicas: list[Scheduler]) -> None:
    made = create(ops, name="crashy", cron=far_daily_cron(), bot="echo", input={"v": 1})
    first = datetime.fromisoformat(made["next_tick"])
    tenant = UUID(ops.tenant_id)
    # A pass created the tick's ticket, then died before recording the fire; then the input was edited.
    [orphan] = platform.on_plane(platform.plane.tickets.create(
        tenant, None, [TicketRequest("echo", {"v": 1}, tick_key(UUID(made["id"]), first))]))
    assert ops.http.patch("/v1/schedules/crashy", json={"input": {"v": 2}}).status_code == 200

    assert fire_at(platform, replicas, [made["id"]], first + timedelta(seconds=5), first) == 1
    assert [(f["tick"], f["ticket_id"]) for f in fires(platform, made["id"])] == [(first, orphan.id)]
    assert list(scheduled_tickets(platform, made["id"]).values()) == [orphan.id]


def test_run_fires_now_with_a_key_of_its_own(platform: Platform, ops: TenantClient) -> None:
    made = create(ops, name="on-demand", cron=far_daily_cron(), bot="echo", input={"hello": "now"})
    runs = [ops.http.post("/v1/schedules/on-demand/run") for _ in range(2)]
    assert [r.status_code for r in runs] == [201, 201], runs[0].text
    ticket_ids = [r.json()["ticket_id"] for r in runs]
    assert len(set(ticket_ids)) == 2
    for ticket_id in ticket_ids:
        ticket = wait_done(ops.http, ticket_id)
        assert (ticket["status"], ticket["result"]) == ("done", {"hello": "now"})
        assert ticket["idempotency_key"].startswith(f"schedule:{made['id']}:run:")

    shown = ops.http.get("/v1/schedules/on-demand").json()
    assert sorted(f["ticket_id"] for f in shown["fires"]) == sorted(ticket_ids)
    assert all(f["fired_by"].startswith("run:key:") for f in shown["fires"])
    assert shown["last_tick"] is None  # a run by hand is outside the timetable

    ops.http.post("/v1/schedules/on-demand/disable")
    assert ops.http.post("/v1/schedules/on-demand/run").status_code == 201  # an operator may still run it
    assert "no schedule named 'ghost'" in error_of(ops.http.post("/v1/schedules/ghost/run"), 404)


def test_cli_create_list_show_run_disable_enable(platform: Platform) -> None:
    created = cli_json(platform, "schedule", "create", "nightly", "--cron", "0 3 * * *", "--tz", "Europe/Berlin",
                       "--bot", "echo", "--input", '{"n": 1}', "--policy", "catch_up_once")
    assert (created["name"], created["policy"], created["input"]) == ("nightly", "catch_up_once", {"n": 1})

    listed = cli(platform, "schedule", "list")
    assert listed.returncode == 0, listed.stderr
    assert "nightly" in listed.stdout and "every day at 03:00 (Europe/Berlin)" in listed.stdout
    assert [s["name"] for s in cli_json(platform, "schedule", "list")] == ["nightly"]

    fired = cli_json(platform, "schedule", "run", "nightly")
    with platform.client() as admin:
        assert wait_done(admin, fired["ticket_id"])["result"] == {"n": 1}
    shown = cli(platform, "schedule", "show", "nightly")
    assert shown.returncode == 0 and fired["ticket_id"] in shown.stdout and "catch_up_once" in shown.stdout

    assert cli(platform, "schedule", "disable", "nightly").returncode == 0
    assert cli_json(platform, "schedule", "show", "nightly")["enabled"] is False
    enabled = cli(platform, "schedule", "enable", "nightly")
    assert enabled.returncode == 0 and "enabled; next tick at" in enabled.stdout

    bad_cron = cli(platform, "schedule", "create", "x", "--cron", "every day", "--bot", "echo")
    assert bad_cron.returncode == 3 and "has 2 fields, not 5" in bad_cron.stderr, bad_cron.stderr
    bad_input = cli(platform, "schedule", "create", "x", "--cron", "@daily", "--bot", "echo", "--input", "{no")
    assert bad_input.returncode == 3 and "--input is not valid JSON" in bad_input.stderr
    assert cli(platform, "schedule", "create", "x", "--cron", "@daily").returncode == 2
    missing = cli(platform, "schedule", "show", "ghost")
    assert missing.returncode == 4 and "no schedule named 'ghost'" in missing.stderr
    assert json.loads(cli(platform, "schedule", "list", "--json").stdout)[0]["enabled"] is True
