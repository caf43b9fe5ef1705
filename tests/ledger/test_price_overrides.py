"""Prices are data: a row in the `prices` table overrides the bundled file from its effective time on."""

from __future__ import annotations

import datetime as dt

from conftest import Platform, TenantClient, wait_done


def test_a_database_price_override_prices_new_calls(platform: Platform, tenant_client: TenantClient) -> None:
    before = wait_done(tenant_client.http, tenant_client.http.post(
        "/v1/tickets", json={"bot": "echo", "input": {"w": "one two"}}).json()["id"])
    assert before["cost_micros"] == 0  # the bundled file prices the deterministic provider at zero
    effective = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    with platform.superuser() as conn:
        conn.execute("INSERT INTO prices (provider, model, effective_from, input_micros_per_mtok, "
                     "output_micros_per_mtok) VALUES ('deterministic', 'deterministic-echo', %s, 1000000, 2000000)",
                     (effective,))
    try:
        platform.on_plane(platform.plane.reload_prices())
        after = wait_done(tenant_client.http, tenant_client.http.post(
            "/v1/tickets", json={"bot": "echo", "input": {"w": "one two"}}).json()["id"])
        [row] = tenant_client.http.get("/v1/ledger", params={"ticket": after["id"]}).json()["items"]
        # $1 per million input tokens and $2 per million output tokens: one and two micro-dollars a token.
        assert row["cost_micros"] == row["input_tokens"] + 2 * row["output_tokens"] > 0
        assert row["price_source"] == "estimated" and after["cost_micros"] == row["cost_micros"]
        [old] = tenant_client.http.get("/v1/ledger", params={"ticket": before["id"]}).json()["items"]
        assert old["cost_micros"] == 0  # history never changes
    finally:
        with platform.superuser() as conn:
            conn.execute("DELETE FROM prices")
        platform.on_plane(platform.plane.reload_prices())
