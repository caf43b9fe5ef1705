"""The daily recap, from a backtest replayed over real bars: its numbers are the ledger's, its signal hit rate is
recomputed here independently, and its narrative says what the numbers say."""

from __future__ import annotations

import datetime as dt

from oshal_trading.backtest import BacktestConfig, run
from oshal_trading.bars import load_bundled
from oshal_trading.model import Side
from oshal_trading.recap import daily, hit_rate


def test_a_recap_of_the_last_day_is_the_ledgers_view_of_it() -> None:
    bars = load_bundled(["AAPL", "TSLA"])
    end = dt.date(2016, 6, 30)
    result = run(BacktestConfig("sma-cross"), bars, start=dt.date(2015, 1, 1), end=end)
    closes = {s: [b for b in bars[s] if b.start.date() <= end][-1].close for s in result.symbols}
    last = result.days[-1]
    fills_today = [f for f in result.fills if f.bar_start.date() == last]
    recap = daily(last, result.ledger, closes, result.equity[-2], fills_today, result.signals, bars)
    assert recap.equity_end == result.equity[-1] and recap.pnl == result.equity[-1] - result.equity[-2]
    assert recap.unrealized == result.ledger.unrealized_pnl(closes) and recap.fees_total == result.ledger.fees()
    assert sum(p.quantity * p.mark for p in recap.positions) == recap.net_exposure
    assert recap.equity_end == result.ledger.cash() + recap.net_exposure
    # the hit rate, recomputed: a signal's bar is the one it was made at the close of
    scored = right = 0
    for signal in result.signals:
        series = bars[signal.symbol]
        index = next(i for i, b in enumerate(series) if b.start + dt.timedelta(days=1) == signal.at)
        if index + signal.horizon_bars < len(series) and series[index + signal.horizon_bars].start.date() <= last:
            scored += 1
            moved = series[index + signal.horizon_bars].close - series[index].close
            right += moved > 0 if signal.side is Side.BUY else moved < 0
    assert (recap.signals_scored, recap.signal_hit_rate) == (scored, right / scored)
    assert f"{recap.signal_hit_rate:.0%}" in recap.narrative and last.isoformat() in recap.narrative


def test_the_best_and_worst_fill_of_a_day_are_by_realized_gain() -> None:
    bars = load_bundled(["TSLA"])
    result = run(BacktestConfig("sma-cross"), bars, start=dt.date(2015, 1, 1), end=dt.date(2017, 12, 31))
    sells = [f for f in result.fills if f.side is Side.SELL]
    day = sells[0].bar_start.date()
    closes = {"TSLA": next(b.close for b in bars["TSLA"] if b.start.date() == day)}
    recap = daily(day, result.ledger, closes, result.equity[0], [f for f in result.fills if f.bar_start.date() == day],
                  result.signals, bars)
    assert recap.best_fill == recap.worst_fill == sells[0].id  # one sale that day: both ends are it
    assert hit_rate([], bars, day) == (0, None)
