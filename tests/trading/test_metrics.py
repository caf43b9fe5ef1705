"""Backtest metrics: a small case computed by hand, and a known series against an independent implementation
(empyrical, the library quantopian's pyfolio used)."""

from __future__ import annotations

import math

import pytest

from oshal_trading.metrics import compute, max_drawdown, returns, sharpe, sortino


def test_a_small_case_computed_by_hand() -> None:
    equity = [10_000, 11_000, 9_900, 10_890]  # +10%, -10%, +10% (cents)
    m = compute(equity, exposed=[False, True, True, False], trade_pnls=[1_000, -1_100, 990])
    assert returns(equity) == pytest.approx([0.10, -0.10, 0.10])
    assert m.total_return == pytest.approx(0.089)
    mean, std = 0.1 / 3, math.sqrt(((0.1 - 0.1 / 3) ** 2 * 2 + (-0.1 - 0.1 / 3) ** 2) / 2)
    assert m.sharpe == pytest.approx(mean / std * math.sqrt(252))
    assert m.sortino == pytest.approx(mean * 252 / (math.sqrt(0.01 / 3) * math.sqrt(252)))
    assert m.max_drawdown == pytest.approx(9_900 / 11_000 - 1)
    assert m.cagr == pytest.approx(1.089 ** (252 / 3) - 1)
    assert (m.exposure, m.trades, m.win_rate) == (0.5, 3, pytest.approx(2 / 3))


def test_degenerate_curves_give_none_not_infinity() -> None:
    flat = compute([5_000, 5_000, 5_000], exposed=[False] * 3, trade_pnls=[])
    assert (flat.sharpe, flat.sortino, flat.win_rate, flat.max_drawdown) == (None, None, None, 0.0)
    rising = compute([100, 110, 121], exposed=[True] * 3, trade_pnls=[21])
    assert rising.sortino is None and rising.win_rate == 1.0
    single = compute([100], exposed=[False], trade_pnls=[])
    assert single.cagr is None and single.sharpe is None
    with pytest.raises(ValueError, match="positive"):
        returns([100, 0, 50])
    with pytest.raises(ValueError, match="2 values for 3 bars"):
        compute([1, 2, 3], exposed=[True, True], trade_pnls=[])


def test_a_known_series_matches_empyrical() -> None:
    empyrical = pytest.importorskip("empyrical", reason="the dev extra installs empyrical-reloaded")
    import numpy as np
    import pandas as pd

    # A deterministic, realistic-looking curve: drift, a cycle and a crash, in cents.
    equity = [round(1_000_000 * math.exp(0.0004 * t + 0.02 * math.sin(t / 9) - (0.15 if 120 < t < 160 else 0)))
              for t in range(300)]
    rets = returns(equity)
    series = pd.Series(rets, index=pd.date_range("2024-01-02", periods=len(rets), freq="B"))
    assert sharpe(rets) == pytest.approx(empyrical.sharpe_ratio(series), rel=1e-9)
    assert sortino(rets) == pytest.approx(empyrical.sortino_ratio(series), rel=1e-9)
    assert max_drawdown(equity) == pytest.approx(empyrical.max_drawdown(series), rel=1e-9)
    m = compute(equity, exposed=[True] * len(equity), trade_pnls=[])
    assert m.cagr == pytest.approx(empyrical.annual_return(series), rel=1e-9)
    assert m.total_return == pytest.approx(empyrical.cum_returns_final(np.array(rets)), rel=1e-9)
