"""Budget helpers shared by the spend tests: set a budget through the API, read its usage from the database."""

from __future__ import annotations

from typing import Any

from conftest import Platform, TenantClient


def set_budget(tenant: TenantClient, **body: Any) -> dict[str, Any]:
    response = tenant.http.put("/v1/budgets", json={"subject": "", "period": "month", **body})
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def budget_usage(platform: Platform, budget: str) -> tuple[int, int]:
    """(spent, reserved) of a budget, summed over its windows."""
    with platform.superuser() as conn:
        row = conn.execute("SELECT coalesce(sum(spent), 0), coalesce(sum(reserved), 0) FROM budget_usage "
                           "WHERE budget_id = %s", (budget,)).fetchone()
    return int(row[0]), int(row[1])
