"""``oshal status``, ``oshal bots`` and ``oshal ledger`` (rows, or totals with ``--summary --by ...``)."""

from __future__ import annotations

import datetime as dt
import re
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from oshal.cli.client import Client, JsonFlag, WideFlag, emit_json, out, print_table, short, usd, when
from oshal.cli.fleet_control import fleet_app
from oshal.errors import ConfigError, Forbidden, Invalid, Unavailable

_RELATIVE = re.compile(r"^(\d+)([smhdw])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class By(StrEnum):
    BOT = "bot"
    MODEL = "model"
    TENANT = "tenant"
    DAY = "day"


def parse_since(value: str | None) -> str | None:
    """ISO 8601 as is, or a relative age like 30m, 24h, 7d turned into an absolute UTC time."""
    if value is None:
        return None
    match = _RELATIVE.match(value.strip())
    if match:
        ago = dt.timedelta(seconds=int(match.group(1)) * _UNIT_S[match.group(2)])
        return (dt.datetime.now(dt.UTC) - ago).isoformat()
    try:
        return dt.datetime.fromisoformat(value).isoformat()
    except ValueError as e:
        raise Invalid(f"--since {value!r} is neither an ISO 8601 time nor an age like 30m, 24h or 7d",
                      hint="e.g. --since 2025-01-31T00:00:00Z or --since 24h") from e


def _status_document(api: Client) -> tuple[dict[str, Any], Exception | None]:
    health = api.raw("GET", "/healthz")
    try:
        healthy = health.json() if health.status_code == 200 else None
    except ValueError:
        healthy = None
    if not isinstance(healthy, dict):
        raise Unavailable(f"{api.url}/healthz answered HTTP {health.status_code} without oshal's health body",
                          hint="is OSHAL_API_URL the address of an oshal API?")
    ready_response = api.raw("GET", "/readyz")
    ready = ready_response.json() if ready_response.content else {}
    doc: dict[str, Any] = {"api_url": api.url, "health": healthy, "ready": ready,
                           "whoami": None, "bots": None, "tickets": None, "dead_letters": None}
    if ready_response.status_code != 200:
        down = ", ".join(f"{k} {v}" for k, v in ready.get("checks", {}).items() if v != "ok")
        return doc, Unavailable(f"the API at {api.url} is up but not ready: {down or 'no details'}",
                                hint="check the Postgres and Redis it uses; `make up` starts both")
    if api.key is None:
        return doc, ConfigError("no API key, so only health was checked",
                                hint="run `make up` or set OSHAL_API_KEY")
    who: dict[str, Any] = api.get("/v1/whoami")
    if who["role"] == "operator":
        try:
            names = {t["id"]: t["name"] for t in api.get("/v1/tenants")}
            who = {**who, "tenant": names.get(who["tenant_id"])}
        except Forbidden:
            pass
    bots: list[dict[str, Any]] = api.get("/v1/bots")
    counts: dict[str, int] = api.get("/v1/tickets/counts")
    doc.update(whoami=who, tickets=counts, dead_letters=counts.get("dead_letter", 0),
               bots={"online": sum(b["status"] == "online" for b in bots), "total": len(bots)})
    return doc, None


def status(as_json: JsonFlag = False) -> None:
    """API address, health and readiness, who you are, bots online, your tickets by status, dead letters."""
    with Client.from_settings(require_key=False) as api:
        doc, problem = _status_document(api)
    if as_json:
        emit_json(doc)
    else:
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="bold")
        grid.add_column()
        ready = doc["ready"].get("status", "?")
        grid.add_row("api", doc["api_url"])
        grid.add_row("health", f"[green]{doc['health'].get('status', '?')}[/]")
        grid.add_row("ready", f"[{'green' if ready == 'ready' else 'red'}]{ready}[/]")
        for engine, check in doc["ready"].get("checks", {}).items():  # "ok" or "down since <time> (<n>s): <error>"
            grid.add_row(f"  {engine}", f"[{'green' if check == 'ok' else 'red'}]{escape(str(check))}[/]")
        if doc["whoami"]:
            who = doc["whoami"]
            grid.add_row("you", f"{who['role']} of tenant {who.get('tenant') or who['tenant_id']}"
                         f" (key {who['key_id']})")
        if doc["bots"]:
            grid.add_row("bots", f"{doc['bots']['online']}/{doc['bots']['total']} online")
        if doc["tickets"] is not None:
            grid.add_row("tickets", "  ".join(f"{k}={v}" for k, v in doc["tickets"].items()))
            colour = "red" if doc["dead_letters"] else "green"
            grid.add_row("dead letters", f"[{colour}]{doc['dead_letters']}[/]")
        out.print(grid)
    if problem is not None:
        raise problem


def bots(wide: WideFlag = False, as_json: JsonFlag = False) -> None:
    """Every registered bot: live status, replicas running/desired, pending, lag, harness and model."""
    with Client.from_settings() as api:
        rows: list[dict[str, Any]] = api.get("/v1/bots")
    if as_json:
        emit_json(rows)
        return
    table = Table("name", "status", "replicas", "pending", "lag", "harness", "model",
                  title=f"bots ({len(rows)})", title_justify="left")
    for b in rows:
        colour = "green" if b["status"] == "online" else "red"
        table.add_row(b["name"], f"[{colour}]{b['status']}[/]", f"{b['replicas']}/{b['replicas_desired']}",
                      str(b["pending"]), str(b["lag"]), b["harness"], escape(b["model"]))
    print_table(table, wide)


