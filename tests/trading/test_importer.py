"""Importing the files people have: real CSV layouts (verbatim rows from plotly/datasets, MIT), Parquet, and the
clear refusals. Every source row below is copied unchanged from the file it names."""

from __future__ import annotations

import sys
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from oshal_trading.bars import BarDataError, load_bundled, read_bars_file, write_bars
from oshal_trading.importer import read_csv, read_parquet
from oshal_trading.model import Bar

# plotly/datasets dash-stock-ticker-demo.csv (commit 4e10878c): Quandl WIKI layout, several symbols, newest first,
# an unnamed index column, adjusted columns, CRLF line ends.
QUANDL_LAYOUT = (
    ",Date,Open,High,Low,Close,Volume,ExDividend,SplitRatio,AdjOpen,AdjHigh,AdjLow,AdjClose,AdjVolume,Stock\r\n"
    "751,2015-01-05,108.29,108.65,105.41,106.25,64285491.0,0.0,1.0,102.8759528909,103.21795439649,"
    "100.13994084615,100.9379443592,64285491.0,AAPL\r\n"
    "752,2015-01-02,111.39,111.44,107.35,109.33,53204626.0,0.0,1.0,105.82096585573,105.86846606484,"
    "101.98294895962,103.86395724039,53204626.0,AAPL\r\n"
    "752,2015-01-05,214.55,216.5,207.1626,210.09,5368477.0,0.0,1.0,214.55,216.5,207.1626,210.09,5368477.0,TSLA\r\n"
    "753,2015-01-02,222.87,223.25,213.26,219.31,4764443.0,0.0,1.0,222.87,223.25,213.26,219.31,4764443.0,TSLA\r\n"
)

# plotly/datasets finance-charts-apple.csv: the symbol is in the column names, six decimals, extra columns.
SYMBOL_PREFIXED_LAYOUT = (
    "Date,AAPL.Open,AAPL.High,AAPL.Low,AAPL.Close,AAPL.Volume,AAPL.Adjusted,dn,mavg,up,direction\n"
    "2015-02-17,127.489998,128.880005,126.919998,127.830002,63152400,122.905254,106.7410523,117.9276669,"
    "129.1142814,Increasing\n"
    "2015-02-18,127.629997,128.779999,127.449997,128.720001,44891700,123.760965,107.842423,118.9403335,"
    "130.0382439,Increasing\n"
    "2016-01-04,102.610001,105.370003,102,105.349998,67649400,102.612183,101.9580427,110.7301667,119.5022907,"
    "Increasing\n"
)

# plotly/datasets tesla-stock-price.csv: quoted lower-case columns in another order, slashed dates, four decimals,
# and a first row that is an intraday snapshot ("11:34", a volume with thousands separators).
TESLA_HEADER = '"date","close","volume","open","high","low"\n'
TESLA_SNAPSHOT_ROW = '"11:34","270.49","4,787,699","264.50","273.88","262.24"\n'
TESLA_ROWS = (
    '"2015/10/16","227.0100","4327574.0000","223.0400","230.4805","222.8700"\n'
    '"2015/10/15","221.3100","2835920.0000","216.4300","221.7300","213.7000"\n'
)


def day(text: str) -> datetime:
    return datetime.combine(date.fromisoformat(text), datetime.min.time(), tzinfo=UTC)


