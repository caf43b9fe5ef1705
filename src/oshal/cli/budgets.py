"""``oshal budget set|list|show|delete``: spend limits, reserved before every model call."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Column, Table

from oshal.cli.client import JsonFlag, WideFlag, emit_json, out, print_rows, report, request, usd
from oshal.errors import Invalid

budget_app = typer.Typer(name="budget", no_args_is_help=True,
                         help="Budgets per tenant, bot, ticket type or ticket; a model call that would exceed one "
                              "is refused before it is made and its ticket pauses until the budget has room again.")


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
    row = request("PUT", "/v1/budgets", body)
    report(row, as_json, f"budget {_label(row)}: {usd(row['limit_micros'])} per {row['period']}, "
                         f"{usd(row['remaining'])} left (id {row['id']})")


@budget_app.command("list")
def budget_list(wide: WideFlag = False, as_json: JsonFlag = False) -> None:
    """Spend against every budget in its current window (day, month or lifetime)."""
    rows: list[dict[str, Any]] = request("GET", "/v1/budgets")
    table = Table("budget", "period", "limit", "spent", "reserved", "left", "soft", Column("id", no_wrap=True),
                  title=f"budgets ({len(rows)})", title_justify="left")
    print_rows(rows, table, _budget_cells, wide=wide, as_json=as_json)


def _budget_cells(r: dict[str, Any]) -> tuple[str, ...]:
    left = "overrun (paused)" if r.get("overrun_at") else usd(r["remaining"])
    return (escape(_label(r)), r["period"], usd(r["limit_micros"]), usd(r["spent"]), usd(r["reserved"]),
            f"[red]{left}[/]" if r["remaining"] == 0 or r.get("overrun_at") else left,
            usd(r["soft_micros"]) if r["soft_micros"] is not None else "", str(r["id"]))


@budget_app.command("show")
def budget_show(budget_id: Annotated[str, typer.Argument(help="The budget's id (see `oshal budget list`).")],
                as_json: JsonFlag = False) -> None:
    """One budget and its current window."""
    row: dict[str, Any] = request("GET", f"/v1/budgets/{budget_id}")
    if as_json:
        emit_json(row)
        return
    for key in ("id", "scope", "subject", "period", "limit_micros", "soft_micros", "window_start", "spent",
                "reserved", "remaining", "updated_at"):
        out.print(f"{key:>13}: {row[key]}")
    if row.get("overrun_at"):  # cost no reservation covered took it past its limit; its calls are paused
        for key in ("overrun_at", "overrun_micros", "overrun_reason"):
            out.print(f"{key:>13}: {escape(str(row[key]))}")
        out.print("set the budget again (`oshal budget set`) to resume its work")


@budget_app.command("delete")
def budget_delete(budget_id: Annotated[str, typer.Argument(help="The budget's id.")]) -> None:
    """Remove a budget (the tickets it paused resume)."""
    request("DELETE", f"/v1/budgets/{budget_id}")
    out.print(f"budget {budget_id} deleted")


price_app = typer.Typer(name="price", no_args_is_help=True,
                        help="Effective-dated model prices per usage type (rows are added, never changed).")


@price_app.command("add")
def price_add(
    provider: Annotated[str, typer.Argument(help="e.g. openai, anthropic.")],
    model: Annotated[str, typer.Argument(help="The model id, or * for every model of the provider.")],
    input_usd: Annotated[str, typer.Option("--input", help="Dollars per million uncached input tokens.")],
    output_usd: Annotated[str, typer.Option("--output", help="Dollars per million output tokens.")],
    effective_from: Annotated[str, typer.Option("--from", help="ISO 8601 time the price starts (with zone).")],
    cached_read: Annotated[str, typer.Option("--cached-read", help="Dollars per million cached input tokens.")]
    = "0",
    cache_write: Annotated[str, typer.Option("--cache-write", help="Dollars per million cache-write tokens.")]
    = "0",
    reasoning: Annotated[str | None, typer.Option("--reasoning", help="Dollars per million reasoning tokens "
                                                  "(default: the output price).")] = None,
    request_usd: Annotated[str, typer.Option("--request", help="Dollars per request.")] = "0",
) -> None:
    """Add a price from a time on; calls before it keep the price they had."""
    body = {"provider": provider, "model": model, "effective_from": effective_from,
            "input": micros(input_usd, "--input"), "output": micros(output_usd, "--output"),
            "cached_read": micros(cached_read, "--cached-read"), "cache_write": micros(cache_write, "--cache-write"),
            "reasoning": micros(reasoning, "--reasoning") if reasoning is not None else None,
            "request": micros(request_usd, "--request")}
    request("POST", "/v1/prices", body)
    out.print(f"price of {provider}/{model} from {effective_from} added")


@price_app.command("list")
def price_list(wide: WideFlag = False, as_json: JsonFlag = False) -> None:
    """Every price row (bundled and added), per model oldest first; amounts per million tokens."""
    rows: list[dict[str, Any]] = request("GET", "/v1/prices")
    table = Table("provider/model", "from", "input", "cached", "cache write", "output", "reasoning", "request",
                  title=f"prices ({len(rows)})", title_justify="left")
    print_rows(rows, table, lambda r: (
        escape(f"{r['provider']}/{r['model']}"), r["effective_from"][:19], usd(r["input"]), usd(r["cached_read"]),
        usd(r["cache_write"]), usd(r["output"]), usd(r["reasoning"]) if r["reasoning"] is not None else "= output",
        usd(r["request"])), wide=wide, as_json=as_json)


def _label(row: dict[str, Any]) -> str:
    return str(row["scope"]) + (f" {row['subject']}" if row["subject"] else "")


def register(app: typer.Typer) -> None:
    app.add_typer(budget_app)
    app.add_typer(price_app)
