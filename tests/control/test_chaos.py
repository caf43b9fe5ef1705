"""Chaos: 2,000 echo tickets through `oshal up` (the real process tree), and a fault mid-run.

Each case asserts that every ticket ends done, none dead-lettered, no phase succeeded twice beyond the work in
flight at the fault, and one ledger row per execution that reported. The platform under test re-drives after
3 s without progress and reclaims after 1.5 s idle, so each case recovers in seconds; nothing is timed.

Select with ``-m chaos``; skip with ``-m "not chaos"``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import redis as sync_redis

from conftest import REPO, free_port
from oshal.embedded import EmbeddedPostgres, EmbeddedRedis
from oshal.mesh.redis_keys import dead_stream

pytestmark = pytest.mark.chaos

TICKETS = 2000
# The echo bot, slowed so a run lasts a few seconds whatever the machine: at most 640 tickets/s.
LATENCY_MS, CONCURRENCY = 50, 32
IN_FLIGHT = CONCURRENCY  # the most executions that can be under way when a fault strikes (one replica)
FAULT_AFTER = 300  # tickets done before the fault
DEADLINE_S = 180.0  # per case: a bound on waiting, not an expectation


@dataclass
class Up:
    proc: subprocess.Popen[bytes]
    url: str
    key: str
    home: Path

    def superuser(self) -> psycopg.Connection[Any]:
        """Test housekeeping only: reads across tenants."""
        return psycopg.connect(EmbeddedPostgres(self.home).url(database="oshal"), autocommit=True)

    def redis_admin(self) -> sync_redis.Redis:
        return sync_redis.Redis.from_url(EmbeddedRedis(self.home).url(), socket_timeout=5)

    def http(self, key: str | None = None) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {key or self.key}"}, timeout=60)


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    home = tmp_path_factory.mktemp("chaos-home")
    fleet = home / "fleet"
    fleet.mkdir()
    echo = (REPO / "fleet" / "echo.yaml").read_text().replace("concurrency: 256", f"concurrency: {CONCURRENCY}")
    (fleet / "echo.yaml").write_text(f"{echo}latency_ms: {LATENCY_MS}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OSHAL_")}
    env.update({"OSHAL_HOME": str(home), "OSHAL_LOG_LEVEL": "warning", "OSHAL_STALE_AFTER_S": "3",
                "OSHAL_CLAIM_IDLE_MS": "1500", "OSHAL_SWEEP_INTERVAL_S": "0.5", "OSHAL_HEARTBEAT_TTL_S": "2",
                "OSHAL_DRAIN_TIMEOUT_S": "5", "OSHAL_SECURITY_SCAN_INTERVAL_S": "0", "OSHAL_MAX_DELIVERIES": "3"})
    port = free_port()
    log = (home / "up.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "oshal.cli.main", "up", "--port", str(port), "--fleet",
                             str(fleet)], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
    log.close()
    url = f"http://127.0.0.1:{port}"
    try:
        key = _until(lambda: _online(proc, url, home), 120, "oshal up to serve with its bot online")
        yield Up(proc, url, key, home)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(90)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _online(proc: subprocess.Popen[bytes], url: str, home: Path) -> str | None:
    assert proc.poll() is None, f"oshal up exited with {proc.returncode}; see {home / 'up.log'}"
    key_file = home / "admin.key"
    if not key_file.exists():
        return None
    key = key_file.read_text().strip()
    try:
        bots = httpx.get(f"{url}/v1/bots", headers={"Authorization": f"Bearer {key}"}, timeout=2)
    except httpx.HTTPError:
        return None
    return key if bots.status_code == 200 and all(b["status"] == "online" for b in bots.json()) else None


def _until(probe: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def _tenant(up: Up, name: str) -> str:
    with up.http() as admin:
        assert admin.post("/v1/tenants", json={"name": name}).status_code == 201
        key = admin.post("/v1/keys", json={"tenant": name, "role": "member", "name": f"{name}-key"})
        assert key.status_code == 201, key.text
    return str(key.json()["key"])


def _submit(up: Up, key: str) -> list[str]:
    ids: list[str] = []
    with up.http(key) as http:
        for start in range(0, TICKETS, 1000):
            batch = {"tickets": [{"bot": "echo", "input": {"n": n}} for n in range(start, start + 1000)]}
            response = http.post("/v1/tickets/batch", json=batch)
            assert response.status_code == 201, response.text
            ids += [t["id"] for t in response.json()["tickets"]]
    return ids


def _statuses(up: Up, ids: list[str]) -> dict[str, int]:
    with up.superuser() as conn:
        rows = conn.execute("SELECT status, count(*) FROM tickets WHERE id = ANY(%s::uuid[]) GROUP BY status",
                            (ids,)).fetchall()
    return {str(status): int(n) for status, n in rows}


def _settled(up: Up, ids: list[str]) -> dict[str, int] | None:
    counts = _statuses(up, ids)
    return counts if sum(n for s, n in counts.items() if s != "in_progress") == len(ids) else None


def _run(up: Up, tenant: str, fault: Callable[[], None]) -> None:
    key = _tenant(up, tenant)
    ids = _submit(up, key)
    _until(lambda: _statuses(up, ids).get("done", 0) >= FAULT_AFTER, DEADLINE_S, f"{FAULT_AFTER} tickets done")
    fault()
    done_at_fault = _statuses(up, ids).get("done", 0)
    assert done_at_fault < TICKETS, "the fault came after the run; it must strike mid-run"
    counts = _until(lambda: _settled(up, ids), DEADLINE_S, "every ticket to finish")
    assert counts == {"done": TICKETS}
    with up.superuser() as conn:
        executions, ledger, duplicates, phases_done = conn.execute(
            "SELECT (SELECT count(*) FROM attempts WHERE ticket_id = ANY(%(ids)s::uuid[])),"
            " (SELECT count(*) FROM ledger WHERE ticket_id = ANY(%(ids)s::uuid[])),"
            " (SELECT count(*) - count(DISTINCT phase_id) FROM attempts"
            "   WHERE ticket_id = ANY(%(ids)s::uuid[]) AND outcome = 'done'),"
            " (SELECT count(DISTINCT phase_id) FROM attempts WHERE ticket_id = ANY(%(ids)s::uuid[])"
            "   AND outcome = 'done')", {"ids": ids}).fetchone()
        wrong = conn.execute("SELECT count(*) FROM tickets WHERE id = ANY(%s::uuid[]) AND result <> input",
                             (ids,)).fetchone()
    assert phases_done == TICKETS and wrong == (0,)
    assert duplicates <= IN_FLIGHT, f"{duplicates} phases succeeded twice; at most {IN_FLIGHT} were in flight"
    assert ledger == executions  # every execution that reported is billed, once
    assert _shown_duplicates(up, key) == duplicates  # each ticket reports its own
    admin_redis = up.redis_admin()
    assert admin_redis.xlen(dead_stream("echo")) == 0
    admin_redis.close()


def _shown_duplicates(up: Up, key: str) -> int:
    total, cursor = 0, None
    with up.http(key) as http:
        while True:
            page = http.get("/v1/tickets", params={"limit": 500, **({"cursor": cursor} if cursor else {})}).json()
            total += sum(int(t["duplicates"]) for t in page["items"])
            cursor = page["next_cursor"]
            if cursor is None:
                return total


def test_flushall_mid_run(up: Up) -> None:
    def flush() -> None:
        admin = up.redis_admin()
        assert admin.flushall()
        admin.close()

    _run(up, "chaos-flush", flush)


def test_node_host_sigkill_mid_run(up: Up) -> None:
    [node] = subprocess.run(["pgrep", "-P", str(up.proc.pid), "-f", "oshal.cli.main node"],
                            capture_output=True, text=True, check=True).stdout.split()

    def kill_node_host() -> None:
        os.kill(int(node), signal.SIGKILL)

    _run(up, "chaos-node", kill_node_host)
    [restarted] = subprocess.run(["pgrep", "-P", str(up.proc.pid), "-f", "oshal.cli.main node"],
                                 capture_output=True, text=True, check=True).stdout.split()
    assert restarted != node


def _redis_ready(up: Up) -> bool:
    """Answers an authenticated PING and is not loading its data."""
    try:
        admin = up.redis_admin()
        try:
            return bool(admin.ping()) and int(admin.info("persistence")["loading"]) == 0
        finally:
            admin.close()
    except (sync_redis.RedisError, OSError):
        return False


def test_redis_sigkill_mid_run_restarted_by_the_supervisor(up: Up) -> None:
    admin = up.redis_admin()
    pid = int(admin.info("server")["process_id"])
    admin.close()

    def kill_redis() -> None:
        os.kill(pid, signal.SIGKILL)
        _until(lambda: _redis_ready(up) and _redis_pid(up) != pid, 30, "the supervisor to restart Redis")

    _run(up, "chaos-redis", kill_redis)


def _redis_pid(up: Up) -> int:
    admin = up.redis_admin()
    try:
        return int(admin.info("server")["process_id"])
    finally:
        admin.close()
