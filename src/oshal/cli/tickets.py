"""``oshal ticket submit|show|list|wait|cancel|requeue``."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Group
from rich.json import JSON
from rich.markup import escape
from rich.panel import Panel
from rich.table import Column, Table

from oshal.cli import client
from oshal.cli.client import (
    FAILED,
    TERMINAL,
    Client,
    JsonFlag,
    WideFlag,
    emit_json,
    err,
    out,
    print_table,
    request,
    short,
    spinner,
)
from oshal.cli.exits import Exit
from oshal.errors import Invalid, OshalError
from oshal.types import TicketStatus

ticket_app = typer.Typer(name="ticket", no_args_is_help=True,
                         help="Submit work to a bot, inspect it, wait for it, cancel or requeue it.")

_STYLE = {"done": "green", "failed": "red", "dead_letter": "bold red", "cancelled": "yellow",
          "in_progress": "cyan", "backlog": "dim", "approved": "cyan", "approval_required": "bold magenta",
          "customer_action": "magenta", "paused": "yellow", "escalated": "bold yellow"}

IdArg = Annotated[str, typer.Argument(metavar="ID", help="Ticket id.")]


def status_text(status: str) -> str:
    return f"[{_STYLE.get(status, 'white')}]{status}[/]"


def read_input(text: str | None, input_file: str | None) -> Any:
    """The ticket input from the argument, a file or stdin (``-``), parsed before anything is sent."""
    if text is not None and input_file is not None:
        raise typer.BadParameter("give INPUT_JSON or --input-file, not both")
    if input_file is not None:
        source = "stdin" if input_file == "-" else f"input file {input_file}"
        if input_file == "-":
            raw = sys.stdin.read()
        else:
            try:
                raw = Path(input_file).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as e:
                raise Invalid(f"cannot read {source}: {getattr(e, 'strerror', None) or e}",
                              hint="pass a readable UTF-8 JSON file, or - for stdin") from e
    elif text == "-":
        source, raw = "stdin", sys.stdin.read()
    elif text is None:
        return {}
    else:
        source, raw = "INPUT_JSON", text
    try:
        return json.loads(raw)
    except json.JSONDecodeError as e:
        where = f"line {e.lineno} column {e.colno} (char {e.pos})"
        raise Invalid(f"{source} is not valid JSON: {e.msg} at {where}",
                      hint="quote the whole document for your shell, e.g. '{\"text\": \"hello\"}'") from e


def render_ticket(ticket: dict[str, Any]) -> None:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    duration = ticket.get("duration_ms")
    rows: list[tuple[str, Any]] = [
        ("bot", ticket.get("bot")), ("type", ticket.get("type")), ("status", status_text(ticket["status"])),
        ("step", ticket.get("phase")), ("reason", ticket.get("status_reason")),
        ("attempts", ticket["attempts"]), ("deliveries", ticket.get("deliveries")),
        ("consumer", ticket.get("consumer")), ("idempotency key", ticket.get("idempotency_key")),
        ("created", client.when(ticket["created_at"])),
        ("finished", ticket.get("finished_at") and client.when(ticket["finished_at"])),
        ("duration", f"{duration:.0f} ms" if duration is not None else None),
        ("model calls", ticket["calls"]), ("cost", client.usd(int(ticket["cost_micros"]))),
        ("duplicates", _duplicates(int(ticket.get("duplicates") or 0))),
    ]
    for label, value in rows:
        if value is not None:
            grid.add_row(label, value if label == "status" else escape(str(value)))
    if ticket.get("error"):
        grid.add_row("error", f"[red]{escape(str(ticket['error']))}[/]")
    parts: list[Any] = [grid, "[bold]input[/]", JSON.from_data(ticket["input"])]
    if ticket.get("result") is not None:
        parts += ["[bold]result[/]", JSON.from_data(ticket["result"])]
    out.print(Panel(Group(*parts), title=f"ticket {ticket['id']}", title_align="left"))


def _duplicates(count: int) -> str | None:
    if not count:
        return None
    runs = "execution" if count == 1 else "executions"
    return f"{count} {runs} beyond the first success (ran after a crash or a lost Redis; billed above)"


def show_ticket(ticket: dict[str, Any], as_json: bool) -> None:
    if as_json:
        emit_json(ticket)
    else:
        render_ticket(ticket)


def wait_and_show(api: Client, ticket_id: str, timeout: float, as_json: bool, *, quiet: bool = False) -> None:
    """Wait with a spinner on stderr, show the ticket (only its id when quiet), then exit FAILED or TIMEOUT unless
    it is done."""
    with spinner(f"ticket {short(ticket_id)}: waiting") as update:
        ticket = api.wait_ticket(ticket_id, timeout,
                                 lambda t: update(f"ticket {short(ticket_id)}: {t['status']}"))
    if quiet:
        _print_id(ticket_id)
    else:
        show_ticket(ticket, as_json)
    status = ticket["status"]
    if status in FAILED:
        detail = f": {ticket['error']}" if ticket.get("error") else ""
        hint = (f"run it again with `oshal ticket requeue {ticket_id}`" if status in ("failed", "dead_letter")
                else None)
        raise OshalError(f"ticket {ticket_id} ended {status}{detail}", hint=hint)
    if status not in TERMINAL:
        err.print(f"[bold yellow]timeout:[/] ticket {ticket_id} is still {status} after {timeout:g}s")
        err.print(f"[dim]hint:[/] keep waiting with `oshal ticket wait {ticket_id} --timeout 300`")
        raise typer.Exit(int(Exit.TIMEOUT))


@ticket_app.command()
def submit(
    bot: Annotated[str | None, typer.Argument(
        metavar="[BOT]", help="The bot to do the work (see `oshal bots`); or give --type.")] = None,
    input_json: Annotated[str | None, typer.Argument(
        metavar="[INPUT_JSON]", help="The input as a JSON document, or - for stdin. Default {}.",
    )] = None,
    input_file: Annotated[str | None, typer.Option(
        "--input-file", "-f", help="Read the JSON input from this file (- for stdin).")] = None,
    key: Annotated[str | None, typer.Option(
        "--key", help="Idempotency key: resubmitting the same key and body returns the same ticket.")] = None,
    wait: Annotated[float | None, typer.Option(
        "--wait", metavar="SECONDS", min=0, help="Wait up to this long for the result, then show the ticket.",
    )] = None,
    ticket_type: Annotated[str | None, typer.Option(
        "--type", "-t", help="A ticket type (workflow, see `oshal workflow list`) instead of a bot.")] = None,
    hold: Annotated[bool, typer.Option("--hold", help="Typed tickets: wait in backlog for an approval.")] = False,
    quiet: Annotated[bool, typer.Option(
        "--quiet", "-q", help="Print only the ticket's id, for scripts: ID=$(oshal ticket submit ... -q).")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Submit a ticket to a bot, or of a type (a workflow). With --wait, exits 1 if it fails and 8 if it is
    not finished (or waiting for a person) in time."""
    if ticket_type is not None and bot is not None and input_json is None:
        bot, input_json = None, bot  # `submit --type T INPUT_JSON`: the one positional is the input
    if (bot is None) == (ticket_type is None):
        raise typer.BadParameter("give a BOT or --type TYPE (exactly one)")
    if quiet and as_json:
        raise typer.BadParameter("give --quiet (the id only) or --json (the whole document), not both")
    value = read_input(input_json, input_file)
    body: dict[str, Any] = {"bot": bot, "input": value} if bot else {"type": ticket_type, "input": value}
    if hold:
        body["hold"] = True
    if key is not None:
        body["idempotency_key"] = key
    with Client.from_settings() as api:
        created: dict[str, Any] = api.post("/v1/tickets", body)
        if wait is not None:
            wait_and_show(api, str(created["id"]), wait, as_json, quiet=quiet)
            return
    if quiet:
        _print_id(str(created["id"]))
        return
    if as_json:
        emit_json(created)
        return
    how = "created" if created["created"] else "existing ticket returned for this idempotency key"
    out.print(f"ticket [bold]{created['id']}[/] {status_text(created['status'])} ({how})")
    err.print(f"[dim]follow it with `oshal ticket wait {created['id']}`[/]")


