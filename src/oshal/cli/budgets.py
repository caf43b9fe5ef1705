"""``oshal budget set|list|show|delete``: spend limits, reserved before every model call."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Column, Table

from oshal.cli.client import Client, JsonFlag, emit_json, out, usd
from oshal.errors import Invalid

budget_app = typer.Typer(name="budget", no_args_is_help=True,
                         help="Budgets per tenant, bot, ticket type or ticket; a model call that would exceed one "
                              "is refused before it is made and its ticket pauses until the budget is raised.")


def micros(value: str, option: str) -> int:
    """Dollars as typed ("12.50", "$0.75") to integer micro-dollars, exactly."""
    try:
        amount = Decimal(value.strip().lstrip("$"))
    except InvalidOperation as e:
        raise Invalid(f"{option} {value!r} is not an amount in dollars", hint="e.g. 12.50") from e
    scaled = amount * 1_000_000
    if amount < 0 or scaled != scaled.to_integral_value():
        raise Invalid(f"{option} {value!r} must be >= 0 with at most 6 decimals (micro-dollars)")
    return int(scaled)


@budget_app.command("set")
def budget_set(
    scope: Annotated[str, typer.Option("--scope", help="tenant, bot, type or ticket.")],
    limit: Annotated[str, typer.Option("--limit", help="Limit in dollars, e.g. 25 or 0.50.")],
    period: Annotated[str, typer.Option("--period", help="day, month or lifetime.")] = "month",
    subject: Annotated[str, typer.Option("--subject", help="The bot, ticket type or ticket id (not for tenant).")]
    = "",
    soft: Annotated[str | None, typer.Option("--soft", help="Notify when spend reaches this many dollars.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Create or change a budget. Raising one resumes the tickets it paused."""
    body = {"scope": scope, "subject": subject, "period": period, "limit_micros": micros(limit, "--limit"),
            "soft_micros": micros(soft, "--soft") if soft is not None else None}
    with Client.from_settings() as api:
        row = api.call("PUT", "/v1/budgets", body=body)
    if as_json:
        emit_json(row)
        return
    out.print(f"budget {_label(row)}: {usd(row['limit_micros'])} per {row['period']}, {usd(row['remaining'])} left "
              f"(id {row['id']})")


@budget_app.command("list")
def budget_list(as_json: JsonFlag = False) -> None:
    """Spend against every budget in its current window (day, month or lifetime)."""
    with Client.from_settings() as api:
        rows: list[dict[str, Any]] = api.get("/v1/budgets")
    if as_json:
        emit_json(rows)
        return
    table = Table("budget", "period", "limit", "spent", "reserved", "left", "soft", Column("id", no_wrap=True),
                  title=f"budgets ({len(rows)})", title_justify="left")
    for r in rows:
        left = usd(r["remaining"])
        table.add_row(escape(_label(r)), r["period"], usd(r["limit_micros"]), usd(r["spent"]), usd(r["reserved"]),
                      f"[red]{left}[/]" if r["remaining"] == 0 else left,
                      usd(r["soft_micros"]) if r["soft_micros"] is not None else "", str(r["id"]))
    out.print(table)


@budget_app.command("show")
def budget_show(budget_id: Annotated[str, typer.Argument(help="The budget's id (see `oshal budget list`).")],
                as_json: JsonFlag = False) -> None:
    """One budget and its current window."""
    with Client.from_settings() as api:
        row: dict[str, Any] = api.get(f"/v1/budgets/{budget_id}")
    if as_json:
        emit_json(row)
        return
    for key in ("id", "scope", "subject", "period", "limit_micros", "soft_micros", "window_start", "spent",
                "reserved", "remaining", "updated_at"):
        out.print(f"{key:>13}: {row[key]}")


@budget_app.command("delete")
def budget_delete(budget_id: Annotated[str, typer.Argument(help="The budget's id.")]) -> None:
    """Remove a budget (the tickets it paused resume)."""
    with Client.from_settings() as api:
        api.delete(f"/v1/budgets/{budget_id}")
    out.print(f"budget {budget_id} deleted")


def _label(row: dict[str, Any]) -> str:
    return str(row["scope"]) + (f" {row['subject']}" if row["subject"] else "")


def register(app: typer.Typer) -> None:
    app.add_typer(budget_app)
