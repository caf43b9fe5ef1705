"""Backtest: the desk's own signal → risk → paper fill → ledger code run over history, in process.

The same functions the live paper desk calls (strategies.signals, risk.decide, PaperBroker, Ledger), in the same
order per bar, so a day replayed both ways gives the same fills. Per trading day, in time order:

1. each symbol's bar is given to the broker: orders decided on the previous bar fill (market: at this bar's open
   with slippage; limit: if it trades through);
2. the day ends for the broker (a remainder left by the volume cap expires);
3. equity is marked at the closes;
4. the signals of this bar become orders for the next bar: a buy when flat sizes a position to ``allocation`` of
   equity split across the symbols; a sell closes the position (long only); each is checked by the risk engine, and
   only an approved one reaches the broker, which fills it on the next bar at the earliest.

Money is integer cents; the metrics come from :mod:`oshal_trading.metrics`.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from oshal_trading import metrics as metrics_of
from oshal_trading import strategies
from oshal_trading.ledger import Ledger
from oshal_trading.model import Bar, Fill, Order, OrderType, RiskDecision, Side, Signal
from oshal_trading.paper import FeeSchedule, PaperBroker, PaperConfig
from oshal_trading.risk import Exposure, Holding, RiskLimits, TradingHours, decide


class BacktestError(ValueError):
    """Bad backtest input, said so a person can fix it."""


@dataclass(frozen=True, slots=True)
class BacktestConfig:
    strategy: str
    params: Mapping[str, object] = field(default_factory=dict)
    opening_cash: int = 10_000_000  # cents: $100,000
    allocation: Decimal = Decimal("0.95")  # of equity, split evenly across the symbols
    slippage_bps: Decimal = Decimal(5)
    fees: FeeSchedule = field(default_factory=lambda: FeeSchedule(per_share=Decimal("0.5"), minimum=100))
    max_participation: Decimal = Decimal("0.1")
    limits: RiskLimits | None = None  # default: generous limits sized from the opening cash


@dataclass(frozen=True, slots=True)
class BacktestResult:
    symbols: tuple[str, ...]
    days: tuple[dt.date, ...]
    equity: tuple[int, ...]  # cents at each day's close
    exposed: tuple[bool, ...]
    trade_pnls: tuple[int, ...]  # each closed round trip, net of its fees
    signals: tuple[Signal, ...]
    decisions: tuple[RiskDecision, ...]
    fills: tuple[Fill, ...]
    metrics: metrics_of.Metrics
    ledger: Ledger
    bars: int


def default_limits(symbols: Sequence[str], opening_cash: int) -> RiskLimits:
    return RiskLimits(allowed_symbols=frozenset(symbols), max_order_quantity=10_000_000,
                      max_order_notional=opening_cash * 2, max_gross_exposure=opening_cash * 2,
                      max_net_exposure=opening_cash * 2, max_daily_loss=opening_cash,
                      max_position_notional=opening_cash * 2, trading_hours=TradingHours.DAILY)


def run(config: BacktestConfig, bars: Mapping[str, Sequence[Bar]], *, start: dt.date | None = None,
        end: dt.date | None = None) -> BacktestResult:
    """Run ``config`` over ``bars`` (per symbol, daily) from ``start`` to ``end`` (inclusive)."""
    if config.strategy not in strategies.STRATEGIES:
        raise BacktestError(f"no strategy named {config.strategy!r}; known: {', '.join(sorted(strategies.STRATEGIES))}")
    chosen = {s: [b for b in series if (start is None or b.start.date() >= start)
                  and (end is None or b.start.date() <= end)] for s, series in sorted(bars.items())}
    empty = sorted(s for s, series in chosen.items() if not series)
    if not chosen or empty:
        raise BacktestError(f"no bars in the period for {', '.join(empty) or 'any symbol'}",)
    symbols = tuple(chosen)
    found = strategies.signals(config.strategy, [b for s in symbols for b in chosen[s]], dict(config.params))
    by_bar: dict[tuple[str, dt.datetime], list[Signal]] = defaultdict(list)
    for signal in found:
        bar_start = signal.at - _step(chosen[signal.symbol])
        by_bar[(signal.symbol, bar_start)].append(signal)
    limits = config.limits or default_limits(symbols, config.opening_cash)
    broker = PaperBroker(PaperConfig(slippage_bps=config.slippage_bps, max_participation=config.max_participation,
                                     fees=config.fees))
    first_day = min(series[0].start for series in chosen.values())
    ledger = Ledger(config.opening_cash, at=first_day)
    orders: dict[str, Order] = {}
    decisions: dict[str, RiskDecision] = {}
    day_bars: dict[dt.date, list[Bar]] = defaultdict(list)
    for series in chosen.values():
        for bar in series:
            day_bars[bar.start.date()].append(bar)
    closes: dict[str, int] = {}
    equity_curve: list[int] = []
    exposed: list[bool] = []
    all_fills: list[Fill] = []
    trades: list[int] = []
    opened_at: dict[str, tuple[int, int]] = {}  # symbol -> (realized, fees) when its round trip opened
    day_start_equity = config.opening_cash
    for day in sorted(day_bars):
        todays = sorted(day_bars[day], key=lambda b: b.symbol)
        for bar in todays:
            for fill in broker.on_bar(bar):
                order = orders[fill.client_order_id]
                was_flat = _held(ledger, fill.symbol) == 0
                if was_flat:
                    opened_at[fill.symbol] = (ledger.realized_pnl(), ledger.fees())
                ledger.post_fill(fill, order, decisions[fill.client_order_id])
                all_fills.append(fill)
                if _held(ledger, fill.symbol) == 0 and fill.symbol in opened_at:
                    realized, fees = opened_at.pop(fill.symbol)
                    trades.append((ledger.realized_pnl() - realized) - (ledger.fees() - fees))
            closes[bar.symbol] = bar.close
        broker.end_day(day)
        equity = ledger.equity(closes)
        equity_curve.append(equity)
        exposed.append(any(p.quantity for p in ledger.positions().values()))
        for bar in todays:
            for signal in by_bar.get((bar.symbol, bar.start), []):
                proposed = _order_for(signal, bar, ledger, equity, config, len(symbols))
                if proposed is None:
                    continue
                exposure = Exposure({s: Holding(p.quantity, closes[s]) for s, p in ledger.positions().items()
                                     if p.quantity}, ledger.cash(), day_start_equity)
                decision = decide(proposed, bar.close, exposure, limits, halted=False, now=bar.start)
                decisions[proposed.client_order_id] = decision
                if decision.approved:
                    orders[proposed.client_order_id] = proposed
                    broker.submit(proposed)
        day_start_equity = equity
    curve = metrics_of.compute(equity_curve, exposed=exposed, trade_pnls=trades)
    return BacktestResult(symbols, tuple(sorted(day_bars)), tuple(equity_curve), tuple(exposed), tuple(trades),
                          tuple(found), tuple(decisions.values()), tuple(all_fills), curve, ledger,
                          sum(len(s) for s in chosen.values()))


def _step(series: Sequence[Bar]) -> dt.timedelta:
    return dt.timedelta(days=1) if series[0].timeframe == "1d" else (series[1].start - series[0].start)


def _held(ledger: Ledger, symbol: str) -> int:
    position = ledger.positions().get(symbol)
    return position.quantity if position else 0


def _order_for(signal: Signal, bar: Bar, ledger: Ledger, equity: int, config: BacktestConfig,
               n_symbols: int) -> Order | None:
    """Long only: a buy opens a position when flat, a sell closes one; anything else is no order."""
    held = _held(ledger, signal.symbol)
    if signal.side is Side.BUY and held == 0:
        budget = int(Decimal(equity) * config.allocation / n_symbols)
        quantity = budget // bar.close
        if quantity <= 0:
            return None
        side = Side.BUY
    elif signal.side is Side.SELL and held > 0:
        quantity, side = held, Side.SELL
    else:
        return None
    next_bar = bar.start + dt.timedelta(days=1) if bar.timeframe == "1d" else bar.start
    return Order(client_order_id=f"bt-{signal.id}", signal_id=signal.id, symbol=signal.symbol, side=side,
                 quantity=quantity, type=OrderType.MARKET, created_at=next_bar)
