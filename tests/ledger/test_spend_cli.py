"""The spend commands: budgets and prices through the CLI, as an operator uses them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

from conftest import Platform, TenantClient, make_tenant


def oshal(platform: Platform, key: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OSHAL_")}
    env.update(OSHAL_API_URL=platform.url, OSHAL_API_KEY=key, COLUMNS="200")
    return subprocess.run([sys.executable, "-m", "oshal.cli.main", *args], env=env, capture_output=True, text=True,
                          timeout=60)


def test_budgets_are_set_listed_and_shown_in_dollars(platform: Platform) -> None:
    ops: TenantClient = make_tenant(platform, "spender-cli", role="operator")
    made = oshal(platform, ops.key, "budget", "set", "--scope", "bot", "--subject", "writer", "--limit", "12.50",
                 "--period", "day", "--soft", "$10", "--json")
    assert made.returncode == 0, made.stderr
    budget: dict[str, Any] = json.loads(made.stdout)
    assert (budget["limit_micros"], budget["soft_micros"], budget["remaining"]) == (12_500_000, 10_000_000, 12_500_000)
    listed = oshal(platform, ops.key, "budget", "list")
    assert listed.returncode == 0 and "bot writer" in listed.stdout and "$12.50" in listed.stdout
    shown = oshal(platform, ops.key, "budget", "show", budget["id"], "--json")
    assert json.loads(shown.stdout)["id"] == budget["id"]
    for bad, needle in ((["--limit", "1.0000001"], "at most 6 decimals"), (["--limit", "ten"], "not an amount")):
        refused = oshal(platform, ops.key, "budget", "set", "--scope", "tenant", *bad)
        assert refused.returncode == 3 and needle in refused.stderr
    member = make_tenant(platform, "spender-member")
    assert oshal(platform, member.key, "budget", "set", "--scope", "tenant", "--limit", "1").returncode == 5
    assert oshal(platform, ops.key, "budget", "delete", budget["id"]).returncode == 0
    assert json.loads(oshal(platform, ops.key, "budget", "list", "--json").stdout) == []


def test_prices_are_added_from_a_time_on_and_never_overwritten(platform: Platform) -> None:
    try:
        added = oshal(platform, platform.admin_key, "price", "add", "acme", "acme-1", "--input", "2", "--output",
                      "8", "--reasoning", "12", "--request", "0.001", "--from", "2030-01-01T00:00:00Z")
        assert added.returncode == 0, added.stderr
        again = oshal(platform, platform.admin_key, "price", "add", "acme", "acme-1", "--input", "3", "--output",
                      "9", "--from", "2030-01-01T00:00:00Z")
        assert again.returncode == 6 and "prices are history" in again.stderr
        rows = json.loads(oshal(platform, platform.admin_key, "price", "list", "--json").stdout)
        [acme] = [r for r in rows if r["provider"] == "acme"]
        assert (acme["input"], acme["output"], acme["reasoning"], acme["request"]) == (2_000_000, 8_000_000,
                                                                                       12_000_000, 1000)
        tenant_ops = make_tenant(platform, "not-platform", role="operator")
        assert oshal(platform, tenant_ops.key, "price", "add", "acme", "acme-2", "--input", "1", "--output", "1",
                     "--from", "2030-01-01T00:00:00Z").returncode == 5  # platform operators only
    finally:
        with platform.superuser() as conn:
            conn.execute("DELETE FROM prices")
        platform.on_plane(platform.plane.reload_prices())
