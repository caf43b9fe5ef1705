"""Budgets that hold: reservations under concurrency, release of crashed calls, pause and resume, runaway."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from budgeting import budget_usage, set_budget
from conftest import MODEL_BOT, Platform, TenantClient, make_tenant, wait_done
from external.fake_openai import FakeOpenAI, OpenAIUsage
from oshal.control.budgets import BudgetService
from oshal.errors import BudgetExceeded
from oshal.store.results import AttemptRow, LedgerRow, record_results

GPT_4O_MINI_IN, GPT_4O_MINI_OUT = 150_000, 600_000  # micro-dollars per million tokens (prices.yaml)


@pytest.fixture
def model(platform: Platform) -> Iterator[FakeOpenAI]:
    server: FakeOpenAI = platform.extra["openai"]
    server.requests.clear()
    server.usage, server.tool_turns, server.turn_usage = OpenAIUsage(1000, 100, 0), [], []
    yield server
    server.requests.clear()
    server.tool_turns, server.turn_usage = [], []


def _after_pause(tenant: TenantClient, ticket: str, timeout: float = 15) -> dict[str, Any]:
    """Wait for a paused ticket to resume (the sweeper resumes it once its refused attempt has reported), then for
    it to rest again."""
    deadline = time.monotonic() + timeout
    while tenant.http.get(f"/v1/tickets/{ticket}").json()["status"] == "paused":
        assert time.monotonic() < deadline, "the ticket was never resumed"
        time.sleep(0.05)
    return wait_done(tenant.http, ticket)


def _plain_ticket(platform: Platform, tenant: TenantClient) -> uuid.UUID:
    created = tenant.http.post("/v1/tickets", params={"wait": 10}, json={"bot": "echo", "input": {}}).json()
    return uuid.UUID(created["id"])


async def _reserve_many(budgets: BudgetService, tenant: uuid.UUID, ticket: uuid.UUID, calls: int,
                        input_bytes: int) -> list[Any]:
    async def one() -> Any:
        try:
            return await budgets.reserve(tenant, ticket, MODEL_BOT, provider="openai", model="gpt-4o-mini",
                                         input_bytes=input_bytes, max_output_tokens=0)
        except BudgetExceeded as refused:
            return refused

    return list(await asyncio.gather(*(one() for _ in range(calls))))


async def _settle(platform: Platform, tenant: uuid.UUID, ticket: uuid.UUID, reservations: list[Any],
                  actual: list[int]) -> None:
    """What the collector does when the calls' results arrive: one ledger row per call, with its reservation."""
    phase = uuid.uuid4()
    ledger = [LedgerRow(f"t:{r.id}", ticket, phase, 1, MODEL_BOT, "openai", "gpt-4o-mini", 1, 1, 0, 0, cost,
                        "estimated", reservation_id=r.id) for r, cost in zip(reservations, actual, strict=True)]
    await platform.plane.db.call(record_results(tenant, [AttemptRow(phase, 1, ticket, "done", None, None, "", 1,
                                                                    None, None)], ledger))


def test_fifty_concurrent_calls_against_a_budget_for_ten_admit_ten(platform: Platform) -> None:
    tenant = make_tenant(platform, "concurrent", role="operator")
    ticket = _plain_ticket(platform, tenant)
    per_call = 1_000_000 * GPT_4O_MINI_IN // 1_000_000  # 1 MB of prompt at the input price: 150,000 micros
    platform.plane.settings.max_model_calls = 0
    try:
        for run in range(5):  # repeated: the bound must hold every time, not on average
            budget = set_budget(tenant, scope="tenant", period="day" if run % 2 else "month",
                             limit_micros=10 * per_call + run)
            outcome = platform.on_plane(_reserve_many(platform.plane.budgets, uuid.UUID(tenant.tenant_id), ticket,
                                                      50, 1_000_000))
            admitted = [r for r in outcome if not isinstance(r, BudgetExceeded)]
            refused = [r for r in outcome if isinstance(r, BudgetExceeded)]
            assert len(admitted) == 10 and len(refused) == 40, (run, len(admitted))
            assert all(r.amount == per_call for r in admitted)
            assert "tenant budget" in refused[0].message and "left" in refused[0].message
            spent, reserved = budget_usage(platform, budget["id"])
            assert (spent, reserved) == (0, 10 * per_call)
            actual = [per_call - 1000 * n for n in range(10)]  # each call costs less than it reserved
            platform.on_plane(_settle(platform, uuid.UUID(tenant.tenant_id), ticket, admitted, actual))
            spent, reserved = budget_usage(platform, budget["id"])
            with platform.superuser() as conn:
                ledger = conn.execute("SELECT sum(cost_micros) FROM ledger WHERE call_id LIKE 't:%%' AND "
                                      "reservation_id = ANY(%s)", ([r.id for r in admitted],)).fetchone()[0]
            assert reserved == 0 and spent == sum(actual) == ledger
            with platform.superuser() as conn:
                conn.execute("DELETE FROM budgets WHERE tenant_id = %s", (tenant.tenant_id,))
    finally:
        platform.plane.settings.max_model_calls = 200


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(limit=st.integers(0, 5_000), cost=st.integers(1, 700), calls=st.integers(1, 30),
       spend=st.lists(st.integers(0, 700), min_size=30, max_size=30))