def _render_summary(summary: dict[str, Any], wide: bool) -> None:
    table = Table(summary["by"], "calls", "input", "output", "cache read", "cache write", "USD",
                  title=f"ledger by {summary['by']}", title_justify="left", show_footer=False)
    for r in summary["rows"]:
        table.add_row(escape(r["key"]), str(r["calls"]), str(r["input_tokens"]), str(r["output_tokens"]),
                      str(r["cached_read_tokens"]), str(r["cache_write_tokens"]), usd(int(r["cost_micros"])))
    table.add_section()
    table.add_row("[bold]total[/]", str(sum(r["calls"] for r in summary["rows"])),
                  str(sum(r["input_tokens"] for r in summary["rows"])),
                  str(sum(r["output_tokens"] for r in summary["rows"])), "", "",
                  f"[bold]{usd(int(summary['total_micros']))}[/]")
    print_table(table, wide)


def _render_rows(page: dict[str, Any], wide: bool) -> None:
    table = Table("time", "ticket", "bot", "model", "try", "input", "output", "cache r/w", "USD", "price",
                  title=f"ledger ({len(page['items'])} calls)", title_justify="left")
    for r in page["items"]:
        table.add_row(when(r["created_at"]), short(r["ticket_id"], wide), r["bot"], escape(r["model"]),
                      str(r["attempt"]), str(r["input_tokens"]), str(r["output_tokens"]),
                      f"{r['cached_read_tokens']}/{r['cache_write_tokens']}", usd(int(r["cost_micros"])),
                      r["price_source"])
    print_table(table, wide)
    if page.get("next_cursor"):
        out.print(f"[dim]more: --cursor {page['next_cursor']}[/]")


ledger_app = typer.Typer(name="ledger", invoke_without_command=True,
                         help="Model calls with tokens and cost; totals; reconciliation with provider-reported cost.")


@ledger_app.callback()
def ledger(
    ctx: typer.Context,
    summary: Annotated[bool, typer.Option("--summary", help="Totals grouped by --by, not rows.")] = False,
    by: Annotated[By | None, typer.Option("--by", help="Group the summary by (implies --summary).")] = None,
    ticket: Annotated[str | None, typer.Option("--ticket", help="Rows: only this ticket's calls.")] = None,
    bot: Annotated[str | None, typer.Option("--bot", help="Rows: only this bot's calls.")] = None,
    since: Annotated[str | None, typer.Option(
        "--since", help="Only calls from this time on: ISO 8601, or an age like 30m, 24h, 7d.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000, help="Rows: how many.")] = 50,
    cursor: Annotated[str | None, typer.Option("--cursor", help="Rows: next_cursor to go on from.")] = None,
    wide: WideFlag = False,
    as_json: JsonFlag = False,
) -> None:
    """Model calls with tokens and cost, newest first; or totals: --summary [--by bot|model|tenant|day]."""
    if ctx.invoked_subcommand is not None:
        return
    since_iso = parse_since(since)
    if summary or by is not None:
        if ticket or bot or cursor:
            raise typer.BadParameter("--ticket, --bot and --cursor apply to rows, not to --summary")
        with Client.from_settings() as api:
            totals: dict[str, Any] = api.get("/v1/ledger/summary", by=(by or By.BOT).value, since=since_iso)
        if as_json:
            emit_json(totals)
        else:
            _render_summary(totals, wide)
        return
    with Client.from_settings() as api:
        page: dict[str, Any] = api.get("/v1/ledger", ticket=ticket, bot=bot, since=since_iso, limit=limit,
                                       cursor=cursor)
    if as_json:
        emit_json(page)
    else:
        _render_rows(page, wide)


@ledger_app.command("reconcile")
def ledger_reconcile(
    since: Annotated[str | None, typer.Option("--since", help="From: ISO 8601 or an age (7d); default 30d.")] = None,
    until: Annotated[str | None, typer.Option("--until", help="Until: ISO 8601 (default now).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Provider-reported cost against the cost our prices compute, per provider and model; drift over 0.5% is
    flagged (exit 1 when anything is)."""
    with Client.from_settings() as api:
        report: dict[str, Any] = api.get("/v1/ledger/reconcile", since=parse_since(since or "30d"),
                                         until=parse_since(until) if until else None)
    if as_json:
        emit_json(report)
    else:
        table = Table("provider/model", "calls", "computed", "reported", "drift", "",
                      title=f"reconciliation {report['since'][:10]} .. {report['until'][:10]}", title_justify="left")
        for r in report["models"]:
            flag = "[red]over 0.5%[/]" if r["flagged"] else "[green]ok[/]"
            table.add_row(escape(f"{r['provider']}/{r['model']}"), str(r["calls"]), usd(int(r["computed"])),
                          usd(int(r["reported"])), f"{r['drift'] * 100:+.3f}%", flag)
        out.print(table)
        if not report["models"]:
            out.print("[dim]no calls with both a provider-reported and a computed cost in this period[/]")
    if report["flagged"]:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command()(status)
    app.command()(bots)
    app.add_typer(ledger_app)
    app.add_typer(fleet_app)
