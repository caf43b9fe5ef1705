"""The daily recap: P&L, positions, exposure, the day's best and worst fills, how often signals were right, and a
narrative written from a template (offline; a model writes it when one is configured for the desk's reporter).

Signal hit rate: a buy signal was right when the close ``horizon_bars`` later is above the signal bar's close (a
sell: below); signals whose horizon has not passed yet are not counted.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from oshal_trading.ledger import REALIZED_PNL, Ledger
from oshal_trading.model import Bar, Fill, Side, Signal


@dataclass(frozen=True, slots=True)
class PositionLine:
    symbol: str
    quantity: int
    average_cost: int  # cents per share, rounded down
    mark: int
    unrealized: int


@dataclass(frozen=True, slots=True)
class Recap:
    day: dt.date
    equity_start: int
    equity_end: int
    pnl: int
    realized_total: int
    unrealized: int
    fees_total: int
    positions: tuple[PositionLine, ...]
    gross_exposure: int
    net_exposure: int
    fills: int
    best_fill: str | None  # the fill that realized the largest gain today (None: nothing was sold)
    worst_fill: str | None
    signals_scored: int
    signal_hit_rate: float | None
    narrative: str


def hit_rate(signals: Sequence[Signal], bars: Mapping[str, Sequence[Bar]], until: dt.date) -> tuple[int, float | None]:
    """(signals scored, share right) over signals whose horizon ended by ``until``."""
    # per symbol: when each bar closed -> its index (a signal is made at the close of its bar)
    closed_at = {symbol: {_close_of(series, i): i for i in range(len(series))}
                 for symbol, series in bars.items() if series}
    scored = right = 0
    for signal in signals:
        series = bars.get(signal.symbol, [])
        index = closed_at.get(signal.symbol, {}).get(signal.at)
        if index is None or index + signal.horizon_bars >= len(series):
            continue
        later = series[index + signal.horizon_bars]
        if later.start.date() > until:
            continue
        scored += 1
        moved = later.close - series[index].close
        right += (moved > 0) if signal.side is Side.BUY else (moved < 0)
    return scored, (right / scored if scored else None)


def _close_of(series: Sequence[Bar], index: int) -> dt.datetime:
    bar = series[index]
    if bar.timeframe == "1d" or len(series) < 2:
        return bar.start + dt.timedelta(days=1)
    return bar.start + (series[1].start - series[0].start)


def _realized_by_fill(ledger: Ledger, fills: Sequence[Fill]) -> dict[str, int]:
    """The realized gain (cents, + is a gain) each of ``fills`` booked."""
    ids = {f.id for f in fills}
    gains: dict[str, int] = {}
    for line in ledger.pnl_lines():
        if line.fill_id in ids and line.account == REALIZED_PNL:
            gains[line.fill_id] = gains.get(line.fill_id, 0) - line.amount  # a gain is posted as a credit
    return gains


def _money(cents: int) -> str:
    sign = "-" if cents < 0 else ""
    return f"{sign}${abs(cents) / 100:,.2f}"


def daily(day: dt.date, ledger: Ledger, closes: Mapping[str, int], equity_start: int, fills_today: Sequence[Fill],
          signals: Sequence[Signal], bars: Mapping[str, Sequence[Bar]]) -> Recap:
    positions = tuple(PositionLine(s, p.quantity, p.cost // p.quantity, closes[s], p.quantity * closes[s] - p.cost)
                      for s, p in sorted(ledger.positions().items()) if p.quantity)
    equity_end = ledger.equity(closes)
    values = [p.quantity * p.mark for p in positions]
    gains = _realized_by_fill(ledger, fills_today)
    best = max(gains, key=lambda f: (gains[f], f), default=None)
    worst = min(gains, key=lambda f: (gains[f], f), default=None)
    scored, rate = hit_rate(signals, bars, day)
    pnl = equity_end - equity_start
    held = ", ".join(f"{p.quantity} {p.symbol} ({_money(p.unrealized)} unrealized)" for p in positions) or "nothing"
    narrative = (f"On {day.isoformat()} the desk {'made' if pnl >= 0 else 'lost'} {_money(abs(pnl))} "
                 f"({pnl / equity_start:+.2%}), ending at {_money(equity_end)}. It traded {len(fills_today)} "
                 f"fill(s) and holds {held}. "
                 + (f"Of {scored} signal(s) whose horizon has passed, {rate:.0%} called the direction right."
                    if rate is not None else "No signal's horizon has passed yet."))
    return Recap(day, equity_start, equity_end, pnl, ledger.realized_pnl(), ledger.unrealized_pnl(closes),
                 ledger.fees(), positions, sum(abs(v) for v in values), sum(values), len(fills_today),
                 best, worst, scored, rate, narrative)
