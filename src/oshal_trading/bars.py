"""Bars in the desk's one CSV format, validated: ``symbol,date,open,high,low,close,volume``.

Prices in the file are decimal strings; in a ``Bar`` they are integer cents. A price with more than two decimals
(a source quoting 527.9899, or a float artefact like 171.46099999999998) is rounded to the cent half-even; a price
with two decimals or fewer converts exactly. ``date`` is ``YYYY-MM-DD`` for daily bars (the bar starts at 00:00 UTC
of that date) or an ISO 8601 time with its UTC offset for intraday bars.

Every problem in a file is collected and reported together, each naming the file, the line and the field.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import TypeVar

from oshal_trading.model import Bar

CSV_COLUMNS = ("symbol", "date", "open", "high", "low", "close", "volume")
PRICE_FIELDS = ("open", "high", "low", "close")
MAX_PROBLEMS_SHOWN = 20
MAX_STORED = 2**63 - 1  # prices (in cents) and volumes are stored as 64-bit integers

_T = TypeVar("_T")
_CENT = Decimal("0.01")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_TIMEFRAME = re.compile(r"^([1-9][0-9]*)([mhd])$")
_TIMEFRAME_UNITS = {"m": timedelta(minutes=1), "h": timedelta(hours=1), "d": timedelta(days=1)}
_SYMBOL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:-]{0,31}$")
_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True, slots=True)
class BarProblem:
    source: str
    line: int  # 1-based line of the file (the header is line 1); 0 for the file as a whole
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}" if self.line else self.source
        return f"{where}: {self.field}: {self.message}"


class BarDataError(ValueError):
    """Bars that cannot be used as they are; ``problems`` lists every one found."""

    def __init__(self, problems: Iterable[BarProblem]) -> None:
        self.problems = tuple(problems)
        shown = [str(p) for p in self.problems[:MAX_PROBLEMS_SHOWN]]
        hidden = len(self.problems) - len(shown)
        if hidden > 0:
            shown.append(f"... and {hidden} more")
        count = len(self.problems)
        super().__init__(f"{count} problem{'s' if count != 1 else ''} in the bars:\n" + "\n".join(shown))


def timeframe_step(timeframe: str) -> timedelta:
    """The length of one bar: "1m", "5m", "1h", "4h", "1d" (whole days above one are not supported)."""
    match = _TIMEFRAME.match(timeframe)
    if match is None or (match.group(2) == "d" and match.group(1) != "1"):
        raise ValueError(
            f"timeframe {timeframe!r} is not understood: use minutes, hours or one day, e.g. '1m', '15m', '1h', '1d'"
        )
    return int(match.group(1)) * _TIMEFRAME_UNITS[match.group(2)]


def to_cents(price: str | Decimal) -> int:
    """A decimal price as integer cents; more than two decimals round half-even. Raises ValueError if not a
    finite positive number."""
    try:
        value = Decimal(price.strip()) if isinstance(price, str) else price
    except InvalidOperation:
        raise ValueError(f"{price!r} is not a decimal number (write it like 123.45)") from None
    if not value.is_finite():
        raise ValueError(f"{price!r} is not a finite number")
    if value <= 0:
        raise ValueError(f"{price!r} is not a positive price")
    try:
        cents = int((value / _CENT).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))
    except InvalidOperation:
        cents = MAX_STORED + 1  # more digits than a Decimal context holds: far beyond any price
    if cents > MAX_STORED:
        raise ValueError(f"{price!r} is too large a price")
    if cents == 0:
        raise ValueError(f"{price!r} rounds to zero cents")
    return cents


def cents_to_str(cents: int) -> str:
    """Integer cents as the file's decimal string with exactly two decimals: 12345 -> "123.45"."""
    sign = "-" if cents < 0 else ""
    whole, part = divmod(abs(cents), 100)
    return f"{sign}{whole}.{part:02d}"


