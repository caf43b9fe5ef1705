"""``oshal trade ...``: the trading desk's commands (added to ``oshal`` by its entry point)."""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from oshal_trading import desk_cli, strategies
from oshal_trading.backtest import BacktestConfig, BacktestError, run
from oshal_trading.bars import BarDataError, bundled_symbols, load_bundled
from oshal_trading.chart import equity_png
from oshal_trading.data_cli import app as data_app
from oshal_trading.market_data import MarketDataError, load_platform
from oshal_trading.model import Bar
from oshal_trading.platform_client import PlatformClient, PlatformError
from oshal_trading.strategies import StrategyError

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="The trading desk: signal → risk → execute → ledger → recap (paper by default).")
out = Console()
err = Console(stderr=True)
app.add_typer(data_app, name="data")
SOURCES = ("bundled", "platform")


def _fail(message: str, hint: str = "", code: int = 2) -> typer.Exit:
    err.print(f"[bold red]error:[/] {escape(message)}")
    if hint:
        err.print(f"[dim]hint:[/] {escape(hint)}")
    return typer.Exit(code)


def _day(value: str | None, what: str) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError as e:
        raise _fail(f"--{what} {value!r} is not a date", "write it as YYYY-MM-DD") from e


def _params(pairs: list[str]) -> dict[str, object]:
    params: dict[str, object] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        if not sep:
            raise _fail(f"--param {pair!r} is not NAME=VALUE", "e.g. --param fast=10")
        try:
            params[name] = json.loads(raw)
        except ValueError:
            params[name] = raw
    return params


@app.command()
def backtest(
    strategy: Annotated[str, typer.Argument(help=f"One of: {', '.join(sorted(strategies.STRATEGIES))}.")],
    symbols: Annotated[str, typer.Option(help="Comma-separated symbols of the bundled data (or imported ones).")],
    start: Annotated[str | None, typer.Option("--from", help="First day (YYYY-MM-DD); default: the data's.")] = None,
    end: Annotated[str | None, typer.Option("--to", help="Last day (YYYY-MM-DD); default: the data's.")] = None,
    param: Annotated[list[str] | None, typer.Option(help="Strategy parameter NAME=VALUE (repeatable).")] = None,
    chart: Annotated[Path, typer.Option(help="Where to write the equity chart (PNG).")] = Path("equity.png"),
    as_json: Annotated[bool, typer.Option("--json", help="Print the metrics as JSON.")] = False,
    source: Annotated[str, typer.Option(help="bundled: the daily bars shipped with the desk (offline); "
                                             "platform: the daily bars stored on the platform (`oshal trade "
                                             "data`).")] = "bundled",
) -> None:
    """Run a strategy over history with the desk's own signal → risk → paper fill → ledger code, in process;
    print return, CAGR, Sharpe, Sortino, max drawdown, exposure, trades and win rate, and write the equity chart."""
    wanted = [s.strip().upper() for s in symbols.split(",") if s.strip()]
    first_day, last_day = _day(start, "from"), _day(end, "to")
    if source not in SOURCES:
        raise _fail(f"--source {source!r} is not a source", f"use one of {', '.join(SOURCES)}")
    bars = _platform_bars(wanted, first_day, last_day) if source == "platform" else _bundled_bars(wanted)
    try:
        result = run(BacktestConfig(strategy, params=_params(param or [])), bars, start=first_day, end=last_day)
    except (BacktestError, StrategyError, BarDataError) as e:
        raise _fail(str(e)) from e
    m = result.metrics
    png = equity_png(chart, result.days, result.equity,
                     title=f"{strategy} on {', '.join(result.symbols)} ({result.days[0]} to {result.days[-1]})")
    document = {"strategy": strategy, "symbols": list(result.symbols), "from": str(result.days[0]),
                "to": str(result.days[-1]), "bars": result.bars, "start_equity": m.start_equity,
                "end_equity": m.end_equity, "total_return": m.total_return, "cagr": m.cagr, "sharpe": m.sharpe,
                "sortino": m.sortino, "max_drawdown": m.max_drawdown, "exposure": m.exposure, "trades": m.trades,
                "win_rate": m.win_rate, "fills": len(result.fills), "chart": str(png)}
    if as_json:
        sys.stdout.write(json.dumps(document, indent=2) + "\n")
        return
    out.print(f"[bold]{escape(strategy)}[/] on {', '.join(result.symbols)}, {result.days[0]} to {result.days[-1]} "
              f"({result.bars} bars, {len(result.fills)} fills)")
    table = Table("metric", "value")

    def pct(value: float | None) -> str:
        return "—" if value is None else f"{value:.2%}"

    def ratio(value: float | None) -> str:
        return "—" if value is None else f"{value:.2f}"

    for name, value in (("start equity", f"${m.start_equity / 100:,.2f}"),
                        ("end equity", f"${m.end_equity / 100:,.2f}"), ("return", pct(m.total_return)),
                        ("CAGR", pct(m.cagr)), ("Sharpe", ratio(m.sharpe)),
                        ("Sortino", ratio(m.sortino)), ("max drawdown", pct(m.max_drawdown)),
                        ("exposure", pct(m.exposure)), ("trades", str(m.trades)), ("win rate", pct(m.win_rate))):
        table.add_row(name, value)
    out.print(table)
    out.print(f"equity chart: {png}")


def _bundled_bars(wanted: list[str]) -> dict[str, list[Bar]]:
    known = bundled_symbols()
    unknown = sorted(set(wanted) - set(known))
    if not wanted or unknown:
        raise _fail(f"no bundled data for {', '.join(unknown) or 'no symbol given'}",
                    f"the bundled symbols are {', '.join(known)}; --source platform uses the platform's bars")
    try:
        return load_bundled(wanted)
    except BarDataError as e:
        raise _fail(str(e)) from e


def _platform_bars(wanted: list[str], first_day: dt.date | None, last_day: dt.date | None) -> dict[str, list[Bar]]:
    if not wanted:
        raise _fail("no symbol given", "e.g. --symbols AAPL,TSLA")
    try:
        with PlatformClient.from_environment() as client:
            return load_platform(client, wanted, "1d", first_day=first_day, last_day=last_day)
    except PlatformError as e:
        raise _fail(str(e), e.hint) from e
    except MarketDataError as e:
        raise _fail(str(e)) from e


desk_cli.register(app)