def test_any_budget_admits_at_most_what_it_covers_and_spent_equals_the_ledger(
        platform: Platform, limit: int, cost: int, calls: int, spend: list[int]) -> None:
    tenant = make_tenant(platform, f"h-{uuid.uuid4().hex[:8]}", role="operator")
    ticket = _plain_ticket(platform, tenant)
    budget = set_budget(tenant, scope="bot", subject=MODEL_BOT, limit_micros=limit)
    input_bytes = -(-cost * 1_000_000 // GPT_4O_MINI_IN)  # the smallest prompt whose reservation is >= cost
    per_call = -(-input_bytes * GPT_4O_MINI_IN // 1_000_000)
    platform.plane.settings.max_model_calls = 0
    try:
        outcome = platform.on_plane(_reserve_many(platform.plane.budgets, uuid.UUID(tenant.tenant_id), ticket,
                                                  calls, input_bytes))
    finally:
        platform.plane.settings.max_model_calls = 200
    admitted = [r for r in outcome if not isinstance(r, BudgetExceeded)]
    assert len(admitted) == min(calls, limit // per_call)
    actual = [min(s, per_call) for s in spend[:len(admitted)]]
    platform.on_plane(_settle(platform, uuid.UUID(tenant.tenant_id), ticket, admitted, actual))
    assert budget_usage(platform, budget["id"]) == (sum(actual), 0)


def test_a_crashed_calls_reservation_expires_and_is_released(platform: Platform) -> None:
    tenant = make_tenant(platform, "crashy", role="operator")
    ticket = _plain_ticket(platform, tenant)
    budget = set_budget(tenant, scope="tenant", limit_micros=1_000_000)
    saved = platform.plane.settings.reservation_ttl_s
    platform.plane.settings.reservation_ttl_s = 0.3
    try:
        [held] = platform.on_plane(_reserve_many(platform.plane.budgets, uuid.UUID(tenant.tenant_id), ticket, 1,
                                                 1000))
    finally:
        platform.plane.settings.reservation_ttl_s = saved
    assert budget_usage(platform, budget["id"]) == (0, held.amount)
    deadline = time.monotonic() + 10  # the sweeper (every 0.5 s here) releases it once it has expired
    while budget_usage(platform, budget["id"])[1] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert budget_usage(platform, budget["id"]) == (0, 0)
    with platform.superuser() as conn:
        assert conn.execute("SELECT status FROM reservations WHERE id = %s", (held.id,)).fetchone()[0] == "expired"
    # The call's result arriving late still counts what it cost, once.
    platform.on_plane(_settle(platform, uuid.UUID(tenant.tenant_id), ticket, [held], [400]))
    assert budget_usage(platform, budget["id"]) == (400, 0)


def test_an_exhausted_budget_pauses_the_ticket_and_raising_it_resumes(platform: Platform,
                                                                      model: FakeOpenAI) -> None:
    tenant = make_tenant(platform, "frugal", role="operator")
    budget = set_budget(tenant, scope="bot", subject=MODEL_BOT, limit_micros=10, soft_micros=5)
    paused = tenant.http.post("/v1/tickets", params={"wait": 15}, json={"bot": MODEL_BOT,
                                                                       "input": {"prompt": "hi"}}).json()
    assert paused["status"] == "paused" and paused["status_reason"].startswith("budget: bot writer budget")
    assert "left" in paused["status_reason"] and model.completions == []  # refused before it was made
    listed = {b["id"]: b for b in tenant.http.get("/v1/budgets").json()}
    assert listed[budget["id"]]["remaining"] == 10 and listed[budget["id"]]["reserved"] == 0
    time.sleep(1.5)  # sweeps pass (every 0.5 s): with nothing changed, it stays paused instead of bouncing
    again = tenant.http.get(f"/v1/tickets/{paused['id']}").json()
    assert again["status"] == "paused" and again["attempts"] == paused["attempts"]

    set_budget(tenant, scope="bot", subject=MODEL_BOT, limit_micros=5_000_000)  # raising it resumes the ticket
    done = _after_pause(tenant, paused["id"])
    assert done["status"] == "done" and len(model.completions) == 1, (done["error"], done["status_reason"])
    with platform.superuser() as conn:
        [(cost, _reservation, status)] = conn.execute(
            "SELECT l.cost_micros, l.reservation_id, r.status FROM ledger l JOIN reservations r "
            "ON r.id = l.reservation_id WHERE l.ticket_id = %s", (paused["id"],)).fetchall()
    assert status == "settled" and cost == round((1000 * GPT_4O_MINI_IN + 100 * GPT_4O_MINI_OUT) / 1_000_000)
    assert budget_usage(platform, budget["id"]) == (cost, 0)


def test_new_tickets_wait_paused_while_their_budget_is_empty(platform: Platform) -> None:
    tenant = make_tenant(platform, "empty", role="operator")
    budget = set_budget(tenant, scope="tenant", limit_micros=0)
    held = tenant.http.post("/v1/tickets", json={"bot": "echo", "input": {"n": 1}}).json()
    assert held["status"] == "paused"
    ticket = tenant.http.get(f"/v1/tickets/{held['id']}").json()
    assert "tenant budget (month) is exhausted" in ticket["status_reason"]
    assert tenant.http.delete(f"/v1/budgets/{budget['id']}").status_code == 204  # removing it resumes
    assert _after_pause(tenant, held["id"])["result"] == {"n": 1}


def test_a_runaway_ticket_halts(platform: Platform) -> None:
    tenant = make_tenant(platform, "loopy", role="operator")
    # A bot nobody runs keeps the ticket in progress while its "calls" are reserved one after another.
    ticket = tenant.http.post("/v1/tickets", json={"bot": "idle", "input": {}}).json()["id"]
    saved = platform.plane.settings.max_model_calls
    platform.plane.settings.max_model_calls = 2
    try:
        outcome = [platform.on_plane(_reserve_many(platform.plane.budgets, uuid.UUID(tenant.tenant_id),
                                                   uuid.UUID(ticket), 1, 100))[0] for _ in range(3)]
    finally:
        platform.plane.settings.max_model_calls = saved
    assert [isinstance(r, BudgetExceeded) for r in outcome] == [False, False, True]
    assert "made 2 model calls within the runaway window" in outcome[2].message
    halted = tenant.http.get(f"/v1/tickets/{ticket}").json()
    assert halted["status"] == "paused" and halted["status_reason"].startswith("runaway:")
    time.sleep(1.2)  # the sweeper does not resume a runaway: only an operator does
    assert tenant.http.get(f"/v1/tickets/{ticket}").json()["status"] == "paused"


def test_budget_input_is_validated(platform: Platform) -> None:
    tenant = make_tenant(platform, "strict", role="operator")
    for body, needle in (
            ({"scope": "bot", "subject": "", "period": "day", "limit_micros": 1}, "names one"),
            ({"scope": "tenant", "period": "week", "limit_micros": 1}, "period"),
            ({"scope": "tenant", "period": "day", "limit_micros": 5, "soft_micros": 6}, "soft_micros"),
            ({"scope": "ticket", "subject": "nope", "period": "day", "limit_micros": 5}, "ticket id"),
            ({"scope": "bot", "subject": "ghost", "period": "day", "limit_micros": 5}, "ghost")):
        response = tenant.http.put("/v1/budgets", json=body)
        assert response.status_code in (404, 422) and needle in response.text, (body, response.text)


def test_a_workflow_step_waits_for_its_budget_and_runs_when_it_is_raised(platform: Platform) -> None:
    tenant = make_tenant(platform, "flows-budget", role="operator")
    budget = set_budget(tenant, scope="type", subject="ticket", limit_micros=0)
    created = tenant.http.post("/v1/tickets", json={"type": "ticket", "input": {"text": "checkout is down"}}).json()
    held = tenant.http.get(f"/v1/tickets/{created['id']}", params={"wait": 5}).json()
    assert held["status"] == "paused" and held["status_reason"].startswith("budget: type ticket budget (month)")
    with platform.superuser() as conn:  # its first step was held before its lane, attempt unspent
        assert conn.execute("SELECT status, attempt FROM phases WHERE ticket_id = %s",
                            (created["id"],)).fetchall() == [("queued", 0)]
    set_budget(tenant, scope="type", subject="ticket", limit_micros=1_000_000)
    done = _after_pause(tenant, created["id"])
    assert done["status"] == "customer_action" and done["result"]["outcome"] == "solution_proposed"
    assert tenant.http.get(f"/v1/budgets/{budget['id']}").json()["limit_micros"] == 1_000_000


def test_a_budget_deleted_while_a_call_is_in_flight_does_not_block_its_settlement(platform: Platform) -> None:
    tenant = make_tenant(platform, "deleted-mid-call", role="operator")
    ticket = _plain_ticket(platform, tenant)
    gone = set_budget(tenant, scope="bot", subject=MODEL_BOT, limit_micros=1_000_000)
    kept = set_budget(tenant, scope="tenant", limit_micros=1_000_000)
    [held] = platform.on_plane(_reserve_many(platform.plane.budgets, uuid.UUID(tenant.tenant_id), ticket, 1, 1000))
    assert tenant.http.delete(f"/v1/budgets/{gone['id']}").status_code == 204
    platform.on_plane(_settle(platform, uuid.UUID(tenant.tenant_id), ticket, [held], [90]))
    assert budget_usage(platform, kept["id"]) == (90, 0)  # settled against the budget that still exists
    with platform.superuser() as conn:
        assert conn.execute("SELECT status, actual FROM reservations WHERE id = %s", (held.id,)).fetchone() == (
            "settled", 90)


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_a_refused_model_call_is_asked_once_never_retried_and_fails_with_its_reason(
        platform: Platform, provider: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Through the real gateway, with the SDK's own retries on: both SDKs retry what looks transient (the
    Anthropic one any exception from its transport), so a refusal must reach them as something they do not."""
    from external.fake_anthropic import FakeAnthropic
    from oshal.bots.harnesses import HarnessError, Job, build_harness
    from oshal.bots.manifest import BotManifest
    from oshal.bots.tools import ToolClient
    from oshal.mesh.envelopes import Envelope

    tenant = make_tenant(platform, f"refused-{provider}", role="operator")
    ticket = tenant.http.post("/v1/tickets", json={"bot": "idle", "input": {}}).json()["id"]  # stays in progress
    set_budget(tenant, scope="tenant", limit_micros=0)  # empty from now on: every model call is refused
    with platform.superuser() as conn:
        phase = str(conn.execute("SELECT id FROM phases WHERE ticket_id = %s", (ticket,)).fetchone()[0])
    env = Envelope(ticket, phase, 1, tenant.tenant_id, MODEL_BOT, None)
    env = env.signed(platform.plane.signer.sign(env))
    token = json.loads((platform.home / "run" / "bot-tokens.json").read_text())[MODEL_BOT]
    monkeypatch.setenv("OSHAL_TEST_MODEL_KEY", "sk-test-0123456789")
    server: Any = FakeOpenAI(api_key=None) if provider == "openai" else FakeAnthropic(api_key="sk-test-0123456789")
    client = ToolClient(platform.url, token)
    asked: list[str] = []

    async def count(request: Any) -> None:
        asked.append(request.url.path)

    client._http.event_hooks["request"].append(count)  # observes the real requests; nothing is replaced
    with server:
        harness = build_harness(BotManifest(name=MODEL_BOT, harness=provider, base_url=server.base_url,
                                            model="gpt-4o-mini" if provider == "openai" else "claude-3-5-haiku-latest",
                                            api_key_env="OSHAL_TEST_MODEL_KEY", max_retries=3, timeout_s=5))
        try:
            with pytest.raises(HarnessError) as caught:
                await harness.run(Job(phase, 1, {"prompt": "hi"}, client.session(env)))
        finally:
            await harness.aclose()
            await client.aclose()
        sent = list(server.requests)
    assert "tenant budget (month)" in caught.value.message and not caught.value.retryable
    assert sent == [] and asked.count("/v1/models/begin") == 1  # asked once; nothing reached the provider
    assert tenant.http.get(f"/v1/tickets/{ticket}").json()["status"] == "paused"
