"""The backtest's speed: bars per second through the desk's signal → risk → paper fill → ledger code, in process,
over the bundled real daily bars (every symbol, every strategy), best of a few runs. Prints one JSON line."""

from __future__ import annotations

import json
import time

from oshal_trading import strategies
from oshal_trading.backtest import BacktestConfig, run
from oshal_trading.bars import load_bundled

RUNS = 5


def main() -> None:
    bars = load_bundled()
    figures = {}
    for name in sorted(strategies.STRATEGIES):
        best = float("inf")
        for _ in range(RUNS):
            started = time.perf_counter()
            result = run(BacktestConfig(name), bars)
            best = min(best, time.perf_counter() - started)
        figures[name] = {"bars": result.bars, "fills": len(result.fills), "bars_per_s": round(result.bars / best)}
        print(f"backtest {name:15s} {result.bars} bars of {len(result.symbols)} symbols, {len(result.fills)} fills: "
              f"{result.bars / best:,.0f} bars/s (best of {RUNS})")
    print(json.dumps({"backtest": figures}))


if __name__ == "__main__":
    main()
