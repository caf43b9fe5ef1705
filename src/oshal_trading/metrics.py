"""Backtest metrics from an equity curve (minor units per bar) and the closed trades' P&L.

Definitions (daily bars; ``periods_per_year`` 252 by default), the same as the empyrical library's, which the tests
check them against:

- returns: r_t = E_t / E_{t-1} - 1, one per bar after the first;
- total return: E_last / E_first - 1; CAGR: (E_last / E_first) ** (periods_per_year / len(returns)) - 1;
- Sharpe: mean(r - rf) / std(r - rf, ddof=1) * sqrt(periods_per_year);
- Sortino: mean(r - rf) * periods_per_year / (sqrt(mean(min(r - rf, 0)²)) * sqrt(periods_per_year));
- max drawdown: min over t of E_t / max(E_0..E_t) - 1 (0 or negative);
- exposure: the share of bars holding a position; win rate: closed trades with P&L > 0 over all closed trades.

A ratio whose denominator is zero (no variation, no losing bar, no trade) is None, never infinity.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Metrics:
    bars: int
    start_equity: int
    end_equity: int
    total_return: float
    cagr: float | None
    sharpe: float | None
    sortino: float | None
    max_drawdown: float
    exposure: float
    trades: int
    win_rate: float | None


def returns(equity: Sequence[int]) -> list[float]:
    if any(e <= 0 for e in equity):
        raise ValueError("equity must stay positive for returns to be defined")
    return [b / a - 1 for a, b in itertools.pairwise(equity)]


def _mean(values: Sequence[float]) -> float:
    return math.fsum(values) / len(values)


def sharpe(rets: Sequence[float], *, risk_free: float = 0.0, periods_per_year: int = 252) -> float | None:
    if len(rets) < 2:
        return None
    excess = [r - risk_free for r in rets]
    mean = _mean(excess)
    deviation = math.sqrt(math.fsum((x - mean) ** 2 for x in excess) / (len(excess) - 1))
    return None if deviation == 0 else mean / deviation * math.sqrt(periods_per_year)


def sortino(rets: Sequence[float], *, risk_free: float = 0.0, periods_per_year: int = 252) -> float | None:
    if not rets:
        return None
    excess = [r - risk_free for r in rets]
    downside = math.sqrt(_mean([min(x, 0.0) ** 2 for x in excess])) * math.sqrt(periods_per_year)
    return None if downside == 0 else _mean(excess) * periods_per_year / downside


def max_drawdown(equity: Sequence[int]) -> float:
    peak, worst = 0, 0.0
    for value in equity:
        peak = max(peak, value)
        worst = min(worst, value / peak - 1)
    return worst


def compute(equity: Sequence[int], *, exposed: Sequence[bool], trade_pnls: Sequence[int], risk_free: float = 0.0,
            periods_per_year: int = 252) -> Metrics:
    """The metrics of one run: ``equity`` per bar (minor units), whether a position was held on each bar, and the
    P&L of each closed trade (minor units)."""
    if len(equity) < 1:
        raise ValueError("an equity curve needs at least one bar")
    if len(exposed) != len(equity):
        raise ValueError(f"exposed has {len(exposed)} values for {len(equity)} bars")
    rets = returns(equity)
    growth = equity[-1] / equity[0]
    return Metrics(
        bars=len(equity), start_equity=equity[0], end_equity=equity[-1], total_return=growth - 1,
        cagr=growth ** (periods_per_year / len(rets)) - 1 if rets else None,
        sharpe=sharpe(rets, risk_free=risk_free, periods_per_year=periods_per_year),
        sortino=sortino(rets, risk_free=risk_free, periods_per_year=periods_per_year),
        max_drawdown=max_drawdown(equity), exposure=sum(exposed) / len(exposed), trades=len(trade_pnls),
        win_rate=sum(1 for p in trade_pnls if p > 0) / len(trade_pnls) if trade_pnls else None)
