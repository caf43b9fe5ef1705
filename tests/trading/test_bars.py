"""The desk's bar format: the bundled real data, cents, validation messages, and the write -> read round trip."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from importlib import resources

import pytest
from hypothesis import given
from hypothesis import strategies as st

from oshal_trading.bars import (
    CSV_COLUMNS,
    MAX_PROBLEMS_SHOWN,
    BarDataError,
    bundled_symbols,
    cents_to_str,
    load_bundled,
    parse_volume,
    read_bars,
    timeframe_step,
    to_cents,
    write_bars,
)
from oshal_trading.model import Bar

HEADER = ",".join(CSV_COLUMNS) + "\n"


def day(text: str) -> datetime:
    return datetime.combine(date.fromisoformat(text), datetime.min.time(), tzinfo=UTC)


def problems_of(text: str, timeframe: str = "1d") -> list[str]:
    with pytest.raises(BarDataError) as caught:
        read_bars(text, source="bars.csv", timeframe=timeframe)
    return [str(problem) for problem in caught.value.problems]


# --- the bundled data set ------------------------------------------------------------------------------------


def test_the_bundled_set_is_the_five_documented_series() -> None:
    bundled = load_bundled()
    assert bundled_symbols() == ("AAPL", "COKE", "GOOGL", "TSLA", "YHOO")
    spans = {symbol: (bars[0].start, bars[-1].start, len(bars)) for symbol, bars in bundled.items()}
    assert spans == {
        "AAPL": (day("2015-01-02"), day("2017-12-29"), 753),
        "COKE": (day("2015-01-02"), day("2017-12-29"), 754),
        "GOOGL": (day("2015-01-02"), day("2017-12-29"), 754),
        "TSLA": (day("2015-01-02"), day("2017-12-29"), 754),
        "YHOO": (day("2015-01-02"), day("2017-06-16"), 619),
    }


def test_every_bundled_bar_is_valid_sorted_and_unique() -> None:
    for symbol, bars in load_bundled().items():
        starts = [bar.start for bar in bars]
        assert starts == sorted(set(starts)), symbol
        for bar in bars:
            assert (bar.symbol, bar.timeframe) == (symbol, "1d")
            assert bar.start.tzinfo is UTC and bar.start.time() == datetime.min.time()
            assert bar.start.weekday() < 5, f"{symbol} {bar.start:%Y-%m-%d} is a weekend"
            assert bar.high >= max(bar.open, bar.close) and bar.low <= min(bar.open, bar.close)
            assert bar.low > 0 and bar.volume >= 0
            assert all(isinstance(v, int) for v in (bar.open, bar.high, bar.low, bar.close, bar.volume))


def test_bundled_bars_hold_the_source_values_in_cents() -> None:
    # dash-stock-ticker-demo.csv (plotly/datasets @ 4e10878c), the AAPL row of 2015-01-02:
    # 752,2015-01-02,111.39,111.44,107.35,109.33,53204626.0,...
    aapl = load_bundled(["AAPL"])["AAPL"]
    assert aapl[0] == Bar("AAPL", "1d", day("2015-01-02"), 11139, 11144, 10735, 10933, 53204626)
    # the source's low of 2017-12-12 is the float artefact 171.46099999999998: rounded to the cent
    assert next(bar for bar in aapl if bar.start == day("2017-12-12")).low == 17146
    # GOOGL 2015-01-05 high 527.9899 -> 527.99; TSLA 2015-01-05 low 207.1626 -> 207.16
    bundled = load_bundled(["GOOGL", "TSLA"])
    assert bundled["GOOGL"][1].high == 52799
    assert bundled["TSLA"][1].low == 20716
    # the gap that is in the source stays a gap
    assert day("2017-08-07") not in {bar.start for bar in aapl}


def test_writing_the_bundled_bars_gives_the_shipped_files_byte_for_byte() -> None:
    for symbol, bars in load_bundled().items():
        shipped = resources.files("oshal_trading").joinpath("data", f"{symbol}.csv").read_text(encoding="utf-8")
        assert write_bars(bars) == shipped


def test_asking_for_a_symbol_that_is_not_bundled_names_those_that_are() -> None:
    with pytest.raises(ValueError, match="no bundled bars for MSFT; the bundled symbols are AAPL, COKE, GOOGL"):
        load_bundled(["TSLA", "MSFT"])
    assert list(load_bundled(["TSLA", "AAPL", "TSLA"])) == ["TSLA", "AAPL"]


def test_the_sources_file_ships_beside_the_data() -> None:
    sources = resources.files("oshal_trading").joinpath("data", "SOURCES.md").read_text(encoding="utf-8")
    assert "plotly/datasets" in sources and "MIT License" in sources
    for symbol in bundled_symbols():
        assert f"`{symbol}.csv`" in sources


# --- cents ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "cents"),
    [
        ("123.45", 12345),
        ("1", 100),
        ("0.5", 50),
        ("0.01", 1),
        ("527.9899", 52799),
        ("171.46099999999998", 17146),
        ("0.125", 12),  # half-even: to the even cent
        ("0.135", 14),
        ("2.005", 200),
        ("2.015", 202),
        ("1E+2", 10000),
        (" 7.10 ", 710),
    ],
)
def test_prices_become_cents_rounding_half_even_past_two_decimals(text: str, cents: int) -> None:
    assert to_cents(text) == cents
    assert to_cents(Decimal(text.strip())) == cents


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("abc", "'abc' is not a decimal number (write it like 123.45)"),
        ("1,234.50", "'1,234.50' is not a decimal number"),
        ("NaN", "'NaN' is not a finite number"),
        ("Infinity", "'Infinity' is not a finite number"),
        ("0", "'0' is not a positive price"),
        ("-3.20", "'-3.20' is not a positive price"),
        ("0.004", "'0.004' rounds to zero cents"),
        ("1e30", "'1e30' is too large a price"),
        ("92233720368547758.08", "'92233720368547758.08' is too large a price"),
    ],
)
def test_a_price_that_is_not_one_is_refused_with_its_reason(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        to_cents(text)


@pytest.mark.parametrize(
    ("cents", "text"), [(12345, "123.45"), (5, "0.05"), (100, "1.00"), (0, "0.00"), (-250, "-2.50")]
)
def test_cents_are_written_with_two_decimals(cents: int, text: str) -> None:
    assert cents_to_str(cents) == text


@given(st.integers(min_value=1, max_value=10**15))
def test_cents_survive_decimal_and_back(cents: int) -> None:
    assert to_cents(cents_to_str(cents)) == cents
    assert Decimal(cents_to_str(cents)) * 100 == cents


def test_volumes_are_whole_shares() -> None:
    assert parse_volume("25643711.0") == 25643711
    assert parse_volume("0") == 0
    assert parse_volume(str(2**63 - 1)) == 2**63 - 1
    bad = [("1.5", "not a whole number"), ("-1", "is negative"), ("x", "is not a number"), ("1e19", "too large")]
    for text, message in bad:
        with pytest.raises(ValueError, match=message):
            parse_volume(text)


def test_timeframes() -> None:
    assert timeframe_step("1d") == timedelta(days=1)
    assert timeframe_step("15m") == timedelta(minutes=15)
    assert timeframe_step("4h") == timedelta(hours=4)
    for bad in ("2d", "1w", "0m", "m", "1D", ""):
        with pytest.raises(ValueError, match="is not understood: use minutes, hours or one day"):
            timeframe_step(bad)


# --- validation: each problem, named by file, line and field -------------------------------------------------


GOOD = "AAPL,2015-01-02,111.39,111.44,107.35,109.33,53204626\n"


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        ("AAPL,2015-01-05,108.29,108.65,105.41,,64285491", "bars.csv:3: close: is empty"),
        ("AAPL,2015-01-05,108.29,108.65,105.41,abc,64285491", "bars.csv:3: close: 'abc' is not a decimal number"),
        ("AAPL,2015-01-05,0,108.65,105.41,106.25,64285491", "bars.csv:3: open: '0' is not a positive price"),
        ("AAPL,2015-01-05,108.29,108.20,105.41,106.25,64285491", "bars.csv:3: high: 108.20 is below the bar's open"),
        ("AAPL,2015-01-05,108.29,108.65,106.30,106.25,64285491", "bars.csv:3: low: 106.30 is above the bar's open"),
        ("AAPL,2015-01-05,108.29,108.65,105.41,106.25,-5", "bars.csv:3: volume: '-5' is negative"),
        ("AAPL,2015-01-05,108.29,108.65,105.41,106.25,10.5", "bars.csv:3: volume: '10.5' is not a whole number"),
        ("AAPL,2015-02-30,108.29,108.65,105.41,106.25,64285491", "bars.csv:3: date: '2015-02-30' is not a calendar"),
        ("AAPL,05/01/2015,108.29,108.65,105.41,106.25,64285491", "bars.csv:3: date: '05/01/2015' is not a date"),
        ("AAPL,2015-01-02,108.29,108.65,105.41,106.25,64285491", "bars.csv:3: date: AAPL 2015-01-02 repeats line 2"),
        (",2015-01-05,108.29,108.65,105.41,106.25,64285491", "bars.csv:3: symbol: is empty"),
        ("AA PL,2015-01-05,108.29,108.65,105.41,106.25,64285491", "bars.csv:3: symbol: 'AA PL' is not a symbol"),
        ("AAPL,2015-01-05,108.29,108.65,105.41,106.25", "bars.csv:3: row: has 6 fields, expected 7"),
        (
            "AAPL,2015-01-05T00:30:00Z,108.29,108.65,105.41,106.25,1",
            "bars.csv:3: date: '2015-01-05T00:30:00Z' does not start a 1d bar (in UTC)",
        ),
    ],
)
def test_each_kind_of_bad_row_gives_its_message(row: str, problem: str) -> None:
    found = problems_of(HEADER + GOOD + row + "\n")
    assert len(found) == 1
    assert found[0].startswith(problem), found[0]


def test_every_problem_in_a_file_is_reported_at_once() -> None:
    text = HEADER + GOOD + "AAPL,2015-01-05,,108.65,105.41,106.25,-1\n" + "\n" + "TSLA,2015-01-05,1,1,1,1,x\n"
    with pytest.raises(BarDataError) as caught:
        read_bars(text, source="mixed.csv")
    assert [(p.line, p.field) for p in caught.value.problems] == [(3, "open"), (3, "volume"), (5, "volume")]
    assert str(caught.value).startswith("3 problems in the bars:\nmixed.csv:3: open: is empty\n")


def test_a_long_list_of_problems_is_cut_short_in_the_message_but_kept_whole() -> None:
    rows = "".join(f"AAPL,2015-01-{n:02d},1,1,1,1,-1\n" for n in range(1, 31))
    with pytest.raises(BarDataError) as caught:
        read_bars(HEADER + rows, source="many.csv")
    assert len(caught.value.problems) == 30
    assert str(caught.value).endswith(f"... and {30 - MAX_PROBLEMS_SHOWN} more")


def test_the_header_must_be_the_desks_format() -> None:
    assert problems_of("Date,Open,High,Low,Close,Volume\n") == [
        "bars.csv:1: header: expected symbol,date,open,high,low,close,volume, found Date,Open,High,Low,Close,Volume"
    ]
    assert problems_of("") == ["bars.csv:1: header: expected symbol,date,open,high,low,close,volume, found nothing"]


def test_bars_come_back_sorted_by_symbol_then_time() -> None:
    text = HEADER + "TSLA,2015-01-05,1,2,1,1,0\nAAPL,2015-01-05,1,2,1,1,0\n" + GOOD
    bars = read_bars(text, source="x.csv")
    assert [(bar.symbol, bar.start) for bar in bars] == [
        ("AAPL", day("2015-01-02")),
        ("AAPL", day("2015-01-05")),
        ("TSLA", day("2015-01-05")),
    ]


def test_intraday_bars_carry_their_time_with_its_offset() -> None:
    text = HEADER + "AAPL,2024-01-02T14:00:00Z,1,2,1,1,5\nAAPL,2024-01-02T09:00:00-05:00,1,2,1,1,5\n"
    assert problems_of(text, "1h") == ["bars.csv:3: date: AAPL 2024-01-02T09:00:00-05:00 repeats line 2"]
    bars = read_bars(HEADER + "AAPL,2024-01-02T14:00:00Z,1,2,1,1,5\n", source="x.csv", timeframe="1h")
    assert bars[0].start == datetime(2024, 1, 2, 14, tzinfo=UTC)
    assert problems_of(HEADER + "AAPL,2024-01-02T14:30:00Z,1,2,1,1,5\n", "1h") == [
        "bars.csv:2: date: '2024-01-02T14:30:00Z' does not start a 1h bar (in UTC)"
    ]
    assert problems_of(HEADER + "AAPL,2024-01-02,1,2,1,1,5\n", "1h") == [
        "bars.csv:2: date: '2024-01-02' is a date, but 1h bars need a time with its UTC offset"
    ]
    assert problems_of(HEADER + "AAPL,2024-01-02T14:00:00,1,2,1,1,5\n", "1h") == [
        "bars.csv:2: date: '2024-01-02T14:00:00' has no UTC offset: write it like 2024-01-02T14:30:00Z"
    ]


def test_one_file_holds_one_timeframe() -> None:
    daily = Bar("AAPL", "1d", day("2015-01-02"), 1, 1, 1, 1, 0)
    hourly = Bar("AAPL", "1h", day("2015-01-03"), 1, 1, 1, 1, 0)
    with pytest.raises(ValueError, match=r"one file holds one timeframe; these bars have \['1d', '1h'\]"):
        write_bars([daily, hourly])


# --- any valid bars survive write -> read unchanged ----------------------------------------------------------

_TIMEFRAMES = {"1d": timedelta(days=1), "1h": timedelta(hours=1), "15m": timedelta(minutes=15)}


@st.composite
def valid_bar_lists(draw: st.DrawFn) -> list[Bar]:
    timeframe = draw(st.sampled_from(sorted(_TIMEFRAMES)))
    step = _TIMEFRAMES[timeframe]
    symbols = draw(st.lists(st.from_regex(r"[A-Z][A-Z0-9./:-]{0,7}", fullmatch=True), min_size=1, max_size=3))
    bars: list[Bar] = []
    for symbol in dict.fromkeys(symbols):
        offsets = draw(st.sets(st.integers(min_value=0, max_value=200_000), min_size=1, max_size=8))
        for offset in offsets:
            prices = draw(st.lists(st.integers(min_value=1, max_value=10**12), min_size=4, max_size=4))
            low, open_, close, high = sorted(prices)
            if draw(st.booleans()):
                open_, close = close, open_
            start = datetime(2000, 1, 1, tzinfo=UTC) + offset * step
            volume = draw(st.integers(min_value=0, max_value=10**15))
            bars.append(Bar(symbol, timeframe, start, open_, high, low, close, volume))
    return draw(st.permutations(bars))


@given(valid_bar_lists())
def test_any_valid_bars_survive_write_then_read_unchanged(bars: list[Bar]) -> None:
    timeframe = bars[0].timeframe
    text = write_bars(bars)
    back = read_bars(text, source="generated.csv", timeframe=timeframe)
    assert back == sorted(bars, key=lambda bar: (bar.symbol, bar.start))
    assert write_bars(back) == text