def write(tmp_path: Path, text: str, name: str = "bars.csv", encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def refusal(path: Path, symbol: str | None = None, timeframe: str = "1d") -> list[str]:
    with pytest.raises(BarDataError) as caught:
        read_csv(path, symbol=symbol, timeframe=timeframe)
    return [str(problem).removeprefix(f"{path}") for problem in caught.value.problems]


def test_the_quandl_layout_imports_one_symbol_and_says_what_it_left_out(tmp_path: Path) -> None:
    path = write(tmp_path, QUANDL_LAYOUT)
    result = read_csv(path, symbol="TSLA")
    assert result.bars == [
        Bar("TSLA", "1d", day("2015-01-02"), 22287, 22325, 21326, 21931, 4764443),
        Bar("TSLA", "1d", day("2015-01-05"), 21455, 21650, 20716, 21009, 5368477),  # 207.1626 -> 207.16
    ]
    assert result.notes == (
        "ignored adjusted-price columns ['AdjOpen', 'AdjHigh', 'AdjLow', 'AdjClose', 'AdjVolume']: "
        "the desk uses the prices as traded",
        "ignored columns ['(unnamed)', 'ExDividend', 'SplitRatio']",
        "kept the rows of TSLA; skipped the rows of AAPL (2)",
    )


def test_the_quandl_layout_without_a_symbol_imports_every_symbol_in_it(tmp_path: Path) -> None:
    result = read_csv(write(tmp_path, QUANDL_LAYOUT))
    assert result.symbols() == ("AAPL", "TSLA")
    assert [(bar.symbol, bar.start) for bar in result.bars] == [
        ("AAPL", day("2015-01-02")),
        ("AAPL", day("2015-01-05")),
        ("TSLA", day("2015-01-02")),
        ("TSLA", day("2015-01-05")),
    ]
    # the same rows as the bundled series, which were made from this file
    assert result.bars[:2] == load_bundled(["AAPL"])["AAPL"][:2]


def test_a_symbol_named_in_the_columns_is_the_bars_symbol(tmp_path: Path) -> None:
    result = read_csv(write(tmp_path, SYMBOL_PREFIXED_LAYOUT))
    assert result.bars == [
        Bar("AAPL", "1d", day("2015-02-17"), 12749, 12888, 12692, 12783, 63152400),
        Bar("AAPL", "1d", day("2015-02-18"), 12763, 12878, 12745, 12872, 44891700),
        Bar("AAPL", "1d", day("2016-01-04"), 10261, 10537, 10200, 10535, 67649400),
    ]
    assert result.notes == (
        "ignored adjusted-price columns ['AAPL.Adjusted']: the desk uses the prices as traded",
        "ignored columns ['dn', 'mavg', 'up', 'direction']",
    )
    renamed = read_csv(write(tmp_path, SYMBOL_PREFIXED_LAYOUT), symbol="AAPL.O")
    assert {bar.symbol for bar in renamed.bars} == {"AAPL.O"}
    assert "the columns are named for AAPL; the bars are imported as AAPL.O" in renamed.notes


def test_a_quoted_file_in_another_column_order_with_slashed_dates_imports(tmp_path: Path) -> None:
    result = read_csv(write(tmp_path, TESLA_HEADER + TESLA_ROWS), symbol="TSLA")
    assert result.bars == [
        Bar("TSLA", "1d", day("2015-10-15"), 21643, 22173, 21370, 22131, 2835920),
        Bar("TSLA", "1d", day("2015-10-16"), 22304, 23048, 22287, 22701, 4327574),  # 230.4805 -> 230.48
    ]
    assert result.notes == ()


def test_a_snapshot_row_among_daily_bars_is_refused_by_line_and_field(tmp_path: Path) -> None:
    path = write(tmp_path, TESLA_HEADER + TESLA_SNAPSHOT_ROW + TESLA_ROWS)
    assert refusal(path, symbol="TSLA") == [
        ":2: date: '11:34' is not a date (YYYY-MM-DD) or ISO 8601 time (2024-01-02T14:30:00Z)",
        ":2: volume: '4,787,699' is not a number",
    ]


def test_other_common_spellings_of_the_time(tmp_path: Path) -> None:
    # TSLA's bundled 2015-01-02 bar, as an exchange API (epoch milliseconds) and as pandas (naive midnight) write it
    bundled = load_bundled(["TSLA"])["TSLA"][0]
    for stamp in ("1420156800000", "1420156800", "2015-01-02 00:00:00", "2015-01-02T00:00:00Z", "20150102"):
        text = f"Timestamp,O,H,L,C,Vol\n{stamp},222.87,223.25,213.26,219.31,4764443\n"
        assert read_csv(write(tmp_path, text), symbol="TSLA").bars == [bundled], stamp
    hourly = "timestamp,open,high,low,close,volume\n1704204000000,1,2,1,1,5\n"
    assert read_csv(write(tmp_path, hourly), symbol="X", timeframe="1h").bars[0].start == datetime(
        2024, 1, 2, 14, tzinfo=UTC
    )
    assert refusal(write(tmp_path, "timestamp,open,high,low,close,volume\n1704204000123,1,2,1,1,5\n"), "X", "1h") == [
        ":2: date: '2024-01-02T14:00:00.123000Z' does not start a 1h bar (in UTC)"
    ]
    assert refusal(write(tmp_path, "date,open,high,low,close,volume\n2024-01-02 14:00:00,1,2,1,1,5\n"), "X", "1h") == [
        ":2: date: '2024-01-02 14:00:00' has no UTC offset: write it like 2024-01-02T14:30:00Z"
    ]


def test_a_byte_order_mark_from_a_spreadsheet_is_not_part_of_the_first_column(tmp_path: Path) -> None:
    path = write(tmp_path, "Date,Open,High,Low,Close,Volume\n2015-01-02,1,2,1,1,0\n", encoding="utf-8-sig")
    assert read_csv(path, symbol="X").bars[0].start == day("2015-01-02")


def test_a_file_without_a_symbol_needs_one_named(tmp_path: Path) -> None:
    path = write(tmp_path, TESLA_HEADER + TESLA_ROWS)
    assert refusal(path) == [":1: symbol: the file has no symbol column: say which symbol it holds (--symbol)"]


def test_missing_and_doubled_columns_are_named(tmp_path: Path) -> None:
    assert refusal(write(tmp_path, "Date,Open,High,Close\n"), symbol="X") == [
        ":1: low: no column for it (looked for l, low, any case)",
        ":1: volume: no column for it (looked for v, vol, volume, any case)",
    ]
    assert refusal(write(tmp_path, "Date,Open,High,Low,Close,close,Volume\n"), symbol="X") == [
        ":1: close: columns 'Close' and 'close' both hold it"
    ]
    assert refusal(write(tmp_path, "Date,A.Open,B.High,Low,Close,Volume\n")) == [
        ":1: header: columns are named for several symbols: ['A', 'B']"
    ]


def test_rows_of_the_wrong_length_an_empty_file_and_no_bars(tmp_path: Path) -> None:
    assert refusal(write(tmp_path, "Date,Open,High,Low,Close,Volume\n2015-01-02,1,2,1\n"), symbol="X") == [
        ":2: row: has 4 fields, the header has 6"
    ]
    assert refusal(write(tmp_path, "")) == [": file: is empty: expected a header row and bars"]
    assert refusal(write(tmp_path, QUANDL_LAYOUT), symbol="MSFT") == [": file: holds no bars for MSFT"]


def test_a_bad_timeframe_is_refused_before_reading(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="timeframe '1w' is not understood"):
        read_csv(write(tmp_path, QUANDL_LAYOUT), timeframe="1w")


def test_without_pyarrow_parquet_says_how_to_install_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # what an environment without pyarrow looks like to import
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(RuntimeError, match=r"reading Parquet needs pyarrow, which is not installed: run `pip install"):
        read_parquet(tmp_path / "bars.parquet", symbol="AAPL")


def test_parquet_with_typed_columns_imports_like_csv(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    parquet = pytest.importorskip("pyarrow.parquet")
    bars = load_bundled(["GOOGL"])["GOOGL"][:20]
    table = pa.table(
        {
            "Date": pa.array([bar.start.date() for bar in bars], pa.date32()),
            "Open": pa.array([bar.open / 100 for bar in bars], pa.float64()),
            "High": pa.array([bar.high / 100 for bar in bars], pa.float64()),
            "Low": pa.array([bar.low / 100 for bar in bars], pa.float64()),
            "Close": pa.array([bar.close / 100 for bar in bars], pa.float64()),
            "Adj Close": pa.array([bar.close / 100 for bar in bars], pa.float64()),
            "Volume": pa.array([bar.volume for bar in bars], pa.int64()),
        }
    )
    path = tmp_path / "googl.parquet"
    parquet.write_table(table, path)
    result = read_parquet(path, symbol="GOOGL")
    assert result.bars == bars
    assert result.notes == ("ignored adjusted-price columns ['Adj Close']: the desk uses the prices as traded",)

    stamped = pa.table(
        {
            "timestamp": pa.array([bar.start for bar in bars[:2]], pa.timestamp("ms", tz="UTC")),
            "open": [str(bar.open / 100) for bar in bars[:2]],
            "high": [bar.high / 100 for bar in bars[:2]],
            "low": [bar.low / 100 for bar in bars[:2]],
            "close": [bar.close / 100 for bar in bars[:2]],
            "volume": [bar.volume for bar in bars[:2]],
            "symbol": ["GOOGL", None],
        }
    )
    parquet.write_table(stamped, tmp_path / "stamped.parquet")
    with pytest.raises(BarDataError) as caught:
        read_parquet(tmp_path / "stamped.parquet")
    problems = [str(problem) for problem in caught.value.problems]
    assert problems == [f"{tmp_path / 'stamped.parquet'}:2: symbol: is empty"]


def test_the_desks_own_format_imports_unchanged(tmp_path: Path) -> None:
    bundled = load_bundled(["COKE", "YHOO"])
    path = write(tmp_path, write_bars(bundled["COKE"] + bundled["YHOO"]))
    result = read_csv(path)
    assert result.bars == bundled["COKE"] + bundled["YHOO"]
    assert result.notes == ()
    assert read_bars_file(path) == result.bars
