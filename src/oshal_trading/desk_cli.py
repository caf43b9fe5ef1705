"""``oshal trade desk|status|positions|fills|orders|pnl|halt|resume|trace``: the desk on the platform, over its API.

Exit codes, as ``oshal ops``: 2 usage or configuration, 3 authentication or permission, 4 not found, 1 anything else
the platform refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
import yaml
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from oshal_trading import alpaca_trading, desk_config, recap_requests
from oshal_trading.bar_source import BundledBars
from oshal_trading.desk import LIVE_FLAG, DeskError, DeskService, StepOutcome, read_switches, trace, write_switches
from oshal_trading.desk_config import DeskConfig, DeskConfigError
from oshal_trading.platform import KeyMissing, PlatformAPI, PlatformError, RecordConflict, Records
from oshal_trading.strategies import StrategyError

out = Console()
err = Console(stderr=True)
T = TypeVar("T")
DeskOption = Annotated[str, typer.Option("--desk", help="The desk's name.")]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON, not tables.")]
desk_app = typer.Typer(no_args_is_help=True, add_completion=False, help="Run the desk; switch it live or paper.")
live_app = typer.Typer(no_args_is_help=True, add_completion=False,
                       help="The desk's live switch (live also needs OSHAL_TRADING_LIVE=1 on the desk service).")
desk_app.add_typer(live_app, name="live")


def fail(message: str, hint: str = "", code: int = 1) -> typer.Exit:
    err.print(f"[bold red]error:[/] {escape(message)}")
    if hint:
        err.print(f"[dim]hint:[/] {escape(hint)}")
    return typer.Exit(code)


def _with_api(work: Callable[[PlatformAPI], Awaitable[T]]) -> T:
    async def go() -> T:
        async with PlatformAPI.from_environment() as api:
            return await work(api)
    try:
        return asyncio.run(go())
    except KeyMissing as e:
        raise fail(str(e), code=2) from e
    except PlatformError as e:
        code = 3 if e.status in (401, 403) else 4 if e.status == 404 else 1
        raise fail(e.message, e.hint, code=code) from e
    except RecordConflict as e:
        raise fail(str(e), "a step re-run produced different orders or fills than it recorded; check the desk's "
                           "configuration and data", code=1) from e
    except (DeskConfigError, StrategyError) as e:
        raise fail(str(e), code=2) from e
    except DeskError as e:
        raise fail(str(e), code=1) from e


async def _config(records: Records, desk: str) -> DeskConfig:
    stored = await records.get("desks", desk)
    if stored is None:
        raise PlatformError("GET", f"desks/{desk}", 404, f"no desk named {desk!r}",
                            "start one with `oshal trade desk run --replay DATE --symbols ...`")
    return desk_config.from_json(stored)


async def _books(api: PlatformAPI, desk: str) -> DeskService:
    service = DeskService(api, await _config(Records(api), desk), BundledBars())
    await service.rebuild()
    return service


def _money(cents: int) -> str:
    return f"{'-' if cents < 0 else ''}${abs(cents) / 100:,.2f}"


def _print_json(document: Any) -> None:
    sys.stdout.write(json.dumps(document, indent=2, default=str) + "\n")


def _date(value: str | None, option: str) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError as e:
        raise fail(f"{option} {value!r} is not a date", "write it as YYYY-MM-DD", code=2) from e


# --- desk run ---------------------------------------------------------------------------------------------------


@desk_app.command("run")
def desk_run(
    desk: DeskOption = "main",
    replay: Annotated[str | None, typer.Option(help="Replay the session of this day (YYYY-MM-DD) from recorded "
                                                    "bars; a desk with steps resumes after its last one.")] = None,
    to: Annotated[str | None, typer.Option("--to", help="Replay through this day (default: --replay's).")] = None,
    symbols: Annotated[str | None, typer.Option(help="A new desk's symbols, comma-separated.")] = None,
    strategy: Annotated[str, typer.Option(help="A new desk's strategy.")] = "sma-cross",
    param: Annotated[list[str] | None, typer.Option(help="A new desk's strategy parameter NAME=VALUE.")] = None,
    history_from: Annotated[str | None, typer.Option(help="A new desk's first bar (default: 120 days before "
                                                          "--replay).")] = None,
    recap: Annotated[bool, typer.Option(help="File the last session's recap (its own ticket, with the equity "
                                             "chart as its artifact).")] = True,
    as_json: JsonFlag = False,
) -> None:
    """Drive the desk's workflow (signal -> risk -> execute on its bots) over the bars of its sessions, booking
    signals, risk decisions, orders, fills and journal entries as records. Re-running is safe: steps already booked
    are skipped, a step's ticket is found again by its idempotency key, and no order or fill is booked twice."""
    first = _date(replay, "--replay")
    end = _date(to, "--to") or first
    if first is None or end is None:
        raise fail("the desk runs replayed sessions: give --replay DATE", "the bundled bars end on 2017-12-29; a live "
                   "bar source comes with the platform's bar store", code=2)
    params: dict[str, object] = {}
    for pair in param or []:
        name, sep, raw = pair.partition("=")
        if not sep:
            raise fail(f"--param {pair!r} is not NAME=VALUE", "e.g. --param fast=10", code=2)
        try:
            params[name] = json.loads(raw)
        except ValueError:
            params[name] = raw

    async def work(api: PlatformAPI) -> tuple[list[StepOutcome], dict[str, Any] | None]:
        records = Records(api)
        stored = await records.get("desks", desk)
        if stored is not None:
            config = desk_config.from_json(stored)
        else:
            if not symbols:
                raise DeskConfigError(f"desk {desk!r} is new: give its --symbols (and --strategy, --param)")
            config = DeskConfig(name=desk, strategy=strategy, params=params,
                                symbols=tuple(s.strip().upper() for s in symbols.split(",") if s.strip()),
                                history_from=_date(history_from, "--history-from") or first - dt.timedelta(days=120))
        service = DeskService(api, config, BundledBars(), live_flag=os.environ.get(LIVE_FLAG) == "1")
        await service.start()

        async def show(outcome: StepOutcome) -> None:
            if not as_json:
                out.print(f"{outcome.day}  {outcome.outcome:17} fills {len(outcome.fills):2}  equity "
                          f"{_money(outcome.equity)}  ticket {outcome.ticket}")
        outcomes = await service.run(end, start=first, on_step=show)
        booked = [o for o in outcomes if o.outcome not in ("awaiting_approval", "done_before")]
        filed = await service.recap(booked[-1].day) if recap and booked else None
        return outcomes, filed

    outcomes, filed = _with_api(work)
    if as_json:
        _print_json([{"day": o.day, "outcome": o.outcome, "ticket": o.ticket, "fills": list(o.fills),
                      "equity": o.equity} for o in outcomes])
    elif filed is not None:
        words = (filed.get("narrative") or {}).get("text") or filed["recap"]["narrative"]
        out.print(f"recap of {filed['day']}: {escape(words)}")
        out.print(f"equity chart: /v1/tickets/{filed['ticket']}/artifacts/equity.png")
    elif not outcomes:
        out.print(f"nothing to replay: desk {desk} has booked every session through {end}")


