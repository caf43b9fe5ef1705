"""``oshal trade data ...``: the desk's bars on the platform: import a file, fetch from Alpaca or a crypto exchange,
list what is stored. Every command talks to the platform's REST API (OSHAL_API_URL, OSHAL_API_KEY or the admin key
`oshal up` wrote)."""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from oshal_trading import alpaca, crypto
from oshal_trading.bars import BarDataError, timeframe_step
from oshal_trading.importer import read_csv, read_parquet
from oshal_trading.market_data import MarketDataError, Uploaded, upload
from oshal_trading.model import Bar
from oshal_trading.platform_client import PlatformClient, PlatformError

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="Market data on the platform: import files, fetch from Alpaca or ccxt, list the series.")
out = Console()
err = Console(stderr=True)
PARQUET_SUFFIXES = (".parquet", ".pq")


def _fail(message: str, hint: str = "", code: int = 2) -> typer.Exit:
    err.print(f"[bold red]error:[/] {escape(message)}")
    if hint:
        err.print(f"[dim]hint:[/] {escape(hint)}")
    return typer.Exit(code)


@contextmanager
def _platform() -> Iterator[PlatformClient]:
    try:
        with PlatformClient.from_environment() as client:
            yield client
    except PlatformError as e:
        raise _fail(str(e), e.hint) from e
    except MarketDataError as e:
        raise _fail(str(e)) from e


def _timeframe(value: str) -> str:
    try:
        timeframe_step(value)
    except ValueError as e:
        raise _fail(str(e)) from e
    return value


def _day(value: str, what: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError as e:
        raise _fail(f"--{what} {value!r} is not a date", "write it as YYYY-MM-DD") from e


def _upload(client: PlatformClient, bars: Sequence[Bar], source: str) -> list[Uploaded]:
    with Progress(TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=err, transient=False) as progress:
        task = progress.add_task("uploading bars", total=len(bars))
        return upload(client, bars, source=source, on_chunk=lambda n: progress.advance(task, n))


def _report(results: Sequence[Uploaded]) -> None:
    table = Table("symbol", "timeframe", "bars", "inserted", "updated", "unchanged")
    for r in results:
        table.add_row(r.symbol, r.timeframe, str(r.received), str(r.inserted), str(r.updated), str(r.unchanged))
    out.print(table)


@app.command("import")
def import_file(
    file: Annotated[Path, typer.Argument(help="CSV or Parquet bars (Date/Open/High/Low/Close/Volume, any usual "
                                              "spelling).", exists=True, dir_okay=False, readable=True)],
    symbol: Annotated[str | None, typer.Option(help="The file's symbol (needed when it has no symbol column; picks "
                                                    "one symbol's rows from a file of several).")] = None,
    timeframe: Annotated[str, typer.Option(help="The bars' timeframe: 1m, 15m, 1h, 1d.")] = "1d",
) -> None:
    """Store a file's bars on the platform, in chunks; importing the same file again changes nothing."""
    timeframe = _timeframe(timeframe)
    reader = read_parquet if file.suffix.lower() in PARQUET_SUFFIXES else read_csv
    try:
        imported = reader(file, symbol=symbol, timeframe=timeframe)
    except BarDataError as e:
        raise _fail(str(e), "fix the named lines, or pick one symbol's rows with --symbol") from e
    except RuntimeError as e:  # Parquet without pyarrow
        raise _fail(str(e)) from e
    for note in imported.notes:
        err.print(f"[dim]note:[/] {escape(note)}")
    with _platform() as client:
        _report(_upload(client, imported.bars, f"file:{file.name}"))


@app.command("fetch")
def fetch(
    source: Annotated[str, typer.Option(help="alpaca (through the platform's alpaca-market-data connector), or "
                                             "ccxt:EXCHANGE for a crypto exchange's public candles (e.g. "
                                             "ccxt:binance).")],
    symbol: Annotated[str, typer.Option(help="AAPL for Alpaca; a ccxt symbol like BTC/USDT for an exchange.")],
    start: Annotated[str, typer.Option("--from", help="First day (YYYY-MM-DD, UTC).")],
    end: Annotated[str | None, typer.Option("--to", help="Last day, inclusive (default: today, UTC).")] = None,
    timeframe: Annotated[str, typer.Option(help="1m, 15m, 1h, 1d.")] = "1d",
    connector: Annotated[str, typer.Option(help="Alpaca: the connector to call.")] = alpaca.CONNECTOR,
    bot: Annotated[str, typer.Option(help="Alpaca: the bot whose tickets make the calls.")] = alpaca.BOT,
    feed: Annotated[str | None, typer.Option(help="Alpaca: iex, sip or otc (default: your plan's).")] = None,
    api_root: Annotated[str | None, typer.Option(help="ccxt: the exchange's API at another origin (a proxy or "
                                                      "mirror), paths kept.")] = None,
) -> None:
    """Fetch bars and store them on the platform. Alpaca's go through a ticket per page to the market-data bot,
    which calls the connector with the tenant's stored keys; an exchange's public candles need no key."""
    timeframe = _timeframe(timeframe)
    first_day = _day(start, "from")
    last_day = _day(end, "to") if end else dt.datetime.now(dt.UTC).date()
    kind, _, exchange_id = source.partition(":")
    if not (source == "alpaca" or (kind == "ccxt" and exchange_id)):
        raise _fail(f"--source {source!r} is not a source", "use alpaca, or ccxt:EXCHANGE such as ccxt:binance")
    with _platform() as client:
        with Progress(TextColumn("[progress.description]{task.description}"), MofNCompleteColumn(),
                      TimeElapsedColumn(), console=err) as progress:
            task = progress.add_task(f"fetching {symbol} {timeframe} from {source}", total=None)
            try:
                if kind == "alpaca":
                    bars = alpaca.fetch(client, symbol, timeframe, first_day, last_day, connector=connector,
                                        bot=bot, feed=feed, on_page=lambda n: progress.advance(task, n))
                else:
                    bars = crypto.fetch(exchange_id, symbol, timeframe, first_day, last_day, api_root=api_root,
                                        on_page=lambda n: progress.advance(task, n))
            except (BarDataError, ValueError) as e:
                raise MarketDataError(str(e)) from e
        if not bars:
            raise _fail(f"{source} has no {timeframe} bars of {symbol} from {first_day} to {last_day}")
        _report(_upload(client, bars, "alpaca" if kind == "alpaca" else source))


@app.command("list")
def list_series(
    symbol: Annotated[str | None, typer.Option(help="Only this symbol's series.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the series as JSON.")] = False,
) -> None:
    """The series stored on the platform: each symbol and timeframe with its bar count and first and last bar."""
    with _platform() as client:
        series = client.series(symbol)
    if as_json:
        sys.stdout.write(json.dumps(series, indent=2) + "\n")
        return
    if not series:
        out.print("no bars on the platform yet: `oshal trade data import FILE --symbol SYMBOL`")
        return
    table = Table("symbol", "timeframe", "bars", "first", "last")
    for s in series:
        table.add_row(s["symbol"], s["timeframe"], str(s["bars"]), s["first"], s["last"])
    out.print(table)
