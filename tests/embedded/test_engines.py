"""Embedded engines on their own: readiness means an authenticated answer from a loaded server, and the keeper
restarts a killed server on the same data, socket and users (retrying with backoff while a restart fails)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
import redis
from redis.asyncio import Redis as AsyncRedis

from oshal.embedded import EmbeddedPostgres, EmbeddedRedis
from oshal.embedded.keeper import EngineKeeper
from oshal.embedded.redis import _server_binary, probe
from oshal.mesh.acl import provision_bot_user, save_users


def _wait(condition: Callable[[], object], what: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _persisted(admin: redis.Redis) -> None:
    """Until the append-only file has caught up (no fsync queued), so a SIGKILL cannot take the last writes."""
    _wait(lambda: int(admin.info("persistence")["aof_pending_bio_fsync"]) == 0, "the AOF to catch up")
    admin.ping()


@pytest.fixture
def embedded_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    rd = EmbeddedRedis(tmp_path)
    rd.start()
    try:
        yield rd
    finally:
        rd.stop()


def test_readiness_needs_a_login_not_just_an_answer(embedded_redis: EmbeddedRedis) -> None:
    with socket.socket(socket.AF_UNIX) as conn:  # what the old check accepted as "ready"
        conn.connect(str(embedded_redis.socket))
        conn.sendall(b"PING\r\n")
        assert conn.recv(64).startswith(b"-NOAUTH")
    assert probe(embedded_redis.socket, "default", "wrong") == "auth refused"
    assert probe(embedded_redis.socket, "nobody", embedded_redis.password) == "auth refused"
    assert probe(embedded_redis.socket, "default", embedded_redis.password) == "ready"
    assert embedded_redis.ready()
    assert probe(embedded_redis.dir / "missing.sock", "default", embedded_redis.password).startswith("unreachable")


def test_a_redis_still_loading_its_data_is_not_ready(tmp_path: Path) -> None:
    rd = EmbeddedRedis(tmp_path)
    rd.start()
    admin = redis.Redis.from_url(rd.url())
    for i in range(100):  # 10 MB that does not compress, loaded at 30 ms a key below: about 3 s of loading
        admin.set(f"blob:{i}", os.urandom(100_000))
    admin.bgrewriteaof()
    _wait(lambda: not any(int(admin.info("persistence")[k]) for k in ("aof_rewrite_in_progress",
                                                                     "aof_rewrite_scheduled")), "the AOF rewrite")
    admin.close()
    rd.stop()
    slow = subprocess.Popen([_server_binary(), str(rd.dir / "redis.conf"), "--key-load-delay", "30000"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait(rd.socket.exists, "the socket")
        answers = [probe(rd.socket, "default", rd.password, timeout_s=10)]
        assert answers[0] == "loading"  # it accepted the login, but cannot serve yet
        with pytest.raises(redis.exceptions.BusyLoadingError):
            redis.Redis.from_url(rd.url(), retry=None).ping()
        _wait(rd.ready, "the load to finish")
        assert redis.Redis.from_url(rd.url()).dbsize() == 100
    finally:
        slow.terminate()
        slow.wait(30)


async def _bot_user(rd: EmbeddedRedis, password: str) -> None:
    admin = AsyncRedis.from_url(rd.url())
    try:
        await provision_bot_user(admin, "echo", password)
        assert await save_users(admin)
    finally:
        await admin.aclose()


def test_a_killed_redis_comes_back_with_its_streams_groups_and_users(embedded_redis: EmbeddedRedis) -> None:
    rd = embedded_redis
    asyncio.run(_bot_user(rd, "bot-secret"))
    admin = redis.Redis.from_url(rd.url())
    admin.xgroup_create("oshal:lane:echo", "bots", id="0", mkstream=True)
    first = admin.xadd("oshal:lane:echo", {"e": "one"})
    admin.xadd("oshal:lane:echo", {"e": "two"})
    admin.xreadgroup("bots", "replica-1", {"oshal:lane:echo": ">"}, count=1)  # one delivered, not acknowledged
    _persisted(admin)
    admin.close()
    keeper = EngineKeeper({"redis": rd}, poll_s=0.05)
    keeper.start()
    try:
        killed = rd.server_pid()
        assert killed is not None and killed == (rd.child.pid if rd.child else None)
        os.kill(killed, signal.SIGKILL)
        _wait(lambda: keeper.status()["redis"].restarts and keeper.status()["redis"].state == "up", "a restart")
        assert rd.ready() and rd.server_pid() not in (None, killed)
        status = keeper.status()["redis"]
        assert status.restarts == 1 and status.last_exit == -signal.SIGKILL
    finally:
        keeper.stop()
    admin = redis.Redis.from_url(rd.url())  # same socket, same admin password
    assert [m[1] for m in admin.xrange("oshal:lane:echo")] == [{b"e": b"one"}, {b"e": b"two"}]
    pending = admin.xpending("oshal:lane:echo", "bots")
    assert pending["pending"] == 1 and pending["min"] == first
    admin.close()
    bot = redis.Redis.from_url(rd.url("bot-echo", "bot-secret"))  # the bot's identity survived
    assert bot.ping() is True
    bot.close()
    with pytest.raises(redis.exceptions.AuthenticationError):  # and the admin user still needs its password
        redis.Redis(unix_socket_path=str(rd.socket)).ping()


def test_a_restart_that_fails_is_retried_with_backoff_until_it_works(embedded_redis: EmbeddedRedis) -> None:
    rd = embedded_redis
    keeper = EngineKeeper({"redis": rd}, poll_s=0.05, first_delay_s=0.05, max_delay_s=0.4)
    keeper.start()
    try:
        bad = "user broken on >pw ~* +not-a-command\n"
        with open(rd.acl_file, "a") as acl:  # Redis refuses to start on a bad ACL file
            acl.write(bad)
        killed = rd.server_pid()
        assert killed is not None
        os.kill(killed, signal.SIGKILL)
        _wait(lambda: keeper.status()["redis"].restarts >= 3, "failed restarts")
        status = keeper.status()["redis"]
        assert status.state != "up" and not rd.ready()
        assert status.last_exit not in (None, 0, -signal.SIGKILL)  # the failed restarts' own exit codes

        def fixed_and_ready() -> bool:
            text = rd.acl_file.read_text()  # the keeper rewrites this file at each try: repair until it sticks
            if bad in text:
                rd.acl_file.write_text(text.replace(bad, ""))
            return keeper.status()["redis"].state == "up"

        _wait(fixed_and_ready, "a successful restart")
        assert rd.ready()
    finally:
        keeper.stop()


def test_a_killed_postgres_comes_back_with_its_data(tmp_path: Path) -> None:
    pg = EmbeddedPostgres(tmp_path)
    pg.start()
    keeper = EngineKeeper({"postgres": pg}, poll_s=0.05)
    keeper.start()
    try:
        with psycopg.connect(pg.url(), autocommit=True) as conn:
            conn.execute("CREATE TABLE kept (v int)")
            conn.execute("INSERT INTO kept VALUES (42)")
        killed = pg.server_pid()
        assert killed is not None
        os.kill(killed, signal.SIGKILL)
        _wait(lambda: keeper.status()["postgres"].restarts and keeper.status()["postgres"].state == "up",
              "a restart")
        assert pg.ready() and pg.server_pid() not in (None, killed)
        with psycopg.connect(pg.url()) as conn:  # same socket, same password, committed data kept
            assert conn.execute("SELECT v FROM kept").fetchall() == [(42,)]
    finally:
        keeper.stop()
        pg.stop()
    assert pg.server_pid() is None
