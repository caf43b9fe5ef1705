"""Deterministic strategies: bars in, ``Signal``s out.

Each strategy walks a symbol's bars oldest first and decides at bar ``i`` from bars ``0..i`` only, so a signal
can never depend on a bar after the one it is dated at (truncating the series never changes an earlier signal).
A strategy signals when its condition *starts* to hold (a cross, a z-score leaving the band, a rate of change
passing its threshold), not on every bar it keeps holding, so a steady trend is one signal rather than one per bar.

Decisions are taken in exact integer/rational arithmetic on cents: two runs on the same bars give the same
signals, and a value exactly at a threshold is never tipped across it by a rounding error. Floats appear only in
the ratios a signal reports (strength, z-score, rate of change).

Every signal records in ``inputs`` the bar range it used (``bars``: first and last bar start, how many), the
parameters, and the values it compared; its ``rationale`` says the same in a sentence.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from fractions import Fraction
from typing import Any

from oshal_trading.model import Bar, Side, Signal

Params = Mapping[str, Any]
Values = dict[str, int | Fraction]


class StrategyError(ValueError):
    """A strategy asked for by an unknown name, given parameters it cannot use, or bars it cannot read."""


@dataclass(frozen=True, slots=True)
class ParamSpec:
    name: str
    kind: type[int] | type[Fraction]
    default: int | Fraction
    help: str
    minimum: int | Fraction | None = None  # inclusive


@dataclass(frozen=True, slots=True)
class Strategy:
    """A named strategy: its parameters and the function that runs it over one symbol's bars."""

    name: str
    summary: str
    params: tuple[ParamSpec, ...]
    check: Callable[[Values], None]  # cross-parameter rules, raises StrategyError
    run: Callable[[str, Sequence[Bar], Values], list[Signal]]

    def resolve(self, given: Params | None) -> Values:
        """The full parameter set: defaults overlaid with ``given``, each validated."""
        given = dict(given or {})
        known = {p.name for p in self.params}
        unknown = sorted(set(given) - known)
        if unknown:
            raise StrategyError(
                f"{self.name}: unknown parameter(s) {', '.join(unknown)}; it takes {', '.join(sorted(known))}"
            )
        values: Values = {}
        for spec in self.params:
            values[spec.name] = _coerce(self.name, spec, given[spec.name]) if spec.name in given else spec.default
        self.check(values)
        return values


# --- parameters -----------------------------------------------------------------------------------------------


def _coerce(strategy: str, spec: ParamSpec, raw: object) -> int | Fraction:
    where = f"{strategy}: parameter {spec.name} ({spec.help})"
    value: int | Fraction
    if spec.kind is int:
        if isinstance(raw, bool) or not isinstance(raw, int | str):
            raise StrategyError(f"{where} must be a whole number, got {raw!r}")
        try:
            value = int(raw)
        except ValueError:
            raise StrategyError(f"{where} must be a whole number, got {raw!r}") from None
    else:
        if isinstance(raw, bool) or not isinstance(raw, int | float | str | Decimal | Fraction):
            raise StrategyError(f"{where} must be a number, got {raw!r}")
        try:
            # A float goes through its shortest repr, so 0.05 means 1/20 and not the binary value nearest it.
            value = Fraction(repr(raw) if isinstance(raw, float) else raw)
        except (ValueError, ZeroDivisionError, OverflowError):
            raise StrategyError(f"{where} must be a finite number, got {raw!r}") from None
    if spec.minimum is not None and value < spec.minimum:
        raise StrategyError(f"{where} must be at least {_show(spec.minimum)}, got {_show(value)}")
    return value


def _show(value: int | Fraction) -> str:
    if isinstance(value, int) or value.denominator == 1:
        return str(int(value))
    return str(Decimal(value.numerator) / Decimal(value.denominator)).rstrip("0")


def _params_json(values: Values) -> dict[str, int | str]:
    return {k: v if isinstance(v, int) else _show(v) for k, v in sorted(values.items())}


# --- bars -----------------------------------------------------------------------------------------------------

