"""Alpaca's and ccxt's bars into the desk's: timeframes, time stamps, prices to cents, volumes, and every problem
named by bar and field."""

from __future__ import annotations

import datetime as dt

import pytest

from oshal_trading.alpaca import alpaca_timeframe, bars_from_alpaca
from oshal_trading.bars import BarDataError
from oshal_trading.crypto import _repoint, candles_to_bars
from oshal_trading.market_data import from_wire, to_wire
from oshal_trading.model import Bar


def test_the_desks_timeframes_in_alpacas_spelling() -> None:
    assert [alpaca_timeframe(t) for t in ("1m", "15m", "59m", "1h", "4h", "23h", "1d")] == [
        "1Min", "15Min", "59Min", "1Hour", "4Hour", "23Hour", "1Day"]
    for bad, said in (("60m", "minutes go to 59"), ("24h", "hours to 23"), ("2d", "not understood"),
                      ("1w", "not understood")):
        with pytest.raises(ValueError, match=said):
            alpaca_timeframe(bad)


def test_alpaca_daily_bars_start_at_midnight_utc_of_their_new_york_date() -> None:
    items = [{"t": "2016-01-04T05:00:00Z", "o": 102.61, "h": 105.368, "l": 102.0, "c": 105.35, "v": 67649387,
              "n": 1, "vw": 104.1},  # winter: New York is UTC-5
             {"t": "2016-07-01T04:00:00Z", "o": 95.49, "h": 96.465, "l": 95.33, "c": 95.89, "v": 25872.0}]  # UTC-4
    bars = bars_from_alpaca("AAPL", "1d", items, source="alpaca")
    assert bars == [Bar("AAPL", "1d", dt.datetime(2016, 1, 4, tzinfo=dt.UTC), 10261, 10537, 10200, 10535, 67649387),
                    Bar("AAPL", "1d", dt.datetime(2016, 7, 1, tzinfo=dt.UTC), 9549, 9646, 9533, 9589, 25872)]
    minute = bars_from_alpaca("AAPL", "1m", [{"t": "2021-02-01T16:01:00Z", "o": 133.32, "h": 133.74, "l": 133.31,
                                              "c": 133.5, "v": 9876}], source="alpaca")
    assert minute[0].start == dt.datetime(2021, 2, 1, 16, 1, tzinfo=dt.UTC) and minute[0].close == 13350


def test_bad_alpaca_bars_are_refused_together_each_by_position_and_field() -> None:
    items = [{"t": "2016-01-04T05:00:00Z", "o": 10.0, "h": 9.0, "l": 8.0, "c": 9.5, "v": 1},
             {"t": "2016-01-05T05:00:00Z", "o": 10.0, "h": 11.0, "l": 9.0, "v": 1},
             "not a bar",
             {"t": "yesterday", "o": 10.0, "h": 11.0, "l": 9.0, "c": 10.0, "v": 1.5}]
    with pytest.raises(BarDataError) as refused:
        bars_from_alpaca("AAPL", "1d", items, source="alpaca AAPL 1d")
    problems = {(p.line, p.field) for p in refused.value.problems}
    assert problems == {(1, "high"), (2, "close"), (3, "bar"), (4, "date"), (4, "volume")}
    assert str(refused.value).startswith("5 problems in the bars:\nalpaca AAPL 1d:1: high:")


def test_ccxt_candles_round_prices_to_cents_and_volumes_to_whole_units() -> None:
    rows = [[1451606400000, 430.72, 436.0, 427.51, 434.33, 1234.5],  # 2016-01-01
            [1451692800000, 434.33, 436.07, 433.435, 433.44, 1235.5]]
    bars = candles_to_bars("BTC/USDT", "1d", rows, source="ccxt")
    assert [(b.start.date(), b.open, b.high, b.low, b.close, b.volume) for b in bars] == [
        (dt.date(2016, 1, 1), 43072, 43600, 42751, 43433, 1234),
        (dt.date(2016, 1, 2), 43433, 43607, 43344, 43344, 1236)]
    hourly = candles_to_bars("ETH/USDT", "1h", [[1451610000000, 1.0, 1.0, 1.0, 1.0, 0]], source="ccxt")
    assert hourly[0].start == dt.datetime(2016, 1, 1, 1, tzinfo=dt.UTC)
    with pytest.raises(BarDataError) as refused:
        candles_to_bars("SHIB/USDT", "1d", [[1451606400000, 0.00001, 0.00002, 0.00001, 0.00001, 5], [1451692800000]],
                        source="ccxt")
    assert {(p.line, p.field) for p in refused.value.problems} == {
        (1, "open"), (1, "high"), (1, "low"), (1, "close"), (2, "candle")}
    assert "rounds to zero cents" in str(refused.value)


def test_bars_cross_the_wire_unchanged_and_an_exchange_api_is_repointed_paths_kept() -> None:
    bar = Bar("BTC/USDT", "1h", dt.datetime(2016, 1, 1, 13, tzinfo=dt.UTC), 43072, 43600, 42751, 43433, 12)
    wire = to_wire(bar)
    assert wire["start"] == "2016-01-01T13:00:00Z" and from_wire("BTC/USDT", "1h", wire) == bar
    urls = {"public": "https://api.binance.com/api/v3", "fapi": {"public": "https://fapi.binance.com/fapi/v1"},
            "rate": 10}
    assert _repoint(urls, "http://127.0.0.1:9999") == {
        "public": "http://127.0.0.1:9999/api/v3", "fapi": {"public": "http://127.0.0.1:9999/fapi/v1"}, "rate": 10}
