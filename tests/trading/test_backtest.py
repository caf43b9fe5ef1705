"""The backtest over the bundled real bars: the desk's own code in process, its books always balanced, every fill
walking back to the signal that caused it, and nothing filled before it could have been decided."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import pytest

from oshal_trading.backtest import BacktestConfig, BacktestError, default_limits, run
from oshal_trading.bars import load_bundled

PERIOD = {"start": dt.date(2015, 1, 1), "end": dt.date(2016, 12, 31)}


@pytest.fixture(scope="module")
def bars() -> dict[str, list]:  # type: ignore[type-arg]
    return load_bundled(["AAPL", "GOOGL", "TSLA"])


def test_the_books_balance_and_every_fill_traces_to_its_signal(bars: dict[str, list]) -> None:  # type: ignore[type-arg]
    result = run(BacktestConfig("sma-cross"), bars, **PERIOD)
    assert result.fills and result.metrics.trades > 0
    balance = result.ledger.trial_balance()
    assert sum(r.debit for r in balance.rows) == sum(r.credit for r in balance.rows)
    last_closes = {s: [b for b in bars[s] if b.start.date() <= PERIOD["end"]][-1].close for s in result.symbols}
    held = result.ledger.positions()
    assert result.equity[-1] == result.ledger.cash() + sum(p.quantity * last_closes[s] for s, p in held.items())
    assert result.ledger.reconcile(list(result.fills)) == []
    signals = {s.id: s for s in result.signals}
    decisions = {d.id: d for d in result.decisions}
    lines = result.ledger.pnl_lines()
    assert lines
    for line in lines:
        trace = result.ledger.trace(line)
        assert trace.signal_id in signals and trace.order.signal_id == trace.signal_id
        assert trace.risk_decision_id is not None and decisions[trace.risk_decision_id].approved
    for fill in result.fills:  # an order decided on a bar's close fills on a later bar, never the same one
        signal = signals[fill.client_order_id.removeprefix("bt-")]
        assert fill.bar_start >= signal.at and fill.symbol == signal.symbol


def test_the_same_run_twice_is_identical_and_the_metrics_are_consistent(bars: dict[str, list]) -> None:  # type: ignore[type-arg]
    first, second = (run(BacktestConfig("momentum"), bars, **PERIOD) for _ in range(2))
    assert first.equity == second.equity and first.fills == second.fills and first.metrics == second.metrics
    m = first.metrics
    assert m.start_equity == first.equity[0] and m.end_equity == first.equity[-1]
    assert m.total_return == pytest.approx(first.equity[-1] / first.equity[0] - 1)
    assert -1 < m.max_drawdown <= 0 and 0 <= m.exposure <= 1
    assert m.trades == len(first.trade_pnls)


def test_the_risk_engine_blocks_what_its_limits_refuse(bars: dict[str, list]) -> None:  # type: ignore[type-arg]
    limits = replace(default_limits(["AAPL", "GOOGL", "TSLA"], 10_000_000), allowed_symbols=frozenset({"AAPL"}))
    result = run(BacktestConfig("sma-cross", limits=limits), bars, **PERIOD)
    assert {f.symbol for f in result.fills} == {"AAPL"}
    blocked = [d for d in result.decisions if not d.approved]
    assert blocked and all(any(r.rule == "symbol_allowlist" and not r.passed for r in d.rules) for d in blocked)


def test_bad_input_says_what_is_wrong(bars: dict[str, list]) -> None:  # type: ignore[type-arg]
    with pytest.raises(BacktestError, match="no strategy named 'nope'"):
        run(BacktestConfig("nope"), bars)
    with pytest.raises(BacktestError, match="no bars in the period for AAPL"):
        run(BacktestConfig("sma-cross"), {"AAPL": bars["AAPL"]}, start=dt.date(2030, 1, 1))
