"""Budgets that hold under faults: paused work resumes whenever room returns (no budget change needed), a
reservation outlives its job, a late result past the limit is kept, flagged and pauses its budget's scope, and
usage above what a reservation could hold is flagged."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from budgeting import budget_usage, set_budget
from conftest import MODEL_BOT, Platform, TenantClient, make_tenant, wait_done
from external.fake_openai import FakeOpenAI, OpenAIUsage
from oshal.bots.manifest import BotManifest
from oshal.control.plane import ControlPlane
from oshal.control.reservation_ttl import check_reservation_ttl, required_ttl_s
from oshal.errors import BudgetExceeded, ConfigError
from oshal.store.results import AttemptRow, LedgerRow, record_results

GPT_4O_MINI_IN = 150_000  # micro-dollars per million input tokens (prices.yaml)
PROMPT = {"prompt": "say hi"}  # one input for every ticket here, so every call reserves the same amount


@pytest.fixture
def model(platform: Platform) -> Iterator[FakeOpenAI]:
    server: FakeOpenAI = platform.extra["openai"]
    server.requests.clear()
    server.usage, server.tool_turns, server.turn_usage = OpenAIUsage(10, 5, 0), [], []  # far below the bound
    server.delay_s = 0.0
    yield server
    server.requests.clear()
    server.usage, server.delay_s = OpenAIUsage(1000, 100, 0), 0.0


def _ledger_total(platform: Platform, tenant: TenantClient) -> int:
    with platform.superuser() as conn:
        return int(conn.execute("SELECT coalesce(sum(cost_micros), 0) FROM ledger WHERE tenant_id = %s",
                                (tenant.tenant_id,)).fetchone()[0])


def _call_amount(platform: Platform, tenant: TenantClient) -> int:
    """What one writer call on PROMPT reserves: run one under a roomy budget and read its reservation."""
    ticket = tenant.http.post("/v1/tickets", json={"bot": MODEL_BOT, "input": PROMPT}).json()["id"]
    assert wait_done(tenant.http, ticket)["status"] == "done"
    with platform.superuser() as conn:
        [(amount,)] = conn.execute("SELECT amount FROM reservations WHERE ticket_id = %s AND kind = 'call'",
                                   (ticket,)).fetchall()
    return int(amount)


def _create(tenant: TenantClient, n: int) -> list[str]:
    """``n`` writer tickets in one batch: all on the lane at once, so their calls compete for the budget."""
    response = tenant.http.post("/v1/tickets/batch", json={"tickets": [{"bot": MODEL_BOT, "input": PROMPT}] * n})
    assert response.status_code == 201, response.text
    ids = [str(t["id"]) for t in response.json()["tickets"]]
    assert len(set(ids)) == n
    return ids


def _statuses(tenant: TenantClient, ids: list[str]) -> dict[str, str]:
    return {i: tenant.http.get(f"/v1/tickets/{i}").json()["status"] for i in ids}


def _wait_for(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def _all_done(tenant: TenantClient, ids: list[str], timeout: float = 120) -> None:
    pending = list(ids)

    def settled() -> bool:
        nonlocal pending
        statuses = _statuses(tenant, pending)
        assert not {s for s in statuses.values() if s in ("failed", "dead_letter", "cancelled")}, statuses
        pending = [i for i, s in statuses.items() if s != "done"]
        return not pending

    _wait_for(settled, timeout, "every ticket to finish")


def _budget_paused(platform: Platform, ids: list[str]) -> tuple[set[str], set[str]]:
    """Tickets that a budget refusal paused, and those the budget service (not an operator) resumed."""
    with platform.superuser() as conn:
        rows = conn.execute("SELECT ticket_id::text, from_status, to_status, actor FROM ticket_events "
                            "WHERE ticket_id = ANY(%s::uuid[])", (ids,)).fetchall()
    paused = {t for t, _, to, actor in rows if to == "paused" and actor == "budget"}
    resumed = {t for t, frm, to, actor in rows if frm == "paused" and to == "in_progress" and actor == "budget"}
    return paused, resumed


def _budget_changes(platform: Platform, tenant: TenantClient) -> int:
    with platform.superuser() as conn:
        return int(conn.execute("SELECT count(*) FROM audit_log WHERE tenant_id = %s AND action LIKE 'budget.%%'",
                                (tenant.tenant_id,)).fetchone()[0])


def test_paused_tickets_resume_as_calls_settle_below_their_reservation(platform: Platform,
                                                                       model: FakeOpenAI) -> None:
    tenant = make_tenant(platform, "trickle", role="operator")
    budget = set_budget(tenant, scope="bot", subject=MODEL_BOT, limit_micros=10_000_000)
    per_call = _call_amount(platform, tenant)
    spent, _ = budget_usage(platform, budget["id"])
    limit = spent + 4 * per_call + per_call // 2  # room for 4 calls in flight; each costs far less than it holds
    set_budget(tenant, scope="bot", subject=MODEL_BOT, limit_micros=limit)
    changes = _budget_changes(platform, tenant)
    model.delay_s = 0.2  # calls overlap, as real ones do

    ids = _create(tenant, 44)
    _all_done(tenant, ids)

    paused, resumed = _budget_paused(platform, ids)
    assert len(paused) >= 10, "the scenario must pause tickets for budget"
    assert paused <= resumed  # every one of them resumed by the budget service as room came back
    assert _budget_changes(platform, tenant) == changes  # ... with no budget change at all
    spent, reserved = budget_usage(platform, budget["id"])
    assert reserved == 0 and spent == _ledger_total(platform, tenant) <= limit
    with platform.superuser() as conn:  # each resumed ticket's held room was taken over by its call
        assert conn.execute("SELECT count(*) FROM reservations WHERE tenant_id = %s AND kind = 'hold' "
                            "AND status <> 'released'", (tenant.tenant_id,)).fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM reservations WHERE tenant_id = %s AND kind = 'call' "
                            "AND status = 'open'", (tenant.tenant_id,)).fetchone()[0] == 0


def test_paused_tickets_resume_when_a_crashed_nodes_reservations_are_released(platform: Platform,
                                                                              model: FakeOpenAI) -> None:
    tenant = make_tenant(platform, "crashed-node", role="operator")
    budget = set_budget(tenant, scope="bot", subject=MODEL_BOT, limit_micros=10_000_000)
    per_call = _call_amount(platform, tenant)
    spent, _ = budget_usage(platform, budget["id"])
    set_budget(tenant, scope="bot", subject=MODEL_BOT, limit_micros=spent + 20 * per_call)
    # A node that crashed mid-call holds (almost) 20 calls' worth in 5 reservations nothing will ever settle.
    dead = tenant.http.post("/v1/tickets", json={"bot": "idle", "input": {}}).json()["id"]
    input_bytes = (4 * per_call - 1) * 1_000_000 // GPT_4O_MINI_IN  # reserves 4 calls' worth less one micro
    held = [platform.on_plane(platform.plane.budgets.reserve(
        uuid.UUID(tenant.tenant_id), uuid.UUID(dead), MODEL_BOT, provider="openai", model="gpt-4o-mini",
        input_bytes=input_bytes, max_output_tokens=0)) for _ in range(5)]
    assert 0 < _budget_left(tenant, budget["id"]) < per_call  # not exhausted, but not one more call fits
    changes = _budget_changes(platform, tenant)

    ids = _create(tenant, 10)
    _wait_for(lambda: set(_statuses(tenant, ids).values()) == {"paused"}, 60, "all 10 tickets to pause")
    _wait_for(lambda: _no_dispatched(platform, ids), 60, "their refused attempts to report")
    assert platform.on_plane(platform.plane.budgets.resume()) == 0  # a full pass: with nothing released, none fits
    assert set(_statuses(tenant, ids).values()) == {"paused"}

    with platform.superuser() as conn:  # the clock passes the dead calls' TTL (600 s, too long to wait for)
        conn.execute("UPDATE reservations SET expires_at = now() - interval '1 second' WHERE id = ANY(%s)",
                     ([r.id for r in held],))
    _all_done(tenant, ids)  # the sweeper releases them, and the paused tickets resume into the room

    paused, resumed = _budget_paused(platform, ids)
    assert paused == resumed == set(ids)
    assert _budget_changes(platform, tenant) == changes
    spent, reserved = budget_usage(platform, budget["id"])
    assert reserved == 0 and spent == _ledger_total(platform, tenant)
    with platform.superuser() as conn:
        statuses = conn.execute("SELECT status FROM reservations WHERE id = ANY(%s)",
                                ([r.id for r in held],)).fetchall()
    assert statuses == [("expired",)] * 5


def _budget_left(tenant: TenantClient, budget: str) -> int:
    return int(tenant.http.get(f"/v1/budgets/{budget}").json()["remaining"])


def _no_dispatched(platform: Platform, ids: list[str]) -> bool:
    with platform.superuser() as conn:
        return conn.execute("SELECT count(*) FROM phases WHERE ticket_id = ANY(%s::uuid[]) AND status = 'dispatched'",
                            (ids,)).fetchone()[0] == 0


def _reserve(platform: Platform, tenant: TenantClient, ticket: str, input_bytes: int) -> Any:
    try:
        return platform.on_plane(platform.plane.budgets.reserve(
            uuid.UUID(tenant.tenant_id), uuid.UUID(ticket), MODEL_BOT, provider="openai", model="gpt-4o-mini",
            input_bytes=input_bytes, max_output_tokens=0))
    except BudgetExceeded as refused:
        return refused


def _finding(platform: Platform, check: str) -> dict[str, Any] | None:
    with platform.superuser() as conn:
        row = conn.execute("SELECT status, title, evidence FROM security_findings WHERE check_id = %s", (check,)
                           ).fetchone()
    return None if row is None else {"status": row[0], "title": row[1], "evidence": row[2]}


def test_a_late_result_past_the_limit_is_kept_flagged_and_pauses_its_scope(platform: Platform,
                                                                             model: FakeOpenAI) -> None:
    tenant = make_tenant(platform, "late", role="operator")
    warm = set_budget(tenant, scope="bot", subject=MODEL_BOT, limit_micros=10_000_000)
    per_call = _call_amount(platform, tenant)
    assert tenant.http.delete(f"/v1/budgets/{warm['id']}").status_code == 204
    before = _ledger_total(platform, tenant)
    limit = 2 * per_call + 50
    budget = set_budget(tenant, scope="bot", subject=MODEL_BOT, limit_micros=limit)
    model.usage = OpenAIUsage(10, 200, 0)  # costs most of what it reserved, within its bound
    model.delay_s = 3.0  # the call outlives its reservation

    late = tenant.http.post("/v1/tickets", json={"bot": MODEL_BOT, "input": PROMPT}).json()["id"]
    reservation = _wait_for(lambda: _open_reservation(platform, late), 30, "the call's reservation")
    with platform.superuser() as conn:  # its TTL passes mid-call (as with a TTL shorter than the call)
        conn.execute("UPDATE reservations SET expires_at = now() - interval '1 second' WHERE id = %s",
                     (reservation,))
    platform.on_plane(platform.plane.budgets.expire())
    assert budget_usage(platform, budget["id"]) == (0, 0)  # released while the call still runs

    # Another call is admitted into the released room: within the limit, as every admission is.
    other = tenant.http.post("/v1/tickets", json={"bot": "idle", "input": {}}).json()["id"]
    admitted = _reserve(platform, tenant, other, (limit - 10) * 1_000_000 // GPT_4O_MINI_IN)
    assert not isinstance(admitted, BudgetExceeded) and admitted.amount <= limit

    assert wait_done(tenant.http, late)["status"] == "done"  # the late result arrives
    model.delay_s = 0.0
    with platform.superuser() as conn:
        [(cost, settled_late)] = conn.execute("SELECT cost_micros, settled_late FROM ledger WHERE ticket_id = %s",
                                              (late,)).fetchall()
    assert settled_late and cost > 0
    assert budget_usage(platform, budget["id"]) == (cost, admitted.amount)  # its cost is kept: money was spent
    shown = tenant.http.get(f"/v1/budgets/{budget['id']}").json()
    assert shown["overrun_at"] is not None and shown["overrun_micros"] == cost + admitted.amount - limit
    assert "arrived after its reservation was released" in shown["overrun_reason"]
    found = _wait_for(lambda: _finding(platform, "budget.overrun"), 30, "the overrun finding")
    assert found["status"] == "open" and found["evidence"]["budget"] == budget["id"]

    # The admitted call settles far below what it held: room is back, but the overrun budget's scope stays paused.
    phase = uuid.uuid4()
    platform.on_plane(platform.plane.db.call(record_results(uuid.UUID(tenant.tenant_id), [
        AttemptRow(phase, 1, uuid.UUID(other), "done", None, None, "", 1, None, None)], [
        LedgerRow(f"t:{admitted.id}", uuid.UUID(other), phase, 1, MODEL_BOT, "openai", "gpt-4o-mini", 1, 1, 0, 0, 1,
                  "estimated", reservation_id=admitted.id)])))
    assert _budget_left(tenant, budget["id"]) >= per_call
    refused = _reserve(platform, tenant, other, 10)
    assert isinstance(refused, BudgetExceeded) and "overrun" in refused.message
    waiting = tenant.http.post("/v1/tickets", json={"bot": MODEL_BOT, "input": PROMPT}).json()["id"]
    _wait_for(lambda: _statuses(tenant, [waiting])[waiting] == "paused", 30, "the new ticket to pause")
    assert platform.on_plane(platform.plane.budgets.resume()) == 0  # it fits the room, but an overrun budget holds
    ticket = tenant.http.get(f"/v1/tickets/{waiting}").json()
    assert ticket["status"] == "paused" and "overrun" in ticket["status_reason"]
    spent, reserved = budget_usage(platform, budget["id"])
    assert spent == _ledger_total(platform, tenant) - before and reserved == 0  # nothing more was admitted

    set_budget(tenant, scope="bot", subject=MODEL_BOT, limit_micros=limit)  # an operator sets it again
    assert wait_done(tenant.http, waiting)["status"] == "done"
    assert tenant.http.get(f"/v1/budgets/{budget['id']}").json()["overrun_at"] is None
    platform.on_plane(platform.plane.security.scan(["ledger"]))
    assert _finding(platform, "budget.overrun")["status"] == "fixed"  # type: ignore[index]
    assert _finding(platform, "cost.settled_late") is not None  # the late result itself stays reported


def _open_reservation(platform: Platform, ticket: str) -> uuid.UUID | None:
    with platform.superuser() as conn:
        row = conn.execute("SELECT id FROM reservations WHERE ticket_id = %s AND status = 'open' AND kind = 'call'",
                           (ticket,)).fetchone()
    return None if row is None else row[0]


def test_usage_above_the_reservations_bound_is_flagged(platform: Platform, model: FakeOpenAI) -> None:
    tenant = make_tenant(platform, "overbound", role="operator")
    roomy = set_budget(tenant, scope="tenant", limit_micros=10_000_000)
    tight = set_budget(tenant, scope="bot", subject=MODEL_BOT, limit_micros=10_000)
    model.usage = OpenAIUsage(200_000, 5, 0)  # far more prompt tokens than the request's bytes could hold

    ticket = tenant.http.post("/v1/tickets", json={"bot": MODEL_BOT, "input": PROMPT}).json()["id"]
    assert wait_done(tenant.http, ticket)["status"] == "done"
    with platform.superuser() as conn:
        [(cost, over, late, amount)] = conn.execute(
            "SELECT l.cost_micros, l.over_reservation_micros, l.settled_late, r.amount FROM ledger l "
            "JOIN reservations r ON r.id = l.reservation_id WHERE l.ticket_id = %s", (ticket,)).fetchall()
    assert cost > amount and over == cost - amount and not late
    assert budget_usage(platform, tight["id"]) == (cost, 0) == budget_usage(platform, roomy["id"])  # still all counted
    assert tenant.http.get(f"/v1/budgets/{roomy['id']}").json()["overrun_at"] is None  # within this one
    overrun = tenant.http.get(f"/v1/budgets/{tight['id']}").json()
    assert overrun["overrun_at"] is not None and "more than its reservation held" in overrun["overrun_reason"]

    platform.on_plane(platform.plane.security.scan(["ledger"]))
    found = _finding(platform, "cost.over_reservation")
    assert found is not None and found["evidence"]["over_micros"] == over and found["evidence"]["calls"] == 1


def test_each_call_of_a_job_extends_its_earlier_reservations(platform: Platform) -> None:
    tenant = make_tenant(platform, "long-job", role="operator")
    set_budget(tenant, scope="tenant", limit_micros=1_000_000)
    ticket = tenant.http.post("/v1/tickets", json={"bot": "idle", "input": {}}).json()["id"]
    first = _reserve(platform, tenant, ticket, 100)
    with platform.superuser() as conn:
        conn.execute("UPDATE reservations SET expires_at = now() + interval '1 second' WHERE id = %s", (first.id,))
    _reserve(platform, tenant, ticket, 100)  # the job is alive: its first call's reservation must outlive it
    with platform.superuser() as conn:
        expires = conn.execute("SELECT expires_at FROM reservations WHERE id = %s", (first.id,)).fetchone()[0]
    ttl = platform.plane.settings.reservation_ttl_s
    assert expires > dt.datetime.now(dt.UTC) + dt.timedelta(seconds=ttl / 2)


def test_the_reservation_ttl_must_cover_every_bots_longest_call() -> None:
    bots = [BotManifest(name="writer", harness="openai", timeout_s=60, max_retries=2),
            BotManifest(name="quick", harness="anthropic", timeout_s=5, max_retries=0),
            BotManifest(name="echo", latency_ms=600_000)]  # deterministic: no model calls, nothing to cover
    assert required_ttl_s(bots[0]) == 60 * 3 + 60 * 2 + 10 and required_ttl_s(bots[2]) == 0
    check_reservation_ttl(310, bots)
    with pytest.raises(ConfigError) as refused:
        check_reservation_ttl(120, bots)
    message = refused.value.message
    assert "bot 'writer' needs 310 s" in message and "quick" not in message and "echo" not in message
    assert "OSHAL_RESERVATION_TTL_S=310" in (refused.value.hint or "")


async def test_the_control_plane_refuses_to_start_with_a_ttl_shorter_than_a_bots_call(platform: Platform) -> None:
    settings = platform.settings.model_copy(update={"reservation_ttl_s": 2.0})
    plane = ControlPlane(settings, platform.engines.api_url, platform.engines.redis_url, platform.engines.dispatch_key)
    with pytest.raises(ConfigError) as refused:
        await plane.start()
    assert f"bot '{MODEL_BOT}' needs 15 s" in refused.value.message  # timeout_s 5 x 1 attempt + 10 s
