"""`oshal trade backtest` in a process of its own, on the bundled data: metrics printed, the chart written."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def _trade(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "oshal.cli.main", "trade", *args], capture_output=True, text=True,
                          timeout=120, cwd=cwd)


def test_a_backtest_prints_its_metrics_and_writes_the_equity_chart(tmp_path: Path) -> None:
    done = _trade("backtest", "sma-cross", "--symbols", "AAPL,TSLA", "--from", "2015-01-01", "--to", "2016-12-31",
                  "--chart", "out/equity.png", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["symbols"] == ["AAPL", "TSLA"] and report["from"] == "2015-01-02" and report["to"] == "2016-12-30"
    assert report["trades"] > 0 and -1 < report["max_drawdown"] <= 0 and report["sharpe"] is not None
    png = (tmp_path / "out" / "equity.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000
    table = _trade("backtest", "momentum", "--symbols", "googl", "--param", "lookback=10", cwd=tmp_path)
    assert table.returncode == 0, table.stderr
    assert "Sharpe" in table.stdout and "max drawdown" in table.stdout and (tmp_path / "equity.png").exists()


def test_bad_input_is_a_clear_error() -> None:
    for args, said in ((["nope", "--symbols", "AAPL"], "no strategy named 'nope'"),
                       (["sma-cross", "--symbols", "ZZZZ"], "no bundled data for ZZZZ"),
                       (["sma-cross", "--symbols", "AAPL", "--from", "2015-13-01"], "is not a date"),
                       (["sma-cross", "--symbols", "AAPL", "--from", "2030-01-01"], "no bars in the period"),
                       (["sma-cross", "--symbols", "AAPL", "--param", "fast"], "is not NAME=VALUE")):
        done = _trade("backtest", *args, cwd=Path("/tmp"))
        assert done.returncode == 2 and said in done.stderr, (args, done.stderr)
