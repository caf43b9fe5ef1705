"""Fleet drift as Security Center findings: a declared bot with no replica running, and its end once it runs."""

from __future__ import annotations

from test_center import findings, scan

from conftest import Platform, wait_online


def test_a_declared_bot_that_is_not_running_is_a_finding_until_it_beats(platform: Platform) -> None:
    wait_online(platform, "echo")
    scan(platform, "runtime")
    [absent] = [f for f in findings(platform, "fleet.absent", "open") if f["subject"] == "absent:idle"]
    assert absent["severity"] == "medium" and "bot idle is declared" in absent["title"]
    running = [f for f in findings(platform, "fleet.absent", "open") if f["subject"] == "absent:echo"]
    assert not running, [(f["title"], f.get("evidence")) for f in running]  # it runs
    redis = platform.redis_admin()
    redis.set("oshal:hb:idle:replica-1", "{}", px=60_000)  # a replica of idle beats now
    try:
        scan(platform, "runtime")
        assert not [f for f in findings(platform, "fleet.absent", "open") if f["subject"] == "absent:idle"]
    finally:
        redis.delete("oshal:hb:idle:replica-1")
