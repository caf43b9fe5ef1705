"""``oshal schedule create|list|show|disable|enable|run``: cron schedules that create tickets."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.console import Group
from rich.json import JSON
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from oshal.cli import client
from oshal.cli.client import JsonFlag, WideFlag, emit_json, out, print_rows, report, request
from oshal.errors import Invalid

schedule_app = typer.Typer(name="schedule", no_args_is_help=True,
                           help="Cron schedules that create tickets: create, list, show, disable, enable, run.")


class Policy(StrEnum):
    SKIP = "skip"
    CATCH_UP_ONCE = "catch_up_once"


NameArg = Annotated[str, typer.Argument(metavar="NAME", help="Schedule name (lowercase letters, digits, '-').")]


def _parse_input(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise Invalid(f"--input is not valid JSON: {e.msg} at line {e.lineno} column {e.colno}",
                      hint="quote the whole document for your shell, e.g. --input '{\"report\": \"daily\"}'") from e


def _target(schedule: dict[str, Any]) -> str:
    return f"type {schedule['type']}" if schedule.get("type") else f"bot {schedule['bot']}"


def _enabled_text(schedule: dict[str, Any]) -> str:
    return "[green]enabled[/]" if schedule["enabled"] else "[yellow]disabled[/]"


def _render(schedule: dict[str, Any]) -> None:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    rows = [("when", schedule["summary"]), ("cron", f"{schedule['cron']} ({schedule['timezone']})"),
            ("creates", _target(schedule)), ("missed ticks", schedule["policy"]),
            ("next tick", client.when(schedule["next_tick"])), ("last tick", client.when(schedule["last_tick"])),
            ("created", client.when(schedule["created_at"]))]
    grid.add_row("state", _enabled_text(schedule))
    for label, value in rows:
        grid.add_row(label, escape(str(value)))
    parts: list[Any] = [grid, "[bold]input[/]", JSON.from_data(schedule["input"])]
    if "fires" in schedule:
        parts += ["[bold]recent fires[/]", _fires_table(schedule["fires"])]
    out.print(Panel(Group(*parts), title=f"schedule {schedule['name']}", title_align="left"))


def _fires_table(fires: list[dict[str, Any]]) -> Table | str:
    if not fires:
        return "[dim]none yet[/]"
    table = Table("tick", "ticket", "fired by", "fired at")
    for fire in fires:
        table.add_row(client.when(fire["tick"]), str(fire["ticket_id"]), escape(fire["fired_by"]),
                      client.when(fire["fired_at"]))
    return table


@schedule_app.command()
def create(
    name: NameArg,
    cron: Annotated[str, typer.Option("--cron", help='Five cron fields or an alias, e.g. "*/5 * * * *", '
                                                     '"0 9 * * 1-5", @daily.')],
    tz: Annotated[str, typer.Option("--tz", help="IANA time zone the cron is read in, e.g. Europe/Berlin.")]
    = "UTC",
    ticket_type: Annotated[str | None, typer.Option("--type", help="Create tickets of this type (workflow).")]
    = None,
    bot: Annotated[str | None, typer.Option("--bot", help="Create tickets for this bot.")] = None,
    input_json: Annotated[str | None, typer.Option("--input", metavar="JSON",
                                                   help="Input of every ticket it creates. Default {}.")] = None,
    policy: Annotated[Policy, typer.Option("--policy", help="Ticks missed while no scheduler ran: skip fires the "
                                                            "latest only if at most a minute late; catch_up_once "
                                                            "fires it once however late.")] = Policy.SKIP,
    as_json: JsonFlag = False,
) -> None:
    """Operator only: create a schedule that creates a ticket (of a type, or for a bot) on every cron tick."""
    if (ticket_type is None) == (bot is None):
        raise typer.BadParameter("give exactly one of --type or --bot", param_hint="'--type' / '--bot'")
    body: dict[str, Any] = {"name": name, "cron": cron, "timezone": tz, "policy": policy.value,
                            "input": _parse_input(input_json) if input_json is not None else {}}
    body.update({"type": ticket_type} if ticket_type else {"bot": bot})
    schedule: dict[str, Any] = request("POST", "/v1/schedules", body)
    report(schedule, as_json, f"schedule [bold]{escape(name)}[/] created: {escape(schedule['summary'])}, "
                              f"creates {escape(_target(schedule))}",
           f"next tick at {client.when(schedule['next_tick'])} UTC; fire it now with `oshal schedule run {name}`")


@schedule_app.command("list")
def list_cmd(wide: WideFlag = False, as_json: JsonFlag = False) -> None:
    """The tenant's schedules, by name, with their next and last ticks."""
    schedules: list[dict[str, Any]] = request("GET", "/v1/schedules")
    table = Table("name", "when", "creates", "missed ticks", "state", "next tick (UTC)", "last tick (UTC)",
                  title=f"schedules ({len(schedules)})", title_justify="left")
    print_rows(schedules, table, lambda s: (
        escape(s["name"]), escape(s["summary"]), escape(_target(s)), s["policy"], _enabled_text(s),
        client.when(s["next_tick"]), client.when(s["last_tick"])), wide=wide, as_json=as_json)


@schedule_app.command()
def show(name: NameArg, as_json: JsonFlag = False) -> None:
    """One schedule: its timetable, target, input and most recent fires."""
    schedule: dict[str, Any] = request("GET", f"/v1/schedules/{name}")
    if as_json:
        emit_json(schedule)
    else:
        _render(schedule)


@schedule_app.command()
def disable(name: NameArg, as_json: JsonFlag = False) -> None:
    """Operator only: stop a schedule firing (it is kept, with its fires; enable it again any time)."""
    report(request("POST", f"/v1/schedules/{name}/disable"), as_json, f"schedule [bold]{escape(name)}[/] disabled")


@schedule_app.command()
def enable(name: NameArg, as_json: JsonFlag = False) -> None:
    """Operator only: fire again from the next tick on (ticks missed while disabled do not fire)."""
    schedule: dict[str, Any] = request("POST", f"/v1/schedules/{name}/enable")
    report(schedule, as_json,
           f"schedule [bold]{escape(name)}[/] enabled; next tick at {client.when(schedule['next_tick'])} UTC")


@schedule_app.command()
def run(name: NameArg, as_json: JsonFlag = False) -> None:
    """Operator only: create the schedule's ticket now, outside its timetable."""
    result: dict[str, Any] = request("POST", f"/v1/schedules/{name}/run")
    report(result, as_json, f"schedule [bold]{escape(name)}[/] fired: ticket [bold]{result['ticket_id']}[/]",
           f"follow it with `oshal ticket wait {result['ticket_id']}`")


def register(app: typer.Typer) -> None:
    app.add_typer(schedule_app, name="schedule")
