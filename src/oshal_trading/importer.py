"""Bars from the files people have: CSV or Parquet with the usual column spellings (Date/date/timestamp,
Open/open, AAPL.Open, ...). Adjusted prices (Adj Close and the like) are ignored, with a note: the desk trades
and accounts at the prices that traded. Every row goes through the same checks as the desk's own format
(``bars.BarCollector``), so a bad file is refused with every problem named by file, line and field.

This is the shape behind ``oshal trade data import FILE --symbol ... --timeframe ...``.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from oshal_trading.bars import BarCollector, BarDataError, BarProblem, timeframe_step
from oshal_trading.model import Bar

# Header spellings, compared after lower-casing and dropping spaces, dots, dashes and underscores.
COLUMN_ALIASES: dict[str, frozenset[str]] = {
    "date": frozenset({"date", "timestamp", "time", "datetime", "day", "tradedate"}),
    "open": frozenset({"open", "o"}),
    "high": frozenset({"high", "h"}),
    "low": frozenset({"low", "l"}),
    "close": frozenset({"close", "c"}),
    "volume": frozenset({"volume", "vol", "v"}),
    "symbol": frozenset({"symbol", "ticker", "stock", "name"}),
}
ADJUSTED_COLUMNS = frozenset(
    {"adjclose", "adjustedclose", "adjusted", "adjopen", "adjhigh", "adjlow", "adjvolume", "adjfactor"}
)
REQUIRED = ("date", "open", "high", "low", "close", "volume")

_SLASHED_DATE = re.compile(r"^(\d{4})/(\d{1,2})/(\d{1,2})$")
_COMPACT_DATE = re.compile(r"^(\d{4})(\d{2})(\d{2})$")  # 20150102
_EPOCH_DIGITS = re.compile(r"^\d{9,13}$")
_NAIVE_MIDNIGHT = re.compile(r"^(\d{4}-\d{2}-\d{2})[ T]00:00(:00(\.0+)?)?$")
_EPOCH_MS_FROM = 10**11  # a 12- or 13-digit epoch is in milliseconds (ccxt, most exchange APIs)


@dataclass(frozen=True, slots=True)
class ImportResult:
    source: str
    bars: list[Bar]  # sorted by symbol, then start
    notes: tuple[str, ...]  # what was ignored or skipped, for the operator to read

    def symbols(self) -> tuple[str, ...]:
        return tuple(sorted({bar.symbol for bar in self.bars}))


@dataclass(frozen=True, slots=True)
class _Layout:
    """Which column holds which field, and what the header says about the symbol."""

    positions: dict[str, int]
    prefix_symbol: str | None  # "AAPL" from "AAPL.Open"
    notes: tuple[str, ...]


def read_csv(path: str | Path, symbol: str | None = None, timeframe: str = "1d") -> ImportResult:
    """Bars from a CSV file. ``symbol`` names the file's symbol when it has no symbol column, or picks that
    symbol's rows from a file that holds several."""
    path = Path(path)
    timeframe_step(timeframe)
    text = path.read_text(encoding="utf-8-sig")
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None:
        raise BarDataError([BarProblem(str(path), 0, "file", "is empty: expected a header row and bars")])

    def rows() -> Iterator[tuple[int, Sequence[str]]]:
        for row in reader:
            if row and any(cell.strip() for cell in row):
                yield reader.line_num, row

    return _import(str(path), header, rows(), symbol, timeframe)


def read_parquet(path: str | Path, symbol: str | None = None, timeframe: str = "1d") -> ImportResult:
    """Bars from a Parquet file (needs pyarrow). Problems name the row (1-based) where a CSV would name the line.
    Float prices are read by their shortest exact spelling (170.52, not 170.5200000000000102...)."""
    try:
        import pyarrow.parquet as parquet  # type: ignore[import-not-found,import-untyped,unused-ignore]
    except ImportError:
        raise RuntimeError(
            "reading Parquet needs pyarrow, which is not installed: run `pip install pyarrow` "
            "(or export the file to CSV and use read_csv)"
        ) from None
    path = Path(path)
    timeframe_step(timeframe)
    table = parquet.read_table(path)
    header = [str(name) for name in table.column_names]
    records: list[dict[str, Any]] = table.to_pylist()
    rows = ((number, [_cell_text(record[name]) for name in header]) for number, record in enumerate(records, 1))
    return _import(str(path), header, rows, symbol, timeframe)


