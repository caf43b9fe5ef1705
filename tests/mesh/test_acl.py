"""Each bot's Redis ACL user reaches only its own lane, output stream and heartbeat keys."""

from __future__ import annotations

import json

import pytest
import redis

from conftest import Platform
from oshal.mesh.redis_keys import EVENTS_CHANNEL, waiter_channel


def _bot(platform: Platform, name: str) -> redis.Redis:
    creds = json.loads((platform.home / "run" / "bot-credentials.json").read_text())
    return redis.Redis.from_url(creds[name])


def test_a_bot_cannot_read_or_write_another_bots_streams(platform: Platform) -> None:
    echo = _bot(platform, "echo")
    assert echo.ping() is True
    assert echo.xadd("oshal:out:echo", {"probe": "1"})  # its own output stream: allowed
    for command in (
        lambda: echo.xreadgroup("bots", "spy", {"oshal:lane:summarizer": ">"}, count=1),
        lambda: echo.xadd("oshal:lane:summarizer", {"e": "{}"}),
        lambda: echo.xadd("oshal:out:summarizer", {"e": "{}"}),
        lambda: echo.set("oshal:hb:summarizer:fake", "1"),
        lambda: echo.get("oshal:hb:echo:x"),
        lambda: echo.xrange("oshal:lane:echo"),
        lambda: echo.keys("*"),
        lambda: echo.flushall(),
        lambda: echo.config_get("*"),
        lambda: echo.publish("oshal:events", "[]"),
        lambda: echo.acl_list(),
    ):
        with pytest.raises(redis.exceptions.NoPermissionError):
            command()
    echo.close()
    admin = platform.redis_admin()
    admin.xtrim("oshal:out:echo", maxlen=0)  # drop the probe
    admin.close()


def test_a_bot_can_neither_hear_nor_forge_the_control_planes_events(platform: Platform) -> None:
    """Finished tickets' rows go to a control-plane process's own channel: no bot (nor a remote node, which has its
    bot's permissions) may subscribe to it, to the shared status channel or to any pattern, or publish there."""
    echo = _bot(platform, "echo")
    waiter = waiter_channel("0" * 32)
    for command in (("SUBSCRIBE", waiter), ("SUBSCRIBE", EVENTS_CHANNEL), ("PSUBSCRIBE", "*"),
                    ("PSUBSCRIBE", f"{EVENTS_CHANNEL}:to:*"), ("PUBLISH", waiter, "{}"), ("PUBSUB", "CHANNELS")):
        with pytest.raises(redis.exceptions.NoPermissionError):
            echo.execute_command(*command)
    echo.close()


def test_a_bot_reads_its_own_done_markers_and_nobody_elses_and_runs_no_scripts(platform: Platform) -> None:
    """The fence checks done markers with EXISTS; scripting is refused (a script can block Redis for everyone)."""
    echo = _bot(platform, "echo")
    assert echo.exists("oshal:done:echo:some-phase") == 0
    for key in ("oshal:done:summarizer:some-phase", "oshal:lane:summarizer"):
        with pytest.raises(redis.exceptions.NoPermissionError):
            echo.exists(key)
    with pytest.raises(redis.exceptions.NoPermissionError):
        echo.eval("while true do end", 0)
    echo.close()


def test_a_bot_password_is_needed_and_the_default_user_is_locked(platform: Platform) -> None:
    creds = json.loads((platform.home / "run" / "bot-credentials.json").read_text())
    socket_path = platform.engines.redis_url.split("@", 1)[1]
    with pytest.raises(redis.exceptions.AuthenticationError):
        redis.Redis.from_url(f"unix://bot-echo:wrong@{socket_path}").ping()
    with pytest.raises(redis.exceptions.AuthenticationError):
        redis.Redis(unix_socket_path=socket_path).ping()
    assert (platform.home / "run" / "bot-credentials.json").stat().st_mode & 0o777 == 0o600
    assert set(creds) >= {"echo", "summarizer", "triage"}


def test_bot_passwords_derive_from_the_dispatch_key_and_the_redis_admin_password(platform: Platform) -> None:
    """So the control plane can re-create a lost user with the password the node holds, and rotating the admin
    password rotates them all."""
    from urllib.parse import urlsplit

    from oshal.mesh.acl import bot_password

    key, url = platform.engines.dispatch_key, platform.engines.redis_url
    creds = json.loads((platform.home / "run" / "bot-credentials.json").read_text())
    assert urlsplit(creds["echo"]).password == bot_password(key, url, "echo")
    socket_path = url.split("@", 1)[1]
    others = {bot_password(key, f"unix://default:another-admin-password@{socket_path}", "echo"),
              bot_password(key + b"x", url, "echo"), bot_password(key, url, "summarizer")}
    assert bot_password(key, url, "echo") not in others and len(others) == 3