@desk_app.command("serve")
def desk_serve(
    desk: DeskOption = "main",
    interval: Annotated[float, typer.Option(min=0.1, help="Seconds between looks for requests.")] = 30.0,
    once: Annotated[bool, typer.Option("--once", help="Answer what is pending, then stop.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """The desk service, long-running: answers the desk's scheduled recap requests (`oshal trade desk schedule-recap`)
    with the recap of its last booked session, one recap per desk and day, until Ctrl-C. Sessions are booked by
    `oshal trade desk run`."""
    shown: list[dict[str, Any]] = []

    async def work(api: PlatformAPI) -> None:
        service = DeskService(api, await _config(Records(api), desk), BundledBars(),
                              live_flag=os.environ.get(LIVE_FLAG) == "1")
        await service.start()
        stop = asyncio.Event()
        if not once:
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(signum, stop.set)
            err.print(f"desk {desk}: answering recap requests every {interval:g} s (Ctrl-C stops)")
        while not stop.is_set():
            try:
                answers = await recap_requests.answer_requests(service)
            except (PlatformError, DeskError) as e:
                if once:
                    raise
                err.print(f"[yellow]this round failed, trying again in {interval:g} s:[/] {escape(str(e))}")
                answers = []
            for answer in answers:
                shown.append({"request": answer.request, "day": answer.day, "recap_ticket": answer.recap_ticket})
                if not as_json:
                    out.print(f"recap request {answer.request}: " + (
                        f"recap of {answer.day} (ticket {answer.recap_ticket})" if answer.day
                        else "no session booked yet"))
            if once:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)

    _with_api(work)
    if as_json:
        _print_json(shown)


@desk_app.command("schedule-recap")
def desk_schedule_recap(
    desk: DeskOption = "main",
    cron: Annotated[str, typer.Option(help="When, as five cron fields.")] = recap_requests.DEFAULT_CRON,
    timezone: Annotated[str, typer.Option(help="The time zone the cron fields are read in.")] =
        recap_requests.DEFAULT_TIMEZONE,
) -> None:
    """Schedule the desk's daily recap on the platform (`/v1/schedules`): each tick files a recap request that the
    desk service (`oshal trade desk serve`) answers. Run again to change the timetable."""
    async def work(api: PlatformAPI) -> tuple[str, dict[str, Any]]:
        await _config(Records(api), desk)
        return await recap_requests.schedule_recap(api, desk, cron=cron, timezone=timezone)
    done, schedule = _with_api(work)
    out.print(f"schedule {schedule['name']} {done}: {schedule['summary']}; next {schedule['next_tick']}")


def _switch(desk: str, reason: str, **changes: bool) -> Any:
    async def work(api: PlatformAPI) -> Any:
        records = Records(api)
        await _config(records, desk)
        who = (await api.get("/v1/whoami")).get("key_id", "")
        return await write_switches(records, desk, by=str(who), reason=reason, **changes)
    return _with_api(work)


@live_app.command("on")
def live_on(desk: DeskOption = "main",
            autopilot: Annotated[bool, typer.Option(help="Send live orders without a person approving each "
                                                         "step's orders.")] = False,
            reason: Annotated[str, typer.Option(help="Why (kept with the switch).")] = "switched live") -> None:
    """Turn the desk's live switch on (recorded and audited). Orders go live only when the desk service also runs
    with OSHAL_TRADING_LIVE=1; each step's orders then wait for approval unless --autopilot."""
    state = _switch(desk, reason, live=True, autopilot=autopilot)
    out.print(f"desk {desk}: live switch on{' (autopilot)' if state.autopilot else ', each step approved by a person'}"
              f"; the service also needs {LIVE_FLAG}=1")


@live_app.command("off")
def live_off(desk: DeskOption = "main",
             reason: Annotated[str, typer.Option(help="Why (kept with the switch).")] = "switched to paper") -> None:
    """Back to paper trading."""
    _switch(desk, reason, live=False, autopilot=False)
    out.print(f"desk {desk}: paper trading")


@live_app.command("connector")
def live_connector(spec: Annotated[Path, typer.Argument(help="Alpaca's trading API document "
                                                             "(alpaca-trading.yaml).")]) -> None:
    """Print Alpaca's trading API document with the look-up by client order id added (the desk's retried steps
    find their orders with it), ready for `oshal connector import FILE --id alpaca-trading`."""
    try:
        document = yaml.safe_load(spec.read_text(encoding="utf-8"))
        if not isinstance(document, dict):
            raise ValueError("it is not a YAML or JSON object")
        _print_json(alpaca_trading.connector_document(document))
    except (OSError, ValueError, yaml.YAMLError) as e:
        raise fail(f"cannot use {spec}: {e}", "give the path of alpaca-trading.yaml (Alpaca's OpenAPI document)",
                   code=2) from e


def halt(desk: DeskOption = "main",
         reason: Annotated[str, typer.Option(help="Why (kept with both switches).")] = "halted") -> None:
    """Stop new orders at once: the desk's halt switch (its risk engine blocks every order by the kill-switch rule)
    and the platform's kill switch on the execute bot (needs a platform operator key)."""
    _switch(desk, reason, halted=True)

    async def kill(api: PlatformAPI) -> str:
        try:
            await api.post("/v1/kill", {"bot": "trade-execute", "reason": f"oshal trade halt {desk}: {reason}"})
        except PlatformError as e:
            if e.status == 409:
                return "already engaged"
            if e.status == 403:
                return "not engaged (a platform operator key sets it); the desk's own halt blocks every order"
            raise
        return "engaged"
    kill_state = _with_api(kill)
    out.print(f"desk {desk}: halted; the execute bot's kill switch: {kill_state}")


def resume(desk: DeskOption = "main",
           reason: Annotated[str, typer.Option(help="Why (kept with the switch).")] = "resumed") -> None:
    """Take new orders again: the halt switch off and the execute bot's kill switch released."""
    _switch(desk, reason, halted=False)

    async def release(api: PlatformAPI) -> str:
        try:
            await api.delete("/v1/kill/trade-execute")
        except PlatformError as e:
            if e.status in (403, 404, 409):
                return "left as it was" if e.status == 403 else "was not engaged"
            raise
        return "released"
    out.print(f"desk {desk}: resumed; the execute bot's kill switch {_with_api(release)}")


def status(desk: DeskOption = "main", as_json: JsonFlag = False) -> None:
    """The desk's configuration, switches, last session and books."""
    async def work(api: PlatformAPI) -> dict[str, Any]:
        service = await _books(api, desk)
        switches = await read_switches(service.records, desk)
        ledger, curve = service.books.ledger, service.books.curve
        return {"desk": desk, "strategy": service.config.strategy, "symbols": list(service.config.symbols),
                "params": dict(service.config.params), "halted": switches.halted, "live": switches.live,
                "autopilot": switches.autopilot, "sessions": len(curve),
                "last_session": curve[-1][0].isoformat() if curve else None,
                "equity": curve[-1][1] if curve else service.config.opening_cash, "cash": ledger.cash(),
                "positions": len(ledger.positions()), "fills": len(service.books.fills)}
    document = _with_api(work)
    if as_json:
        _print_json(document)
        return
    table = Table("field", "value")
    for name, value in document.items():
        table.add_row(name, _money(value) if name in ("equity", "cash") else str(value))
    out.print(table)


def positions(desk: DeskOption = "main", as_json: JsonFlag = False) -> None:
    """Open positions at cost and at the last close."""
    async def work(api: PlatformAPI) -> list[dict[str, Any]]:
        service = await _books(api, desk)
        closes = service.books.closes
        return [{"symbol": s, "quantity": p.quantity, "cost": p.cost, "mark": closes.get(s),
                 "value": p.quantity * closes[s] if s in closes else None,
                 "unrealized": p.quantity * closes[s] - p.cost if s in closes else None}
                for s, p in service.books.ledger.positions().items()]
    rows = _with_api(work)
    if as_json:
        _print_json(rows)
        return
    table = Table("symbol", "quantity", "cost", "mark", "value", "unrealized")
    for r in rows:
        table.add_row(r["symbol"], str(r["quantity"]), _money(r["cost"]), _money(r["mark"] or 0),
                      _money(r["value"] or 0), _money(r["unrealized"] or 0))
    out.print(table if rows else "no open positions")


def _listing(collection: str, desk: str) -> list[dict[str, Any]]:
    async def work(api: PlatformAPI) -> list[dict[str, Any]]:
        records = Records(api)
        await _config(records, desk)
        return [body async for _, body in records.each(collection, newest_first=True) if body.get("desk") == desk]
    return _with_api(work)


def fills(desk: DeskOption = "main", limit: Annotated[int, typer.Option(min=1)] = 50,
          quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the newest fill's id.")] = False,
          as_json: JsonFlag = False) -> None:
    """The desk's fills, newest first."""
    rows = _listing("fills", desk)[:limit]
    if quiet:
        if not rows:
            raise fail(f"desk {desk} has no fills yet", code=4)
        sys.stdout.write(rows[0]["fill"]["id"] + "\n")
        return
    if as_json:
        _print_json(rows)
        return
    table = Table("fill", "step", "side", "quantity", "symbol", "price", "fee")
    for r in rows:
        f = r["fill"]
        table.add_row(f["id"], r["step"], f["side"], str(f["quantity"]), f["symbol"], _money(f["price"]),
                      _money(f["fee"]))
    out.print(table if rows else "no fills yet")


def orders(desk: DeskOption = "main", limit: Annotated[int, typer.Option(min=1)] = 50,
           as_json: JsonFlag = False) -> None:
    """The orders the desk sent (each approved by its risk decision), newest first."""
    rows = _listing("orders", desk)[:limit]
    if as_json:
        _print_json(rows)
        return
    table = Table("order", "step", "side", "quantity", "symbol", "type", "mode", "signal")
    for r in rows:
        o = r["order"]
        table.add_row(o["client_order_id"], r["step"], o["side"], str(o["quantity"]), o["symbol"], o["type"],
                      r.get("mode", "paper"), r["signal_id"])
    out.print(table if rows else "no orders yet")


def pnl(desk: DeskOption = "main", as_json: JsonFlag = False) -> None:
    """Realized and unrealized P&L, fees, equity and return since the desk opened."""
    async def work(api: PlatformAPI) -> dict[str, Any]:
        service = await _books(api, desk)
        ledger, closes = service.books.ledger, service.books.closes
        opening = service.config.opening_cash
        equity = ledger.equity(closes)
        return {"desk": desk, "opening_cash": opening, "realized": ledger.realized_pnl(), "fees": ledger.fees(),
                "unrealized": ledger.unrealized_pnl(closes), "equity": equity, "pnl": equity - opening,
                "return": (equity - opening) / opening, "trial_balance_balanced": ledger.trial_balance().balanced}
    document = _with_api(work)
    if as_json:
        _print_json(document)
        return
    table = Table("measure", "value")
    for name in ("opening_cash", "realized", "fees", "unrealized", "equity", "pnl"):
        table.add_row(name, _money(document[name]))
    table.add_row("return", f"{document['return']:+.2%}")
    table.add_row("trial balance", "balanced" if document["trial_balance_balanced"] else "NOT BALANCED")
    out.print(table)


def trace_fill(fill_id: Annotated[str, typer.Argument(help="A fill id (e.g. o-.../1).")],
               as_json: JsonFlag = False) -> None:
    """Walk a fill back: fill -> order -> risk decision (every rule) -> signal (its rationale and inputs)."""
    async def work(api: PlatformAPI) -> Any:
        return await trace(Records(api), fill_id)
    walked = _with_api(work)
    if as_json:
        _print_json({"fill": walked.fill, "order": walked.order, "risk": walked.decision, "signal": walked.signal,
                     "journal": walked.journal})
        return
    f, o, d, s = walked.fill["fill"], walked.order["order"], walked.decision["decision"], walked.signal["signal"]
    out.print(f"[bold]fill[/] {escape(f['id'])}: {f['side']} {f['quantity']} {f['symbol']} @ {_money(f['price'])} "
              f"fee {_money(f['fee'])} on {f['at']}")
    out.print(f"[bold]order[/] {escape(o['client_order_id'])}: {o['side']} {o['quantity']} {o['symbol']} "
              f"{o['type']} (step {walked.order['step']})")
    out.print(f"[bold]risk[/] {escape(d['id'])}: {'approved' if d['approved'] else 'blocked'}")
    for rule in d["rules"]:
        out.print(f"  {'pass' if rule['passed'] else 'BLOCK'} {rule['rule']}: {escape(rule['detail'])}")
    out.print(f"[bold]signal[/] {escape(s['id'])}: {s['strategy']} {s['side']} {s['symbol']} at {s['at']}")
    out.print(f"  {escape(s['rationale'])}")
    if walked.signal.get("analysis"):
        out.print(f"  [italic]analyst:[/] {escape(walked.signal['analysis'])}")
    for entry in walked.journal:
        out.print(f"[bold]journal[/] {entry['entry']}: " + ", ".join(f"{p['account']} {_money(p['amount'])}"
                                                                  for p in entry["postings"]))


def register(app: typer.Typer) -> None:
    app.add_typer(desk_app, name="desk")
    for command, name in ((status, "status"), (positions, "positions"), (fills, "fills"), (orders, "orders"),
                          (pnl, "pnl"), (halt, "halt"), (resume, "resume"), (trace_fill, "trace")):
        app.command(name)(command)