def parse_volume(text: str) -> int:
    """A whole, non-negative number of shares; "25643711.0" is accepted as 25643711."""
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise ValueError(f"{text!r} is not a number") from None
    if not value.is_finite() or value != value.to_integral_value():
        raise ValueError(f"{text!r} is not a whole number of shares")
    if value < 0:
        raise ValueError(f"{text!r} is negative")
    if value > MAX_STORED:
        raise ValueError(f"{text!r} is too large a volume")
    return int(value)


def parse_start(text: str, timeframe: str) -> datetime:
    """The bar's start as an aware UTC datetime, checked to fall on a boundary of the timeframe."""
    text = text.strip()
    step = timeframe_step(timeframe)
    if _DATE_ONLY.match(text):
        if step < timedelta(days=1):
            raise ValueError(f"{text!r} is a date, but {timeframe} bars need a time with its UTC offset")
        try:
            day = date.fromisoformat(text)
        except ValueError:
            raise ValueError(f"{text!r} is not a calendar date") from None
        return datetime(day.year, day.month, day.day, tzinfo=UTC)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a date (YYYY-MM-DD) or ISO 8601 time (2024-01-02T14:30:00Z)") from None
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} has no UTC offset: write it like 2024-01-02T14:30:00Z")
    moment = moment.astimezone(UTC)
    if (moment - _EPOCH) % step:
        raise ValueError(f"{text!r} does not start a {timeframe} bar (in UTC)")
    return moment


def format_start(start: datetime, timeframe: str) -> str:
    if timeframe_step(timeframe) >= timedelta(days=1):
        return start.date().isoformat()
    return start.astimezone(UTC).isoformat().replace("+00:00", "Z")


class BarCollector:
    """Builds bars row by row, keeping every problem; ``finish`` returns them sorted or raises them all."""

    def __init__(self, source: str, timeframe: str) -> None:
        timeframe_step(timeframe)
        self.source = source
        self.timeframe = timeframe
        self.problems: list[BarProblem] = []
        self._first_line: dict[tuple[str, datetime], int] = {}
        self._bars: list[Bar] = []

    def problem(self, line: int, field: str, message: str) -> None:
        self.problems.append(BarProblem(self.source, line, field, message))

    def add(self, line: int, fields: Mapping[str, str]) -> Bar | None:
        """One row from ``fields`` (the canonical column names to their text); None if the row has problems."""
        before = len(self.problems)
        values: dict[str, int] = {}
        symbol = (fields.get("symbol") or "").strip()
        if not symbol:
            self.problem(line, "symbol", "is empty")
        elif not _SYMBOL.match(symbol):
            self.problem(line, "symbol", f"{symbol!r} is not a symbol (letters, digits and . _ / : -, up to 32)")
        start = self._field(line, "date", fields, lambda text: parse_start(text, self.timeframe))
        for name in PRICE_FIELDS:
            cents = self._field(line, name, fields, to_cents)
            if cents is not None:
                values[name] = cents
        volume = self._field(line, "volume", fields, parse_volume)
        if len(values) == len(PRICE_FIELDS):
            self._check_range(line, values)
        if len(self.problems) > before or start is None or volume is None:
            return None
        key = (symbol, start)
        if key in self._first_line:
            self.problem(line, "date", f"{symbol} {fields['date'].strip()} repeats line {self._first_line[key]}")
            return None
        self._first_line[key] = line
        bar = Bar(symbol, self.timeframe, start, values["open"], values["high"], values["low"], values["close"], volume)
        self._bars.append(bar)
        return bar

    def finish(self) -> list[Bar]:
        if self.problems:
            raise BarDataError(self.problems)
        return sorted(self._bars, key=lambda bar: (bar.symbol, bar.start))

    def _field(self, line: int, name: str, fields: Mapping[str, str], parse: Callable[[str], _T]) -> _T | None:
        text = fields.get(name)
        if text is None or not text.strip():
            self.problem(line, name, "is empty")
            return None
        try:
            return parse(text)
        except ValueError as exc:
            self.problem(line, name, str(exc))
            return None

    def _check_range(self, line: int, cents: Mapping[str, int]) -> None:
        open_, high, low, close = (cents[name] for name in PRICE_FIELDS)
        if high < max(open_, close, low):
            self.problem(line, "high", f"{cents_to_str(high)} is below the bar's open, close or low")
        if low > min(open_, close, high):
            self.problem(line, "low", f"{cents_to_str(low)} is above the bar's open, close or high")