_TIMEFRAME = re.compile(r"^([1-9][0-9]*)([mhd])$")
_UNIT = {"m": timedelta(minutes=1), "h": timedelta(hours=1), "d": timedelta(days=1)}


def _bar_length(timeframe: str) -> timedelta:
    match = _TIMEFRAME.match(timeframe)
    if match is None:
        raise StrategyError(f"timeframe {timeframe!r} is not understood: use e.g. '1m', '15m', '1h', '1d'")
    return int(match.group(1)) * _UNIT[match.group(2)]


def _by_symbol(bars: Iterable[Bar]) -> dict[str, list[Bar]]:
    series: dict[str, list[Bar]] = {}
    for bar in bars:
        series.setdefault(bar.symbol, []).append(bar)
    for symbol, rows in series.items():
        timeframes = {b.timeframe for b in rows}
        if len(timeframes) > 1:
            raise StrategyError(f"{symbol}: bars mix timeframes {sorted(timeframes)}; pass one timeframe at a time")
        _bar_length(rows[0].timeframe)
        for bar in rows:
            if bar.start.tzinfo is None or bar.start.utcoffset() != timedelta(0):
                raise StrategyError(f"{symbol}: bar at {bar.start} has no UTC time zone; bar starts must be aware UTC")
            if bar.close <= 0:
                raise StrategyError(
                    f"{symbol}: bar at {bar.start.isoformat()} has close {bar.close}; prices must be > 0"
                )
        for before, after in itertools.pairwise(rows):
            if after.start <= before.start:
                raise StrategyError(
                    f"{symbol}: bars are not in strictly increasing time order at {after.start.isoformat()}; "
                    "sort them and drop duplicates"
                )
    return series


def _cents(value: Fraction) -> str:
    """A price in cents, exact to a hundredth of a cent, as a decimal string (never a float)."""
    scaled = Decimal(value.numerator) / Decimal(value.denominator)
    return str(scaled.quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN))


def _ratio(value: float) -> float:
    return round(value, 6)


# --- signals --------------------------------------------------------------------------------------------------


def signal_id(strategy: str, symbol: str, timeframe: str, bar_start: datetime, params: Values) -> str:
    """Deterministic: the same strategy and parameters on the same bar always give the same id."""
    key = json.dumps(
        [strategy, symbol, timeframe, bar_start.isoformat(), _params_json(params)], separators=(",", ":")
    )
    return "sig_" + hashlib.sha256(key.encode()).hexdigest()[:24]


def _signal(
    strategy: str,
    params: Values,
    window: Sequence[Bar],
    side: Side,
    strength: float,
    horizon: int,
    rationale: str,
    values: dict[str, Any],
) -> Signal:
    last = window[-1]
    return Signal(
        id=signal_id(strategy, last.symbol, last.timeframe, last.start, params),
        strategy=strategy,
        symbol=last.symbol,
        side=side,
        strength=min(1.0, max(0.0, strength)),
        horizon_bars=horizon,
        at=last.start + _bar_length(last.timeframe),
        rationale=rationale,
        inputs={
            "bars": {
                "timeframe": last.timeframe,
                "from": window[0].start.isoformat(),
                "to": last.start.isoformat(),
                "count": len(window),
            },
            "params": _params_json(params),
            **values,
        },
    )


def _sma(bars: Sequence[Bar], end: int, n: int) -> Fraction:
    """The mean close of the n bars ending at index ``end`` (inclusive)."""
    return Fraction(sum(b.close for b in bars[end - n + 1 : end + 1]), n)


def _sign(x: Fraction) -> int:
    return (x > 0) - (x < 0)


# --- sma-cross ------------------------------------------------------------------------------------------------

SMA_FULL_STRENGTH_SPREAD = Fraction(2, 100)  # fast SMA 2% away from slow: full strength


def _sma_cross_check(p: Values) -> None:
    if p["fast"] >= p["slow"]:
        raise StrategyError(f"sma-cross: fast ({p['fast']}) must be shorter than slow ({p['slow']})")


