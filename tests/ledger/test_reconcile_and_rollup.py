"""Exact cost over time: reconciliation against provider-reported cost, bounded storage that keeps every total,
and prices that apply only from their effective time on."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import uuid
from typing import Any

from conftest import Platform, TenantClient, make_tenant, wait_done


def _ledger_row(conn: Any, tenant: str, ticket: str, *, provider: str, model: str, cost: int,
                computed: int | None, reported: int | None, age_days: float = 0) -> None:
    conn.execute(
        "INSERT INTO ledger (call_id, tenant_id, ticket_id, phase_id, attempt, bot, provider, model, input_tokens, "
        "output_tokens, cost_micros, price_source, computed_cost_micros, reported_cost_micros, created_at) "
        "VALUES (%s, %s, %s, %s, 1, 'writer', %s, %s, 100, 10, %s, %s, %s, %s, now() - make_interval(days => %s))",
        (f"x:{uuid.uuid4()}", tenant, ticket, uuid.uuid4(), provider, model, cost,
         "provider" if reported is not None else "estimated", computed, reported, age_days))


def _ticket(tenant: TenantClient) -> dict[str, Any]:
    return wait_done(tenant.http, tenant.http.post("/v1/tickets", json={"bot": "echo", "input": {}}).json()["id"])


def test_reconcile_flags_a_provider_whose_reported_cost_drifts_over_half_a_percent(platform: Platform) -> None:
    tenant = make_tenant(platform, "reconciled", role="operator")
    ticket = _ticket(tenant)["id"]
    with platform.superuser() as conn:
        for _ in range(4):  # 0.3% apart: within tolerance
            _ledger_row(conn, tenant.tenant_id, ticket, provider="openai", model="gpt-4o-mini", cost=1_003_000,
                        computed=1_000_000, reported=1_003_000)
        _ledger_row(conn, tenant.tenant_id, ticket, provider="anthropic", model="claude-sonnet-4-0",
                    cost=2_020_000, computed=2_000_000, reported=2_020_000)  # 1% apart: flagged
        _ledger_row(conn, tenant.tenant_id, ticket, provider="anthropic", model="claude-sonnet-4-0",
                    cost=5_000_000, computed=5_000_000, reported=None)  # no reported cost: not compared
    report = tenant.http.get("/v1/ledger/reconcile").json()
    by_model = {r["model"]: r for r in report["models"]}
    assert by_model["gpt-4o-mini"]["calls"] == 4 and by_model["gpt-4o-mini"]["flagged"] is False
    assert by_model["gpt-4o-mini"]["drift"] == 0.003
    assert by_model["claude-sonnet-4-0"] | {"drift": 0.01, "flagged": True, "calls": 1} == by_model["claude-sonnet-4-0"]
    assert by_model["claude-sonnet-4-0"]["all_calls"] == 2 and report["flagged"] == 1

    env = {k: v for k, v in os.environ.items() if not k.startswith("OSHAL_")}
    env.update(OSHAL_API_URL=platform.url, OSHAL_API_KEY=tenant.key, COLUMNS="200")
    done = subprocess.run([sys.executable, "-m", "oshal.cli.main", "ledger", "reconcile", "--since", "1d"],
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "over 0.5%" in done.stdout and "+1.000%" in done.stdout
    bad = tenant.http.get("/v1/ledger/reconcile", params={"since": "2026-01-02T00:00:00Z",
                                                          "until": "2026-01-01T00:00:00Z"})
    assert bad.status_code == 422 and "before" in bad.json()["message"]


def test_old_rows_roll_up_into_daily_totals_and_no_total_changes(platform: Platform) -> None:
    tenant = make_tenant(platform, "retained", role="operator")
    ticket = _ticket(tenant)["id"]
    with platform.superuser() as conn:
        for n in range(5):
            _ledger_row(conn, tenant.tenant_id, ticket, provider="openai", model="gpt-4o-mini", cost=1000 + n,
                        computed=1000 + n, reported=None, age_days=100 + n % 2)
        _ledger_row(conn, tenant.tenant_id, ticket, provider="openai", model="gpt-4o-mini", cost=7,
                    computed=7, reported=None)
        # A provider-reported cost for a model we have no price for: nothing to reconcile, before or after roll-up.
        _ledger_row(conn, tenant.tenant_id, ticket, provider="acme", model="unpriced-1", cost=500, computed=None,
                    reported=500, age_days=100)

    def totals() -> tuple[Any, ...]:
        by_model = tenant.http.get("/v1/ledger/summary", params={"by": "model"}).json()
        by_day = tenant.http.get("/v1/ledger/summary", params={"by": "day"}).json()
        cost = tenant.http.get(f"/v1/tickets/{ticket}").json()
        return (by_model, sorted(r["cost_micros"] for r in by_day["rows"]), cost["cost_micros"], cost["calls"])

    before = totals()
    rolled = platform.on_plane(platform.plane.budgets.roll_up())
    assert rolled == 6
    assert tenant.http.get("/v1/ledger/reconcile", params={"since": "2020-01-01T00:00:00Z"}).json()["flagged"] == 0
    assert totals() == before  # summaries, daily totals and the ticket's own cost are all unchanged
    with platform.superuser() as conn:
        assert conn.execute("SELECT count(*) FROM ledger WHERE ticket_id = %s", (ticket,)).fetchone()[0] == 2
        daily = conn.execute("SELECT sum(calls), sum(cost_micros) FROM ledger_daily WHERE tenant_id = %s "
                             "AND provider = 'openai'", (tenant.tenant_id,)).fetchone()
    assert daily == (5, 5010)
    assert platform.on_plane(platform.plane.budgets.roll_up()) == 0  # nothing twice


def test_a_price_applies_only_from_its_effective_time(platform: Platform) -> None:
    tenant = make_tenant(platform, "priced", role="operator")
    now = dt.datetime.now(dt.UTC)
    with platform.superuser() as conn:
        conn.execute("INSERT INTO prices (provider, model, effective_from, input_micros_per_mtok, "
                     "output_micros_per_mtok, request_micros) VALUES ('deterministic', 'deterministic-echo', %s, "
                     "1000000, 1000000, 0), ('deterministic', 'deterministic-echo', %s, 9000000, 9000000, 500)",
                     (now - dt.timedelta(seconds=1), now + dt.timedelta(hours=1)))
    try:
        platform.on_plane(platform.plane.reload_prices())
        ticket = wait_done(tenant.http, tenant.http.post("/v1/tickets", json={
            "bot": "echo", "input": {"w": "one two three"}}).json()["id"])
        [row] = tenant.http.get("/v1/ledger", params={"ticket": ticket["id"]}).json()["items"]
        # The row effective now applies: one micro-dollar a token; the future one (9x, plus a request fee) not yet.
        assert row["cost_micros"] == row["input_tokens"] + row["output_tokens"] > 0
        assert row["computed_cost_micros"] == row["cost_micros"]
    finally:
        with platform.superuser() as conn:
            conn.execute("DELETE FROM prices")
        platform.on_plane(platform.plane.reload_prices())
