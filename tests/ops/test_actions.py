"""The heal actions against the real platform: applied, verified on the live platform, rolled back when the effect
does not hold, refused over their rate budget (counted from the audit log) or when their precondition fails."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from conftest import Platform, make_tenant, wait_done
from control.test_crash_safety import node_processes
from external.fake_shop import FakeShop
from oshal.mesh.redis_keys import dead_stream, lane_stream
from oshal_ops.actions import ACTIONS, RateBudget, Step
from oshal_ops.api import PlatformAPI
from oshal_ops.executor import Executor
from shopfront import enable_shop


@pytest.fixture
async def api(platform: Platform, ops_key: str) -> AsyncIterator[PlatformAPI]:
    async with PlatformAPI(platform.url, ops_key) as client:
        yield client


def _phase(platform: Platform, ticket: str) -> tuple[str, int]:
    with platform.superuser() as conn:
        row = conn.execute("SELECT status, attempt FROM phases WHERE ticket_id = %s", (ticket,)).fetchone()
    assert row is not None
    return str(row[0]), int(row[1])


async def _switches(api: PlatformAPI) -> dict[str, str]:
    return {str(k["scope"]): str(k["reason"]) for k in await api.get("/v1/kill")}


async def test_pause_bot_holds_the_bots_work_until_its_rollback_releases_it(platform: Platform,
                                                                            api: PlatformAPI) -> None:
    executor = Executor(api, verify_timeout_s=10)
    before = await executor.applied_last_hour("pause_bot")
    result = await executor.execute("pause_bot", "echo", {"reason": "echo leaks memory"}, incident="INC-pause")
    assert result.refused_reason is None and result.applied_at is not None
    assert result.verified and not result.rolled_back, result.detail
    reason = (await _switches(api))["bot:echo"]
    assert reason.startswith("echo leaks memory") and f"incident=INC-pause run={result.run}" in reason

    # The effect, seen from outside: echo's new work stays queued before its lane, other bots still work.
    held = await api.post("/v1/tickets", {"bot": "echo", "input": {"n": 1}}, wait=1)
    other = await api.post("/v1/tickets", {"bot": "summarizer", "input": {"text": "a. b."}}, wait=10)
    assert held["status"] == "in_progress" and _phase(platform, held["id"]) == ("queued", 0)
    assert other["status"] == "done"
    assert await executor.applied_last_hour("pause_bot") == before + 1  # the audit log holds it, as this key's

    again = await executor.execute("pause_bot", "echo", incident="INC-pause", taken_in_incident=1)
    assert again.refused and "already paused" in str(again.refused_reason) and again.applied_at is None

    step = Step(api, await executor.identity(), "echo", {}, "")
    assert "released kill switch bot:echo" in await ACTIONS["pause_bot"].rollback(step)
    assert await _switches(api) == {}
    with platform.client() as admin:
        done = wait_done(admin, held["id"])
    assert done["status"] == "done" and done["result"] == {"n": 1}


async def test_the_global_switch_holds_every_bot_and_its_rollback_releases_it(platform: Platform,
                                                                              api: PlatformAPI) -> None:
    executor = Executor(api, verify_timeout_s=10)
    result = await executor.execute("engage_global_kill_switch", "global", incident="INC-everything")
    assert result.verified and not result.rolled_back, result.detail
    assert "every bot is held by the global kill switch" in result.detail
    assert all(bot["kill_switch"] for bot in await api.get("/v1/bots"))
    once = await executor.execute("engage_global_kill_switch", "global", incident="INC-everything",
                                  taken_in_incident=1)
    assert once.refused and "at most 1 per incident" in str(once.refused_reason)
    step = Step(api, await executor.identity(), "global", {}, "")
    assert "released kill switch global" in await ACTIONS["engage_global_kill_switch"].rollback(step)
    assert not any(bot["kill_switch"] for bot in await api.get("/v1/bots"))


async def test_requeue_dead_letters_runs_a_poison_message_again_and_verifies_it_left(platform: Platform,
                                                                                    api: PlatformAPI) -> None:
    executor = Executor(api, verify_timeout_s=30)
    before = await executor.applied_last_hour("requeue_dead_letters")
    ticket = (await api.post("/v1/tickets", {"bot": "idle", "input": {"job": 7}}))["id"]
    admin = platform.redis_admin()
    lane = lane_stream("idle")
    # Three replicas take the message in turn and die before acknowledging it (as in the crash-safety tests).
    [(_, [(message_id, _)])] = admin.xreadgroup("bots", "ghost-1", {lane: ">"}, count=1)
    for ghost in ("ghost-2", "ghost-3"):
        admin.xclaim(lane, "bots", ghost, 0, [message_id])
    unserved = await executor.execute("requeue_dead_letters", "idle", incident="INC-poison")
    assert unserved.refused and "no live replica" in str(unserved.refused_reason)
    try:
        with node_processes(platform, "idle", 1):
            with platform.client() as http:
                assert wait_done(http, ticket)["status"] == "dead_letter"
            result = await executor.execute("requeue_dead_letters", "idle", {"limit": 5}, incident="INC-poison")
            assert result.verified and not result.rolled_back, result.detail
            assert ticket in result.detail and f"{ticket}: done" in result.detail
        shown = await api.get(f"/v1/tickets/{ticket}")
        assert shown["status"] == "done" and shown["result"] == {"job": 7} and shown["attempts"] == 2
        assert (await api.get("/v1/dead-letters", bot="idle"))["items"] == []
        assert await executor.applied_last_hour("requeue_dead_letters") == before + 1
        nothing_left = await executor.execute("requeue_dead_letters", "idle", incident="INC-poison",
                                              taken_in_incident=1)
        assert nothing_left.refused  # no replica now, and nothing to requeue either
    finally:
        admin.delete(dead_stream("idle"))
        admin.close()


async def test_an_action_over_its_hourly_budget_is_refused_by_the_audit_log_count(platform: Platform,
                                                                                  api: PlatformAPI) -> None:
    already = await Executor(api).applied_last_hour("pause_bot")
    budget = RateBudget(per_incident=5, per_hour=already + 1)
    first = await Executor(api, budgets={"pause_bot": budget}).execute("pause_bot", "scorer", incident="INC-rate-1")
    assert first.verified, first.detail
    await api.delete("/v1/kill/scorer")

    # A fresh executor (a restarted loop) knows nothing in memory: the audit log is what refuses it.
    second = await Executor(api, budgets={"pause_bot": budget}).execute("pause_bot", "scorer", incident="INC-rate-2")
    assert second.refused and second.applied_at is None
    assert f"applied {already + 1} time(s) in the last hour" in str(second.refused_reason)
    assert "bot:scorer" not in await _switches(api)
    # Per incident: the caller's count.
    in_incident = await Executor(api).execute("pause_bot", "scorer", incident="INC-rate-3", taken_in_incident=2)
    assert in_incident.refused and "at most 2 per incident" in str(in_incident.refused_reason)
    assert "bot:scorer" not in await _switches(api)


async def test_a_release_that_does_not_free_the_bot_is_rolled_back(platform: Platform, api: PlatformAPI) -> None:
    """Releasing echo's switch cannot make echo work while the global switch holds every bot: the verification
    fails and the release is undone, with the switch's original reason."""
    await api.post("/v1/kill", {"bot": "echo", "reason": "bad deploy of echo"})
    await api.post("/v1/kill", {"reason": "maintenance window"})
    try:
        result = await Executor(api, verify_timeout_s=1, poll_s=0.1).execute("release_kill_switch", "echo",
                                                                            incident="INC-held")
        assert result.applied_at is not None and not result.verified and result.rolled_back, result.detail
        assert "still held: kill switch global is engaged" in result.detail
        switches = await _switches(api)
        assert set(switches) == {"global", "bot:echo"}
        assert switches["bot:echo"].startswith("bad deploy of echo (re-engaged: the release did not verify)")
    finally:
        for scope in await _switches(api):
            await api.delete(f"/v1/kill/{scope.removeprefix('bot:')}")