def _import(
    source: str,
    header: Sequence[str],
    rows: Iterable[tuple[int, Sequence[str]]],
    symbol: str | None,
    timeframe: str,
) -> ImportResult:
    layout = _layout(source, header)
    notes = list(layout.notes)
    symbol_column = layout.positions.get("symbol")
    fixed_symbol = symbol if symbol is not None else layout.prefix_symbol
    if symbol_column is None and fixed_symbol is None:
        raise BarDataError(
            [BarProblem(source, 1, "symbol", "the file has no symbol column: say which symbol it holds (--symbol)")]
        )
    if symbol is not None and layout.prefix_symbol not in (None, symbol):
        notes.append(f"the columns are named for {layout.prefix_symbol}; the bars are imported as {symbol}")
    collector = BarCollector(source, timeframe)
    skipped: dict[str, int] = {}
    for line, row in rows:
        if len(row) != len(header):
            collector.problem(line, "row", f"has {len(row)} fields, the header has {len(header)}")
            continue
        fields = {name: row[index] for name, index in layout.positions.items()}
        if symbol_column is not None:
            row_symbol = fields["symbol"].strip()
            if symbol is not None and row_symbol != symbol:
                skipped[row_symbol] = skipped.get(row_symbol, 0) + 1
                continue
        else:
            fields["symbol"] = fixed_symbol or ""
        fields["date"] = _normalize_time(fields["date"], timeframe)
        collector.add(line, fields)
    if skipped:
        others = ", ".join(f"{name or '(empty)'} ({count})" for name, count in sorted(skipped.items()))
        notes.append(f"kept the rows of {symbol}; skipped the rows of {others}")
    bars = collector.finish()
    if not bars:
        wanted = f" for {symbol}" if symbol is not None else ""
        raise BarDataError([BarProblem(source, 0, "file", f"holds no bars{wanted}")])
    return ImportResult(source=source, bars=bars, notes=tuple(notes))


def _layout(source: str, header: Sequence[str]) -> _Layout:
    positions: dict[str, int] = {}
    prefixes: set[str] = set()
    adjusted: list[str] = []
    unknown: list[str] = []
    problems: list[BarProblem] = []
    for index, raw in enumerate(header):
        name = raw.strip()
        prefix, _, suffix = name.rpartition(".")
        field = _field_of(name)
        if field is None and prefix and _field_of(suffix) is not None:
            field = _field_of(suffix)
            prefixes.add(prefix)
        if field is None:
            key = _squash(suffix if prefix and _squash(suffix) in ADJUSTED_COLUMNS else name)
            (adjusted if key in ADJUSTED_COLUMNS else unknown).append(name)
        elif field in positions:
            problems.append(
                BarProblem(source, 1, field, f"columns {header[positions[field]]!r} and {name!r} both hold it")
            )
        else:
            positions[field] = index
    for field in REQUIRED:
        if field not in positions:
            spellings = ", ".join(sorted(COLUMN_ALIASES[field]))
            problems.append(BarProblem(source, 1, field, f"no column for it (looked for {spellings}, any case)"))
    if len(prefixes) > 1:
        problems.append(BarProblem(source, 1, "header", f"columns are named for several symbols: {sorted(prefixes)}"))
    if problems:
        raise BarDataError(problems)
    notes = []
    if adjusted:
        notes.append(f"ignored adjusted-price columns {adjusted}: the desk uses the prices as traded")
    if unknown:
        notes.append(f"ignored columns {[name or '(unnamed)' for name in unknown]}")
    return _Layout(positions, next(iter(prefixes), None), tuple(notes))


def _squash(name: str) -> str:
    return re.sub(r"[\s._\-]", "", name.lower())


def _field_of(name: str) -> str | None:
    key = _squash(name)
    return next((field for field, spellings in COLUMN_ALIASES.items() if key in spellings), None)


def _normalize_time(text: str, timeframe: str) -> str:
    """Common spellings of a bar's time into what ``bars.parse_start`` reads; anything else passes through to be
    refused there with its reason."""
    text = text.strip()
    if spelled := _SLASHED_DATE.match(text) or _COMPACT_DATE.match(text):
        year, month, day = (int(part) for part in spelled.groups())
        return f"{year:04d}-{month:02d}-{day:02d}"
    if _EPOCH_DIGITS.match(text):
        number = int(text)
        millis = number if number >= _EPOCH_MS_FROM else number * 1000
        moment = datetime.fromtimestamp(millis // 1000, tz=UTC) + timedelta(milliseconds=millis % 1000)
        return moment.isoformat().replace("+00:00", "Z")
    if (midnight := _NAIVE_MIDNIGHT.match(text)) and timeframe == "1d":
        return midnight.group(1)  # a daily file written with times (pandas does this): the date is what it means
    return text


def _cell_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, datetime):
        return value.isoformat() if value.tzinfo is None else value.astimezone(UTC).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return str(value)  # str, int, Decimal; anything else is refused by the field's own check
