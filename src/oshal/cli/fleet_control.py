"""``oshal fleet restart|scale|show``: orders for the processes that run a bot, and whether they were carried out."""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer
from rich.markup import escape

from oshal.cli.client import JsonFlag, emit_json, out, request
from oshal.errors import Unavailable

fleet_app = typer.Typer(name="fleet", no_args_is_help=True,
                        help="Restart a bot's processes or change its replicas (platform operators).")

Reason = Annotated[str, typer.Option(help="Why; kept in the audit log.")]
Wait = Annotated[float, typer.Option(help="Seconds to wait until the order is carried out (0: don't wait).")]


def _show(row: dict[str, Any]) -> None:
    ordered = "manifest" if row["replicas"] is None else str(row["replicas"])
    applied = "manifest" if row["applied_replicas"] is None else str(row["applied_replicas"])
    out.print(f"[bold]{escape(row['bot'])}[/]: replicas ordered {ordered}, applied {applied}; restarts ordered "
              f"{row['restart_seq']}, applied {row['applied_seq']}"
              + (f" — {escape(row['applied_note'])}" if row["applied_note"] else ""))


def _carried_out(row: dict[str, Any]) -> bool:
    return bool(row["applied_seq"] >= row["restart_seq"] and row["applied_replicas"] == row["replicas"])


def _follow(bot: str, row: dict[str, Any], wait_s: float, as_json: bool) -> None:
    deadline = time.monotonic() + wait_s
    while wait_s > 0 and not _carried_out(row) and time.monotonic() < deadline:
        time.sleep(0.5)
        row = request("GET", f"/v1/bots/{bot}/control")
    if as_json:
        emit_json(row)
    else:
        _show(row)
    if wait_s > 0 and not _carried_out(row):
        raise Unavailable(f"the order for {bot} was not carried out within {wait_s:g} s",
                          hint="is something running the bot's nodes (`oshal up`, or your orchestrator reading "
                               "GET /v1/bots/<bot>/control)?")


@fleet_app.command("restart")
def restart(bot: str, reason: Reason, wait: Wait = 60.0, as_json: JsonFlag = False) -> None:
    """Restart BOT's processes, drained first (nothing in flight is lost)."""
    _follow(bot, request("POST", f"/v1/bots/{bot}/restart", {"reason": reason}), wait, as_json)


@fleet_app.command("scale")
def scale(bot: str, replicas: Annotated[str, typer.Argument(help="How many, 0-64, or 'manifest'.")],
          reason: Reason, wait: Wait = 60.0, as_json: JsonFlag = False) -> None:
    """Set how many replicas consume BOT's lane ('manifest' returns to its manifest's number)."""
    count: int | None = None
    if replicas != "manifest":
        try:
            count = int(replicas)
        except ValueError:
            raise typer.BadParameter(f"{replicas!r} is not a number of replicas or 'manifest'") from None
    _follow(bot, request("PUT", f"/v1/bots/{bot}/replicas", {"replicas": count, "reason": reason}), wait, as_json)


@fleet_app.command("show")
def show(bot: str, as_json: JsonFlag = False) -> None:
    """What was ordered of BOT's processes and what was carried out."""
    row = request("GET", f"/v1/bots/{bot}/control")
    if as_json:
        emit_json(row)
    else:
        _show(row)