def read_bars(text: str, *, source: str, timeframe: str = "1d") -> list[Bar]:
    """Bars from CSV text in the desk's format (the header must be exactly ``CSV_COLUMNS``)."""
    collector = BarCollector(source, timeframe)
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None or tuple(cell.strip() for cell in header) != CSV_COLUMNS:
        collector.problem(1, "header", f"expected {','.join(CSV_COLUMNS)}, found {','.join(header or []) or 'nothing'}")
        raise BarDataError(collector.problems)
    for row in reader:
        line = reader.line_num
        if not row or all(not cell.strip() for cell in row):
            continue
        if len(row) != len(CSV_COLUMNS):
            collector.problem(line, "row", f"has {len(row)} fields, expected {len(CSV_COLUMNS)}")
            continue
        collector.add(line, dict(zip(CSV_COLUMNS, row, strict=True)))
    return collector.finish()


def read_bars_file(path: str | Path, *, timeframe: str = "1d") -> list[Bar]:
    path = Path(path)
    return read_bars(path.read_text(encoding="utf-8"), source=str(path), timeframe=timeframe)


def write_bars(bars: Iterable[Bar]) -> str:
    """CSV text in the desk's format, sorted by symbol then start; ``read_bars`` gives the same bars back."""
    ordered = sorted(bars, key=lambda bar: (bar.symbol, bar.start))
    timeframes = {bar.timeframe for bar in ordered}
    if len(timeframes) > 1:
        raise ValueError(f"one file holds one timeframe; these bars have {sorted(timeframes)}")
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for bar in ordered:
        prices = (cents_to_str(getattr(bar, name)) for name in PRICE_FIELDS)
        writer.writerow((bar.symbol, format_start(bar.start, bar.timeframe), *prices, bar.volume))
    return out.getvalue()


def _data_dir() -> Traversable:
    return resources.files("oshal_trading").joinpath("data")


def bundled_symbols() -> tuple[str, ...]:
    """The symbols of the daily bars shipped with the desk (``data/<SYMBOL>.csv``)."""
    names = (entry.name for entry in _data_dir().iterdir())
    return tuple(sorted(name.removesuffix(".csv") for name in names if name.endswith(".csv")))


def load_bundled(symbols: Iterable[str] | None = None) -> dict[str, list[Bar]]:
    """The shipped daily bars, by symbol (all of them unless ``symbols`` names some). See data/SOURCES.md."""
    available = bundled_symbols()
    wanted = available if symbols is None else tuple(dict.fromkeys(symbols))
    unknown = [symbol for symbol in wanted if symbol not in available]
    if unknown:
        raise ValueError(f"no bundled bars for {', '.join(unknown)}; the bundled symbols are {', '.join(available)}")
    loaded: dict[str, list[Bar]] = {}
    for symbol in wanted:
        resource = _data_dir().joinpath(f"{symbol}.csv")
        bars = read_bars(resource.read_text(encoding="utf-8"), source=f"oshal_trading/data/{symbol}.csv")
        strangers = sorted({bar.symbol for bar in bars} - {symbol})
        if strangers:
            raise BarDataError([BarProblem(f"oshal_trading/data/{symbol}.csv", 0, "symbol", f"holds {strangers}")])
        loaded[symbol] = bars
    return loaded
