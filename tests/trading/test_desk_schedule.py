"""The scheduled daily recap: a platform schedule (`oshal trade desk schedule-recap`) files recap requests, and the
long-running desk service (`oshal trade desk serve`, a process of its own) answers each with the recap of the last
booked session — one recap per desk and day however often it is asked for."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from typing import Any

from conftest import Platform, TenantClient, make_tenant, wait_done
from desk_support import desk
from oshal_trading import recap_requests

LAST = dt.date(2016, 1, 27)


def _trade(platform: Platform, ops: TenantClient, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OSHAL_API_URL": platform.url, "OSHAL_API_KEY": ops.key, "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "oshal.cli.main", "trade", *args], env=env, capture_output=True,
                          text=True, timeout=120)


def _fire(ops: TenantClient, name: str) -> str:
    fired = ops.http.post(f"/v1/schedules/{name}/run")
    assert fired.status_code == 201, fired.text
    ticket = wait_done(ops.http, fired.json()["ticket_id"])
    assert ticket["status"] == "done" and ticket["bot"] == "trade-recap", ticket
    assert ticket["result"]["request"] == "daily-recap"  # acknowledged: the bot has no books to write from
    return str(ticket["id"])


def _answers(ops: TenantClient) -> dict[str, dict[str, Any]]:
    page = ops.http.get("/v1/apps/trading/records/recap-requests", params={"limit": 200}).json()
    return {item["body"]["request"]: item["body"] for item in page["items"]}


async def test_a_scheduled_recap_request_is_answered_by_the_desk_service_once_per_day(platform: Platform) -> None:
    ops = make_tenant(platform, "desk-recap-schedule", role="operator")
    service = desk(platform.url, ops.key)
    await service.start()
    booked = await service.run(LAST, start=dt.date(2016, 1, 25))  # bars seen from 2016-01-04
    assert booked[-1].day == LAST
    await service.api.aclose()

    scheduled = _trade(platform, ops, "desk", "schedule-recap", "--cron", "0 17 * * 1-5")
    assert scheduled.returncode == 0 and "created" in scheduled.stdout, scheduled.stdout + scheduled.stderr
    name = recap_requests.schedule_name("main")
    schedule = ops.http.get(f"/v1/schedules/{name}").json()
    assert (schedule["bot"], schedule["input"], schedule["timezone"]) == (
        "trade-recap", {"request": "daily-recap", "desk": "main"}, "America/New_York")
    assert _trade(platform, ops, "desk", "schedule-recap").returncode == 0  # again: the timetable changes
    assert ops.http.get(f"/v1/schedules/{name}").json()["cron"] == recap_requests.DEFAULT_CRON

    env = {**os.environ, "OSHAL_API_URL": platform.url, "OSHAL_API_KEY": ops.key, "COLUMNS": "200"}
    server = subprocess.Popen([sys.executable, "-m", "oshal.cli.main", "trade", "desk", "serve", "--interval", "0.2"],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = _fire(ops, name)
        second = _fire(ops, name)  # the same day asked twice: answered twice, recapped once
        deadline = time.monotonic() + 90
        while set(_answers(ops)) != {first, second}:
            assert server.poll() is None, server.communicate()
            assert time.monotonic() < deadline, f"the desk service answered {_answers(ops)} in 90 s"
            time.sleep(0.2)
    finally:
        server.send_signal(signal.SIGTERM)
        output, errors = server.communicate(timeout=30)
    assert server.returncode == 0, errors
    answers = _answers(ops)
    assert {a["day"] for a in answers.values()} == {LAST.isoformat()}
    [recap_ticket] = {a["recap_ticket"] for a in answers.values()}
    assert f"recap of {LAST.isoformat()} (ticket {recap_ticket})" in output

    recap = ops.http.get(f"/v1/tickets/{recap_ticket}").json()
    assert recap["status"] == "done" and recap["input"]["day"] == LAST.isoformat()
    assert recap["result"]["equity_end"] == booked[-1].equity and recap["result"]["chart"]["artifact"] == "equity.png"
    chart = ops.http.get(f"/v1/tickets/{recap_ticket}/artifacts/equity.png")
    assert chart.status_code == 200 and chart.content.startswith(b"\x89PNG")
    recaps = ops.http.get("/v1/tickets", params={"bot": "trade-recap", "limit": 50}).json()["items"]
    assert len([t for t in recaps if "request" not in t["input"]]) == 1  # one recap for the day, two requests

    # a later session booked, a new request: the service (here one round) recaps the new last session
    later = desk(platform.url, ops.key)
    await later.start()
    await later.run(dt.date(2016, 1, 28))
    await later.api.aclose()
    third = _fire(ops, name)
    once = _trade(platform, ops, "desk", "serve", "--once", "--json")
    assert once.returncode == 0, once.stderr
    assert _answers(ops)[third]["day"] == "2016-01-28"
    nothing = _trade(platform, ops, "desk", "serve", "--once", "--json")
    assert nothing.returncode == 0 and nothing.stdout.strip() == "[]"  # every request answered, once
