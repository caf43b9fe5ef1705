"""A bot replica whose Redis login is refused keeps running: it backs off, retries, logs the trouble once, and gets
to work as soon as its identity is accepted again."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

from conftest import Platform
from oshal.bots import worker as worker_module
from oshal.bots.harnesses import build_harness
from oshal.bots.manifest import load_fleet
from oshal.bots.redis_retry import Backoff, RedisTrouble
from oshal.bots.worker import BotWorker, WorkerOptions
from oshal.mesh.redis import connect

BOT = "idle"  # a fleet bot no node runs in the tests


async def _until(condition: Any, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


def _refused_logins(platform: Platform) -> int:
    admin = platform.redis_admin()
    try:
        return sum(int(e["count"]) for e in admin.acl_log() if e["reason"] == "auth" and e["username"] == f"bot-{BOT}")
    finally:
        admin.close()


def _submit_and_wait(platform: Platform) -> dict[str, Any]:
    with platform.client() as http:
        tid = http.post("/v1/tickets", json={"bot": BOT, "input": {"back": True}}).json()["id"]
        ticket: dict[str, Any] = http.get(f"/v1/tickets/{tid}", params={"wait": 30}).json()
        while ticket["status"] not in ("done", "failed", "dead_letter"):
            ticket = http.get(f"/v1/tickets/{tid}", params={"wait": 30}).json()
    return ticket


class RecordedLog:
    """Where a worker's log lines go in these tests, so they can be counted."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def __getattr__(self, level: str) -> Any:
        return lambda event, **fields: self.events.append((event, fields))


async def test_a_refused_login_is_retried_with_backoff_until_accepted(
        platform: Platform, monkeypatch: pytest.MonkeyPatch) -> None:
    log = RecordedLog()
    monkeypatch.setattr(worker_module, "log", log)
    url = json.loads((platform.home / "run" / "bot-credentials.json").read_text())[BOT]
    wrong = "not-the-bots-password"
    user_part, host_part = url.split("@", 1)
    client = connect(f"{user_part.rsplit(':', 1)[0]}:{wrong}@{host_part}")
    manifest = load_fleet(platform.fleet_dir)[BOT]
    harness = build_harness(manifest)
    worker = BotWorker(manifest, client, harness, WorkerOptions(claim_idle_ms=1000, heartbeat_ttl_s=2))
    admin = platform.redis_admin()
    admin.acl_log_reset()
    task = asyncio.create_task(worker.run())
    try:
        await _until(lambda: _refused_logins(platform) >= 5, "several refused logins")
        assert not task.done()  # refused, but not dead
        admin.execute_command("ACL", "SETUSER", f"bot-{BOT}", f">{wrong}")  # the identity is accepted again
        ticket = await asyncio.to_thread(_submit_and_wait, platform)  # the worker runs on this loop meanwhile
        assert ticket["status"] == "done" and ticket["result"] == {"back": True}
    finally:
        worker.stop()
        await asyncio.wait_for(task, 30)
        admin.execute_command("ACL", "SETUSER", f"bot-{BOT}", f"<{wrong}")
        admin.close()
        await harness.aclose()
        await client.aclose()
    trouble = [fields for event, fields in log.events if event.startswith("redis trouble")]
    assert len(trouble) == 1 and trouble[0]["reason"] == "login refused"  # once for the outage, not per retry
    assert sum(event == "redis usable again" for event, _ in log.events) == 1


def test_backoff_doubles_up_to_its_cap_with_jitter_and_resets_on_success() -> None:
    log = RecordedLog()
    backoff = Backoff(RedisTrouble(log), "read", base_s=0.1, cap_s=1.0)
    error = ConnectionError("down")
    delays = [backoff.failed(error) for _ in range(40)]
    for n, delay in enumerate(delays):
        ceiling = min(0.1 * 2 ** n, 1.0)
        assert ceiling / 2 <= delay <= ceiling
    assert len(set(delays[10:])) > 1  # jittered, so replicas do not retry in lockstep
    assert [event for event, _ in log.events] == ["redis trouble; backing off and retrying"]
    backoff.succeeded()
    assert log.events[-1][0] == "redis usable again"
    assert 0.05 <= backoff.failed(error) <= 0.1  # starts small again