async def test_actions_the_platform_cannot_do_and_keys_that_may_not_are_refused(platform: Platform,
                                                                                api: PlatformAPI) -> None:
    executor = Executor(api)
    unknown = await executor.execute("drop_database", "global", incident="INC-x")
    assert unknown.refused and "not an allowed action" in str(unknown.refused_reason)
    scale_to_zero = await executor.execute("scale_lane", "echo", {"replicas": 0}, incident="INC-x")
    assert scale_to_zero.refused and "never scales a lane to zero" in str(scale_to_zero.refused_reason)
    missing = await executor.execute("disable_connector", "no-such-api", incident="INC-x")
    assert missing.refused and "no connector 'no-such-api'" in str(missing.refused_reason)
    bad_input = await executor.execute("requeue_dead_letters", "echo", {"limit": 0}, incident="INC-x")
    assert bad_input.refused and "limit must be a whole number from 1 to 100" in str(bad_input.refused_reason)
    bad_target = await executor.execute("pause_bot", "Echo; DROP", incident="INC-x")
    assert bad_target.refused and "not a bot name" in str(bad_target.refused_reason)

    tenant_operator = make_tenant(platform, "other-ops", role="operator")
    async with PlatformAPI(platform.url, tenant_operator.key) as theirs:
        refused = await Executor(theirs).execute("pause_bot", "echo", incident="INC-x")
        restart = await Executor(theirs).execute("restart_bot", "echo", incident="INC-x")
    assert refused.refused and "platform operator key" in str(refused.refused_reason)
    assert restart.refused and "restarting a bot needs a platform operator key" in str(restart.refused_reason)
    member = make_tenant(platform, "viewer")
    async with PlatformAPI(platform.url, member.key) as theirs:
        blind = await Executor(theirs).execute("pause_bot", "echo", incident="INC-x")
    assert blind.refused and "cannot count pause_bot's applications in the audit log" in str(blind.refused_reason)
    assert await _switches(api) == {}


async def test_disable_connector_takes_an_enabled_connector_out_and_its_rollback_puts_it_back(
        platform: Platform, api: PlatformAPI) -> None:
    with FakeShop(api_key="k") as shop:
        enable_shop(platform, shop, ["listProducts"])
        executor = Executor(api, verify_timeout_s=10)
        result = await executor.execute("disable_connector", "shop", {"reason": "its credential fails"},
                                        incident="INC-cred")
        assert result.verified and not result.rolled_back, result.detail
        row = await api.get("/v1/connectors/shop")
        assert row["state"] == "disabled" and row["disabled_reason"].startswith("its credential fails")
        again = await executor.execute("disable_connector", "shop", incident="INC-cred", taken_in_incident=0)
        assert again.refused and "disabled, not enabled" in str(again.refused_reason)
        step = Step(api, await executor.identity(), "shop", {}, "")
        assert "enabled connector shop again" in await ACTIONS["disable_connector"].rollback(step)
        assert (await api.get("/v1/connectors/shop"))["state"] == "enabled"

    draft = await executor.execute("disable_connector", "no-such-api", incident="INC-cred")
    assert draft.refused and "no connector 'no-such-api'" in str(draft.refused_reason)