def _print_id(ticket_id: str) -> None:
    sys.stdout.write(f"{ticket_id}\n")
    sys.stdout.flush()


@ticket_app.command()
def show(ticket_id: IdArg, as_json: JsonFlag = False) -> None:
    """Show one ticket: status, attempts, timings, cost, input and result."""
    with Client.from_settings() as api:
        show_ticket(api.get(f"/v1/tickets/{ticket_id}"), as_json)


@ticket_app.command("wait")
def wait_cmd(
    ticket_id: IdArg,
    timeout: Annotated[float, typer.Option("--timeout", min=0, help="Seconds to wait in total.")] = 60,
    as_json: JsonFlag = False,
) -> None:
    """Wait for a ticket to finish, then show it. Exits 1 if it failed and 8 if it is still running."""
    with Client.from_settings() as api:
        wait_and_show(api, ticket_id, timeout, as_json)


@ticket_app.command("list")
def list_cmd(
    status: Annotated[TicketStatus | None, typer.Option("--status", help="Only tickets in this state.")]
    = None,
    bot: Annotated[str | None, typer.Option("--bot", help="Only tickets for this bot.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=500, help="Tickets per page.")] = 20,
    cursor: Annotated[str | None, typer.Option("--cursor", help="next_cursor of the previous page.")] = None,
    all_pages: Annotated[bool, typer.Option("--all", help="Follow next_cursor to the last page.")] = False,
    wide: WideFlag = False,
    as_json: JsonFlag = False,
) -> None:
    """List tickets, newest first. --json prints the page {items, next_cursor} (with --all: every item)."""
    params: dict[str, Any] = {"status": status.value if status else None, "bot": bot, "cursor": cursor}
    with Client.from_settings() as api:
        if all_pages:
            items = [t for page in api.pages("/v1/tickets", limit=limit, **params) for t in page["items"]]
            page: dict[str, Any] = {"items": items, "next_cursor": None}
        else:
            page = api.get("/v1/tickets", limit=limit, **params)
    if as_json:
        emit_json(page)
        return
    table = Table(Column("id", no_wrap=True, min_width=36), "bot", "status", "try", "created", "duration",
                  "cost", title=f"tickets ({len(page['items'])})", title_justify="left")
    for t in page["items"]:
        duration = t.get("duration_ms")
        table.add_row(str(t["id"]), t["bot"], status_text(t["status"]), str(t["attempts"]),
                      client.when(t["created_at"]), f"{duration:.0f} ms" if duration is not None else "-",
                      client.usd(int(t["cost_micros"])))
    print_table(table, wide)
    if page.get("next_cursor"):
        err.print(f"[dim]more: --cursor {page['next_cursor']}  (or --all)[/]")


ReasonOpt = Annotated[str | None, typer.Option("--reason", "-r", help="Why; recorded in the timeline.")]


# What each action on one ticket does: ``oshal ticket ACTION ID [--reason WHY]`` posts to /v1/tickets/ID/ACTION.
_ACTIONS = {
    "cancel": "Cancel a ticket that has not finished, with its open work (exit 6 if it has already finished).",
    "requeue": "Operator only: run a failed, dead-lettered or escalated ticket again (a workflow retries its step).",
    "approve": "Operator only: approve a ticket at an approval gate (or in backlog); its run resumes.",
    "reject": "Operator only: reject at an approval gate; the workflow ends or reroutes as its definition says.",
    "pause": "Operator only: pause a ticket; work in flight finishes but nothing new starts until resume.",
    "resume": "Operator only: resume a paused ticket where it stood.",
    "escalate": "Operator only: hand a ticket to a human (escalated); requeue or close it later.",
    "close": "Operator only: close a ticket waiting on the customer or escalated, as done.",
}


def _action_command(action: str, doc: str) -> Callable[..., None]:
    def command(ticket_id: IdArg, reason: ReasonOpt = None, as_json: JsonFlag = False) -> None:
        show_ticket(request("POST", f"/v1/tickets/{ticket_id}/{action}", {"reason": reason}), as_json)

    command.__doc__ = doc
    return command


for _action, _doc in _ACTIONS.items():
    ticket_app.command(_action)(_action_command(_action, _doc))


@ticket_app.command()
def timeline(ticket_id: IdArg, wide: WideFlag = False, as_json: JsonFlag = False) -> None:
    """Every transition of a ticket (when, who, why), its phases and artifacts."""
    with Client.from_settings() as api:
        data = api.get(f"/v1/tickets/{ticket_id}/timeline")
    if as_json:
        emit_json(data)
        return
    table = Table("at", "from", "to", "step", Column("by", no_wrap=True), "why")
    for e in data["events"]:
        table.add_row(client.when(e["at"]), e["from_status"] or "-", status_text(e["to_status"]),
                      escape(e["phase"] or ""), escape(e["actor"]), escape(e["reason"] or ""))
    print_table(table, wide)
    for artifact in data["artifacts"]:
        out.print(f"artifact [bold]{escape(artifact['name'])}[/] {artifact['size']} bytes "
                  f"({artifact['content_type']})")


@ticket_app.command()
def replay(
    ticket_id: IdArg,
    timeout: Annotated[float, typer.Option("--timeout", min=0, help="Seconds to wait for the replay.")] = 120,
    as_json: JsonFlag = False,
) -> None:
    """Re-run a finished ticket offline with its recorded model and tool responses ($0, nothing external is
    called), then show what diverged. Exit 0 when identical, 1 when anything differs, 8 if it is still running."""
    with Client.from_settings() as api:
        created = api.post(f"/v1/tickets/{ticket_id}/replay")
        finished = api.wait_ticket(created["id"], timeout)
        diff: dict[str, Any] = api.get(f"/v1/tickets/{created['id']}/replay-diff")
    if as_json:
        emit_json(diff)
    else:
        _show_diff(diff)
    if finished["status"] not in TERMINAL:
        raise typer.Exit(int(Exit.TIMEOUT))
    if not diff["identical"]:
        raise typer.Exit(int(Exit.FAILED))


@ticket_app.command("replay-diff")
def replay_diff(ticket_id: IdArg, as_json: JsonFlag = False) -> None:
    """What a replay ticket did differently from the ticket it replayed."""
    with Client.from_settings() as api:
        diff: dict[str, Any] = api.get(f"/v1/tickets/{ticket_id}/replay-diff")
    if as_json:
        emit_json(diff)
    else:
        _show_diff(diff)


def _show_diff(diff: dict[str, Any]) -> None:
    spend = diff["spend"]
    verdict = "[green]identical[/]" if diff["identical"] else "[yellow]diverged[/]"
    out.print(f"replay {diff['replay']} of {diff['original']}: {verdict}; status {diff['status']['original']} -> "
              f"{diff['status']['replay']}; {diff['calls']['replay']} of {diff['calls']['original']} recorded calls "
              f"replayed; spent {client.usd(spend['cost_micros'])} ({spend['live_calls']} live calls)")
    for call in diff["calls"]["differing"]:
        where = f"{call['step'] or 'ticket'} {call['kind']} #{call['seq']}"
        out.print(f"[yellow]~[/] {escape(where)}\n  original: {escape(str(call['original']))[:300]}\n"
                  f"  replay:   {escape(str(call['replay']))[:300]}")
    if diff["result"] is not None:
        out.print(f"[yellow]~[/] result\n  original: {escape(str(diff['result']['original']))[:300]}\n"
                  f"  replay:   {escape(str(diff['result']['replay']))[:300]}")


def register(app: typer.Typer) -> None:
    app.add_typer(ticket_app, name="ticket")
