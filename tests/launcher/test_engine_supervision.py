"""Engines are supervised like every other process: a SIGKILLed Redis or Postgres under `oshal up` is restarted on
the same data, socket and passwords; /readyz and `oshal status` name the engine that is down until it is back; bot
identities survive (from the ACL file, or re-created by the control plane); work submitted afterwards completes.

To observe the outage deterministically, the `oshal up` process (whose keeper restarts engines) is paused with
SIGSTOP while the engine is killed, and resumed with SIGCONT; the control plane and node host keep running.
"""

from __future__ import annotations

import json
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
import pytest
import redis

from conftest import REPO, Platform, free_port
from oshal.embedded import EmbeddedPostgres, EmbeddedRedis


@dataclass
class Up:
    proc: subprocess.Popen[bytes]
    home: Path
    url: str
    key: str
    log: Path

    def http(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {self.key}"}, timeout=30)

    def readyz(self) -> tuple[int, dict[str, Any]]:
        response = httpx.get(f"{self.url}/readyz", timeout=30)
        return response.status_code, response.json()

    def bot(self, name: str) -> redis.Redis:
        credentials = json.loads((self.home / "run" / "bot-credentials.json").read_text())
        return redis.Redis.from_url(credentials[name], retry=None)

    def status_cli(self) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OSHAL_")}
        env.update({"OSHAL_API_URL": self.url, "OSHAL_API_KEY": self.key, "COLUMNS": "200"})
        return subprocess.run([sys.executable, "-m", "oshal.cli.main", "status"], env=env, capture_output=True,
                              text=True, timeout=120)


def _wait(condition: Callable[[], Any], what: str, timeout: float = 120) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = condition()
        except (httpx.HTTPError, redis.exceptions.RedisError):
            value = None
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    home = tmp_path_factory.mktemp("supervised") / "home"
    port = free_port()
    log = home.parent / "up.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("OSHAL_")}
    # A lane reply lost to a paused node host is re-delivered after the claim idle time: keep it short.
    env.update({"OSHAL_HOME": str(home), "OSHAL_LOG_LEVEL": "warning", "OSHAL_CLAIM_IDLE_MS": "2000"})
    with open(log, "wb") as out:  # a file, not a pipe: a full pipe would block every child that logs
        proc = subprocess.Popen([sys.executable, "-m", "oshal.cli.main", "up", "--port", str(port), "--fleet",
                                 str(REPO / "fleet")], env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        def online() -> str | None:
            assert proc.poll() is None, log.read_text()
            key = (home / "admin.key").read_text().strip() if (home / "admin.key").exists() else None
            bots = httpx.get(f"{url}/v1/bots", headers={"Authorization": f"Bearer {key}"}, timeout=5)
            return key if bots.status_code == 200 and all(b["status"] == "online" for b in bots.json()) else None

        yield Up(proc, home, url, _wait(online, "oshal up"), log)
    finally:
        os.kill(proc.pid, signal.SIGCONT)  # in case a test failed while it was paused
        proc.send_signal(signal.SIGINT)
        proc.wait(120)
    assert proc.returncode == 0, log.read_text()


def _echo(up: Up, payload: dict[str, Any]) -> dict[str, Any]:
    with up.http() as http:
        created = http.post("/v1/tickets", json={"bot": "echo", "input": payload})
        assert created.status_code in (200, 201, 202), created.text
        ticket: dict[str, Any] = _wait(
            lambda: (t := http.get(f"/v1/tickets/{created.json()['id']}", params={"wait": 20}).json())["status"]
            in ("done", "failed", "dead_letter") and t, "the ticket to finish")
    return ticket


def _kill_while_paused(up: Up, pid: int, engine: str, while_down: Callable[[], None] = lambda: None) -> None:
    """SIGKILL ``pid`` with the keeper paused, check what /readyz and `oshal status` say, run ``while_down``."""
    os.kill(up.proc.pid, signal.SIGSTOP)
    try:
        os.kill(pid, signal.SIGKILL)
        code, body = _wait(lambda: (r := up.readyz())[0] == 503 and r, f"/readyz to notice {engine} is down")
        assert code == 503 and body["status"] == "unavailable"
        assert body["checks"][engine].startswith("down since ")
        assert body["engines"][engine]["ready"] is False and body["engines"][engine]["error"]
        other = "postgres" if engine == "redis" else "redis"
        assert body["checks"][other] == "ok"
        status = up.status_cli()
        assert status.returncode != 0
        assert f"{engine} down since" in status.stdout + status.stderr
        while_down()
    finally:
        os.kill(up.proc.pid, signal.SIGCONT)


def test_a_killed_redis_is_restarted_and_bots_get_back_in(up: Up) -> None:
    rd = EmbeddedRedis(up.home)
    admin = redis.Redis.from_url(rd.url())
    # Echo's user is removed from Redis and from its ACL file: only the control plane can give it back.
    admin.acl_deluser("bot-echo")
    admin.execute_command("ACL", "SAVE")
    lanes_before = {b: admin.xinfo_groups(f"oshal:lane:{b}")[0]["name"] for b in ("echo", "summarizer")}
    admin.close()
    killed = rd.server_pid()
    assert killed is not None

    _kill_while_paused(up, killed, "redis")

    _wait(lambda: up.readyz()[0] == 200, "/readyz to be 200 again")
    assert rd.server_pid() not in (None, killed)
    assert up.bot("summarizer").ping() is True  # kept in the ACL file
    assert up.bot("echo").ping() is True  # re-created by the control plane
    admin = redis.Redis.from_url(rd.url())  # same socket, same admin password
    assert {b: admin.xinfo_groups(f"oshal:lane:{b}")[0]["name"] for b in lanes_before} == lanes_before
    admin.close()
    ticket = _echo(up, {"after": "redis"})
    assert ticket["status"] == "done" and ticket["result"] == {"after": "redis"}
    assert "engine died; restarting it" in up.log.read_text()


def _node_host(up: Up) -> int:
    pids = subprocess.run(["pgrep", "-P", str(up.proc.pid), "-f", "oshal.cli.main node .*--bot echo"],
                          capture_output=True, text=True).stdout.split()
    assert len(pids) == 1, pids
    return int(pids[0])


def test_a_killed_postgres_is_restarted_and_the_control_plane_reconnects(up: Up) -> None:
    before = _echo(up, {"before": "postgres"})
    pg = EmbeddedPostgres(up.home)
    killed = pg.server_pid()
    assert killed is not None
    # Results must reach the collector while Postgres is down: hold the node host, queue work, then let it run.
    node = _node_host(up)
    os.kill(node, signal.SIGSTOP)
    try:
        with up.http() as http:
            queued = [http.post("/v1/tickets", json={"bot": "echo", "input": {"n": n}}).json()["id"]
                      for n in range(20)]
        admin = redis.Redis.from_url(EmbeddedRedis(up.home).url())

        def results_wait_for_postgres() -> None:
            os.kill(node, signal.SIGCONT)
            _wait(lambda: admin.xlen("oshal:lane:echo") == 0, "the bot to finish the queued work")

        _kill_while_paused(up, killed, "postgres", results_wait_for_postgres)
    finally:
        os.kill(node, signal.SIGCONT)
    admin.close()

    _wait(lambda: up.readyz()[0] == 200, "/readyz to be 200 again")
    assert pg.server_pid() not in (None, killed)
    with up.http() as http:  # the results produced during the outage were recorded once it was over
        for n, tid in enumerate(queued):
            done = _wait(lambda tid=tid: (t := http.get(f"/v1/tickets/{tid}", params={"wait": 20}).json())
                         ["status"] == "done" and t, "a queued ticket")
            assert done["result"] == {"n": n}
        assert http.get(f"/v1/tickets/{before['id']}").json()["result"] == {"before": "postgres"}
    ticket = _echo(up, {"after": "postgres"})
    assert ticket["status"] == "done" and ticket["result"] == {"after": "postgres"}
    status = up.status_cli()
    assert status.returncode == 0, status.stderr


def test_the_session_platforms_engines_are_supervised_too(platform: Platform) -> None:
    """What crash tests on the session platform build on: ``Platform.kill_engine`` SIGKILLs a server and returns
    once the keeper has restarted it and /readyz is 200 again."""
    assert platform.engines.keeper is not None
    for engine in ("redis", "postgres"):
        server = platform.engines.redis if engine == "redis" else platform.engines.postgres
        assert server is not None
        killed = platform.kill_engine(engine)
        assert server.server_pid() not in (None, killed)
        assert platform.engines.keeper.status()[engine].state == "up"
        with platform.client() as http:
            tid = http.post("/v1/tickets", json={"bot": "echo", "input": {"after": engine}}).json()["id"]
            ticket = _wait(lambda tid=tid: (t := http.get(f"/v1/tickets/{tid}", params={"wait": 20}).json())
                           ["status"] == "done" and t, "the ticket to finish")
        assert ticket["result"] == {"after": engine}