def _sma_cross(symbol: str, bars: Sequence[Bar], p: Values) -> list[Signal]:
    fast, slow = int(p["fast"]), int(p["slow"])
    out: list[Signal] = []
    last_sign, last_sign_at = 0, -1  # the side the fast SMA was last seen on (0: never apart yet), and where
    for i in range(slow - 1, len(bars)):
        f, s = _sma(bars, i, fast), _sma(bars, i, slow)
        sign = _sign(f - s)
        if sign == 0:
            continue
        if last_sign and sign != last_sign:
            side = Side.BUY if sign > 0 else Side.SELL
            window = bars[last_sign_at - slow + 1 : i + 1]
            spread = (f - s) / s
            word = "above" if sign > 0 else "below"
            out.append(
                _signal(
                    "sma-cross", p, window, side, float(abs(spread) / SMA_FULL_STRENGTH_SPREAD), slow,
                    f"{symbol}: the {fast}-bar SMA ({_cents(f)}c) crossed {word} the {slow}-bar SMA ({_cents(s)}c) "
                    f"on the bar of {bars[i].start.date().isoformat()}.",
                    {
                        "fast_sma_cents": _cents(f),
                        "slow_sma_cents": _cents(s),
                        "previous_fast_sma_cents": _cents(_sma(bars, last_sign_at, fast)),
                        "previous_slow_sma_cents": _cents(_sma(bars, last_sign_at, slow)),
                        "previous_bar": bars[last_sign_at].start.isoformat(),
                        "spread": _ratio(float(spread)),
                    },
                )
            )
        last_sign, last_sign_at = sign, i
    return out


# --- mean-reversion -------------------------------------------------------------------------------------------


def _mean_reversion_check(p: Values) -> None:
    if p["k"] <= 0:
        raise StrategyError(f"mean-reversion: k must be greater than 0, got {_show(p['k'])}")


def _band_side(bars: Sequence[Bar], i: int, n: int, k: Fraction) -> tuple[int, int, int]:
    """Where bar i's close sits against the band (mean ± k standard deviations of the n closes ending at i):
    -1 below it, +1 above it, 0 inside.

    Exact: with d = n·close - Σ and V = n·Σx² - (Σ)² (so z = d / √V), the close is beyond the band when d² > k²·V.
    Returns (side, d, V); V == 0 (flat window) is always inside.
    """
    closes = [b.close for b in bars[i - n + 1 : i + 1]]
    total = sum(closes)
    d = n * closes[-1] - total
    v = n * sum(c * c for c in closes) - total * total
    if v == 0 or d * d <= k * k * v:
        return 0, d, v
    return (1 if d > 0 else -1), d, v


def _mean_reversion(symbol: str, bars: Sequence[Bar], p: Values) -> list[Signal]:
    n, k = int(p["window"]), Fraction(p["k"])
    out: list[Signal] = []
    previous = 0
    for i in range(n - 1, len(bars)):
        side_now, d, v = _band_side(bars, i, n, k)
        if side_now and side_now != previous:
            z = d / math.sqrt(v)
            mean = _sma(bars, i, n)
            std = Fraction(math.isqrt(v), n)  # reported only; rounded down to a whole cent
            side = Side.SELL if side_now > 0 else Side.BUY
            first = i - n if i >= n else i - n + 1  # the previous bar's window was compared too
            word = "above" if side_now > 0 else "below"
            out.append(
                _signal(
                    "mean-reversion", p, bars[first : i + 1], side, abs(z) / (2 * float(k)), n,
                    f"{symbol}: the close ({bars[i].close}c) is {abs(z):.2f} standard deviations {word} its "
                    f"{n}-bar mean ({_cents(mean)}c), beyond the ±{_show(k)} band; expecting a reversion.",
                    {
                        "close_cents": bars[i].close,
                        "mean_cents": _cents(mean),
                        "std_cents": _cents(std),
                        "z": _ratio(z),
                    },
                )
            )
        previous = side_now
    return out


# --- momentum -------------------------------------------------------------------------------------------------


def _momentum_check(p: Values) -> None:
    if p["sell_below"] >= p["buy_above"]:
        raise StrategyError(
            f"momentum: sell_below ({_show(p['sell_below'])}) must be lower than buy_above ({_show(p['buy_above'])})"
        )


def _roc(bars: Sequence[Bar], i: int, n: int) -> Fraction:
    return Fraction(bars[i].close - bars[i - n].close, bars[i - n].close)


def _momentum_zone(roc: Fraction, p: Values) -> int:
    return 1 if roc > p["buy_above"] else -1 if roc < p["sell_below"] else 0


def _momentum(symbol: str, bars: Sequence[Bar], p: Values) -> list[Signal]:
    n = int(p["lookback"])
    out: list[Signal] = []
    previous = 0
    for i in range(n, len(bars)):
        roc = _roc(bars, i, n)
        zone = _momentum_zone(roc, p)
        if zone and zone != previous:
            threshold = Fraction(p["buy_above"] if zone > 0 else p["sell_below"])
            strength = 1.0 if threshold == 0 else float(abs(roc) / (2 * abs(threshold)))
            first = i - n - 1 if i > n else i - n
            word = "above" if zone > 0 else "below"
            out.append(
                _signal(
                    "momentum", p, bars[first : i + 1], Side.BUY if zone > 0 else Side.SELL, strength, n,
                    f"{symbol}: the {n}-bar rate of change is {float(roc):.2%} (close {bars[i].close}c against "
                    f"{bars[i - n].close}c), {word} the {float(threshold):.2%} threshold.",
                    {
                        "close_cents": bars[i].close,
                        "reference_close_cents": bars[i - n].close,
                        "reference_bar": bars[i - n].start.isoformat(),
                        "rate_of_change": _ratio(float(roc)),
                    },
                )
            )
        previous = zone
    return out


# --- registry -------------------------------------------------------------------------------------------------

STRATEGIES: dict[str, Strategy] = {
    s.name: s
    for s in (
        Strategy(
            "sma-cross",
            "buy when the fast simple moving average of closes crosses above the slow one, sell when it crosses below",
            (
                ParamSpec("fast", int, 10, "bars in the fast moving average", 1),
                ParamSpec("slow", int, 30, "bars in the slow moving average", 2),
            ),
            _sma_cross_check,
            _sma_cross,
        ),
        Strategy(
            "mean-reversion",
            "buy when the close falls more than k standard deviations below its rolling mean, sell when it rises "
            "more than k above",
            (
                ParamSpec("window", int, 20, "bars in the rolling mean and standard deviation", 2),
                ParamSpec("k", Fraction, Fraction(2), "band width in standard deviations", None),
            ),
            _mean_reversion_check,
            _mean_reversion,
        ),
        Strategy(
            "momentum",
            "buy when the n-bar rate of change rises above buy_above, sell when it falls below sell_below",
            (
                ParamSpec("lookback", int, 20, "bars back to the reference close", 1),
                ParamSpec("buy_above", Fraction, Fraction(5, 100), "rate of change to buy above, e.g. 0.05", None),
                ParamSpec("sell_below", Fraction, Fraction(-5, 100), "rate of change to sell below", None),
            ),
            _momentum_check,
            _momentum,
        ),
    )
}


def signals(strategy: str, bars: Iterable[Bar], params: Params | None = None) -> list[Signal]:
    """Run ``strategy`` over ``bars`` (one or more symbols, one timeframe each, any order across symbols but
    strictly increasing in time within one) and return its signals ordered by time, then symbol."""
    chosen = STRATEGIES.get(strategy)
    if chosen is None:
        raise StrategyError(f"unknown strategy {strategy!r}; choose one of {', '.join(sorted(STRATEGIES))}")
    values = chosen.resolve(params)
    found: list[Signal] = []
    for symbol, series in sorted(_by_symbol(bars).items()):
        found.extend(chosen.run(symbol, series, values))
    return sorted(found, key=lambda s: (s.at, s.symbol))
