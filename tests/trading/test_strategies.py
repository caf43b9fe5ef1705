"""Strategies: hand-made series with known answers, no look-ahead on real prices, parameter errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oshal_trading.model import Bar, Side
from oshal_trading.strategies import STRATEGIES, StrategyError, signal_id, signals

# Real daily bars: Apple (AAPL), 2015-02-17 .. 2015-08-24, from plotly/datasets (MIT licence),
# finance-charts-apple.csv at commit 5e263449ee4735f28b2b5cde5ca63ba37dd39519; columns Date, AAPL.Open, AAPL.High,
# AAPL.Low, AAPL.Close, AAPL.Volume, prices rounded half-even to cents. Rows: date open high low close volume.
AAPL_2015 = """
2015-02-17 12749 12888 12692 12783 63152400
2015-02-18 12763 12878 12745 12872 44891700
2015-02-19 12848 12903 12833 12845 37362400
2015-02-20 12862 12950 12805 12950 48948400
2015-02-23 13002 13300 12966 13300 70974100
2015-02-24 13294 13360 13117 13217 69228100
2015-02-25 13156 13160 12815 12879 74711700
2015-02-26 12879 13087 12661 13042 91287500
2015-02-27 13000 13057 12824 12846 62014800
2015-03-02 12925 13028 12830 12909 48096700
2015-03-03 12896 12952 12809 12936 37816300
2015-03-04 12910 12956 12832 12854 31666300
2015-03-05 12858 12875 12576 12641 56517100
2015-03-06 12840 12937 12626 12660 72842100
2015-03-09 12796 12957 12506 12714 88528500
2015-03-10 12641 12722 12380 12451 68856600
2015-03-11 12475 12477 12211 12224 68939000
2015-03-12 12231 12490 12163 12445 48362700
2015-03-13 12440 12540 12258 12359 51827300
2015-03-16 12388 12495 12287 12495 35874300
2015-03-17 12590 12732 12565 12704 51023100
2015-03-18 12700 12916 12637 12847 65270900
2015-03-19 12875 12925 12740 12750 45809500
2015-03-20 12825 12840 12516 12590 68695100
2015-03-23 12712 12785 12652 12721 37709700
2015-03-24 12723 12804 12656 12669 32842300
2015-03-25 12654 12682 12338 12338 51655200
2015-03-26 12276 12488 12260 12424 47572900
2015-03-27 12457 12470 12291 12325 39546200
2015-03-30 12405 12640 12400 12637 47099700
2015-03-31 12609 12649 12436 12443 42090600
2015-04-01 12482 12512 12310 12425 40621400
2015-04-02 12503 12556 12419 12532 32220100
2015-04-06 12447 12751 12433 12735 37194000
2015-04-07 12764 12812 12598 12601 35012300
2015-04-08 12585 12640 12497 12560 37329200
2015-04-09 12585 12658 12466 12656 32484000
2015-04-10 12595 12721 12526 12710 40188000
2015-04-13 12837 12857 12661 12685 36365100
2015-04-14 12700 12729 12591 12630 25524600
2015-04-15 12641 12713 12601 12678 28970400
2015-04-16 12628 12710 12611 12617 28369000
2015-04-17 12555 12614 12446 12475 51957000
2015-04-20 12557 12812 12517 12760 47054300
2015-04-21 12810 12820 12667 12691 32435100
2015-04-22 12699 12887 12632 12862 37654500
2015-04-23 12830 13042 12814 12967 45770900
2015-04-24 13049 13063 12923 13028 44525900
2015-04-27 13231 13313 13115 13265 96954200
2015-04-28 13446 13454 12957 13056 118924000
2015-04-29 13016 13159 12830 12864 63386100
2015-04-30 12864 12864 12458 12515 83195400
2015-05-01 12610 13013 12530 12895 58512600
2015-05-04 12950 13057 12826 12870 50988300
2015-05-05 12815 12845 12578 12580 49271400
2015-05-06 12656 12675 12336 12501 72141000
2015-05-07 12477 12608 12402 12526 43940900
2015-05-08 12668 12762 12611 12762 55550400
2015-05-11 12739 12756 12563 12632 42035800
2015-05-12 12560 12688 12482 12587 48160000
2015-05-13 12615 12719 12587 12601 34694200
2015-05-14 12741 12895 12716 12895 45203500
2015-05-15 12907 12949 12821 12877 38208000
2015-05-18 12838 13072 12836 13019 50882900
2015-05-19 13069 13088 12964 13007 44633200
2015-05-20 13000 13098 12934 13006 36454900
2015-05-21 13007 13163 12983 13139 39730400
2015-05-22 13160 13297 13140 13254 45596000
2015-05-26 13260 13291 12912 12962 70697600
2015-05-27 13034 13226 13005 13204 45833200
2015-05-28 13186 13195 13110 13178 30733300
2015-05-29 13123 13145 12990 13028 50884500
2015-06-01 13028 13139 13005 13054 32112800
2015-06-02 12986 13066 12932 12996 33667600
2015-06-03 13066 13094 12990 13012 30889400
2015-06-04 12958 13058 12891 12936 38450100
2015-06-05 12950 12969 12836 12865 35626800
2015-06-08 12890 12921 12683 12780 52674800
2015-06-09 12670 12808 12562 12742 56075400
2015-06-10 12792 12934 12785 12888 39087300
2015-06-11 12918 13018 12848 12859 35390900
2015-06-12 12819 12833 12711 12717 36886200
2015-06-15 12610 12724 12571 12692 43988900
2015-06-16 12703 12785 12637 12760 31494100
2015-06-17 12772 12788 12674 12730 32918100
2015-06-18 12723 12831 12722 12788 35407200
2015-06-19 12771 12782 12640 12660 54716900
2015-06-22 12749 12806 12708 12761 34039300
2015-06-23 12748 12761 12688 12703 30268900
2015-06-24 12721 12980 12712 12811 55280900
2015-06-25 12886 12920 12750 12750 31938100
2015-06-26 12767 12799 12651 12675 44066800
2015-06-29 12546 12647 12448 12453 49161400
2015-06-30 12557 12612 12486 12543 44370700
2015-07-01 12690 12694 12599 12660 30238800
2015-07-02 12643 12669 12577 12644 27211000
2015-07-06 12494 12623 12485 12600 28060400
2015-07-07 12589 12615 12377 12569 46946800
2015-07-08 12448 12464 12254 12257 60761600
2015-07-09 12385 12406 11922 12007 77821600
2015-07-10 12194 12385 12121 12328 61354500
2015-07-13 12503 12576 12432 12566 41440500
2015-07-14 12604 12637 12504 12561 31768100
2015-07-15 12572 12715 12558 12682 33649200
2015-07-16 12774 12857 12735 12851 36222400
2015-07-17 12908 12962 12831 12962 46164700
2015-07-20 13097 13297 13070 13207 58900200
2015-07-21 13285 13292 13032 13075 76756400
2015-07-22 12199 12550 12199 12522 115450600
2015-07-23 12620 12709 12506 12516 50999500
2015-07-24 12532 12574 12390 12450 42162300
2015-07-27 12309 12361 12212 12277 44455500
2015-07-28 12338 12391 12255 12338 33618100
2015-07-29 12315 12350 12227 12299 37011700
2015-07-30 12232 12257 12171 12237 33628300
2015-07-31 12260 12264 12091 12130 42885000
2015-08-03 12150 12257 11752 11844 69976000
2015-08-04 11742 11770 11325 11464 124138600
2015-08-05 11295 11744 11210 11540 99312600
2015-08-06 11597 11650 11412 11513 52903000
2015-08-07 11458 11625 11450 11552 38670400
2015-08-10 11653 11999 11653 11972 54951600
2015-08-11 11781 11818 11333 11349 97082800
2015-08-12 11253 11542 10963 11524 101217500
2015-08-13 11604 11640 11454 11515 48535800
2015-08-14 11432 11631 11401 11596 42929500
2015-08-17 11604 11765 11550 11716 40884700
2015-08-18 11643 11744 11601 11650 34560700
2015-08-19 11610 11652 11468 11501 47445700
2015-08-20 11408 11435 11163 11265 68501600
2015-08-21 11043 11190 10565 10576 128275500
2015-08-24 9487 10880 9200 10312 162206300
"""

DAY = timedelta(days=1)
T0 = datetime(2024, 1, 1, tzinfo=UTC)


def aapl() -> list[Bar]:
    bars = []
    for line in AAPL_2015.strip().splitlines():
        day, o, h, lo, c, v = line.split()
        start = datetime.fromisoformat(day).replace(tzinfo=UTC)
        bars.append(Bar("AAPL", "1d", start, int(o), int(h), int(lo), int(c), int(v)))
    return bars


def series(closes: list[int], symbol: str = "TEST") -> list[Bar]:
    return [Bar(symbol, "1d", T0 + i * DAY, c, c, c, c, 1000) for i, c in enumerate(closes)]


PARAMS = {
    "sma-cross": {"fast": 5, "slow": 20},
    "mean-reversion": {"window": 10, "k": 1.5},
    "momentum": {"lookback": 10, "buy_above": 0.03, "sell_below": -0.03},
}


def test_sma_cross_finds_the_crosses_of_a_hand_made_series() -> None:
    # fast=2, slow=3: the SMAs are equal at bars 2, 3 and 6 (no side), fast above at 4-5, below at 7-9, above at 10-11.
    bars = series([100, 100, 100, 100, 130, 160, 100, 70, 40, 40, 100, 160])
    found = signals("sma-cross", bars, {"fast": 2, "slow": 3})
    assert [(s.side, s.at) for s in found] == [(Side.SELL, bars[7].start + DAY), (Side.BUY, bars[10].start + DAY)]
    sell, buy = found
    assert sell.inputs["fast_sma_cents"] == "85.00"
    assert sell.inputs["slow_sma_cents"] == "110.00"
    assert sell.inputs["previous_bar"] == bars[5].start.isoformat()  # the touch at bar 6 is not a side
    assert sell.inputs["bars"] == {"timeframe": "1d", "from": bars[3].start.isoformat(),
                                   "to": bars[7].start.isoformat(), "count": 5}
    assert buy.inputs["fast_sma_cents"] == "70.00"
    assert buy.inputs["slow_sma_cents"] == "60.00"
    assert buy.inputs["params"] == {"fast": 2, "slow": 3}
    assert "crossed below" in sell.rationale and "crossed above" in buy.rationale
    assert all(s.strategy == "sma-cross" and s.horizon_bars == 3 and 0 <= s.strength <= 1 for s in found)


def test_sma_cross_signals_once_per_cross_not_per_bar() -> None:
    found = signals("sma-cross", series([100] * 3 + list(range(101, 140))), {"fast": 2, "slow": 3})
    assert found == []  # fast above slow from its first side onwards: no cross


def test_mean_reversion_enters_only_strictly_beyond_the_band() -> None:
    # window 2: the z-score of the second close is exactly ±1 whenever the two closes differ.
    bars = series([100, 90, 90, 100])
    assert signals("mean-reversion", bars, {"window": 2, "k": 1}) == []
    found = signals("mean-reversion", bars, {"window": 2, "k": "0.99"})
    assert [(s.side, s.at) for s in found] == [(Side.BUY, bars[1].start + DAY), (Side.SELL, bars[3].start + DAY)]
    assert found[0].inputs["z"] == -1.0 and found[1].inputs["z"] == 1.0
    assert found[0].inputs["mean_cents"] == "95.00"


def test_mean_reversion_a_collapse_below_a_steady_mean_is_a_buy() -> None:
    found = signals("mean-reversion", series([100] * 19 + [50]), {"window": 20, "k": 2})
    assert len(found) == 1 and found[0].side is Side.BUY
    assert found[0].inputs["z"] == pytest.approx(-4.358899, abs=1e-6)  # -950 / sqrt(47500)
    assert found[0].inputs["close_cents"] == 50


def test_momentum_thresholds_are_strict_and_fire_on_entry() -> None:
    params = {"lookback": 1, "buy_above": 0.05, "sell_below": -0.05}
    assert signals("momentum", series([100, 105, 100, 95]), params) == []  # +5%, -4.8%, -5%: none beyond
    found = signals("momentum", series([100, 106, 113, 120, 100, 100]), params)
    # 100→106 enters (+6%), 106→113 and 113→120 stay above (no new signal), 120→100 (-16.7%) is a sell.
    assert [(s.side, s.inputs["rate_of_change"]) for s in found] == [(Side.BUY, 0.06), (Side.SELL, -0.166667)]
    assert found[0].inputs["reference_close_cents"] == 100


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_real_prices_give_signals_and_never_look_ahead(name: str) -> None:
    bars = aapl()
    full = signals(name, bars, PARAMS[name])
    assert full, f"{name} found nothing in half a year of AAPL; the test would prove nothing"
    for cut in range(1, len(bars) + 1):
        seen = bars[cut - 1].start + DAY
        assert signals(name, bars[:cut], PARAMS[name]) == [s for s in full if s.at <= seen], f"cut at {cut}"
    for s in full:
        assert s.inputs["bars"]["to"] == (s.at - DAY).isoformat()
        assert s.inputs["bars"]["from"] <= s.inputs["bars"]["to"]
        assert s.symbol == "AAPL" and s.rationale.startswith("AAPL: ")


@settings(max_examples=60, deadline=None)
@given(
    name=st.sampled_from(sorted(STRATEGIES)),
    closes=st.lists(st.integers(1, 500), min_size=25, max_size=60),
    tail=st.lists(st.integers(1, 500), min_size=1, max_size=20),
    cut=st.integers(1, 60),
)
def test_changing_later_bars_never_changes_an_earlier_signal(
    name: str, closes: list[int], tail: list[int], cut: int
) -> None:
    cut = min(cut, len(closes))
    original = series(closes)
    changed = series(closes[:cut] + tail)
    last_shared = original[cut - 1].start + DAY
    assert [s for s in signals(name, original, PARAMS[name]) if s.at <= last_shared] == [
        s for s in signals(name, changed, PARAMS[name]) if s.at <= last_shared
    ]


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_signals_are_deterministic_and_ids_unique(name: str) -> None:
    first, second = signals(name, aapl(), PARAMS[name]), signals(name, aapl(), PARAMS[name])
    assert first == second
    assert len({s.id for s in first}) == len(first)
    assert all(s.id.startswith("sig_") for s in first)


def test_signal_ids_depend_on_strategy_symbol_bar_and_parameters() -> None:
    start = T0
    base = signal_id("sma-cross", "AAPL", "1d", start, {"fast": 2, "slow": 3})
    assert base == signal_id("sma-cross", "AAPL", "1d", start, {"slow": 3, "fast": 2})
    assert base != signal_id("sma-cross", "MSFT", "1d", start, {"fast": 2, "slow": 3})
    assert base != signal_id("sma-cross", "AAPL", "1d", start + DAY, {"fast": 2, "slow": 3})
    assert base != signal_id("sma-cross", "AAPL", "1d", start, {"fast": 2, "slow": 4})
    assert base != signal_id("momentum", "AAPL", "1d", start, {"fast": 2, "slow": 3})


def test_several_symbols_are_run_apart_and_merged_in_time_order() -> None:
    a = series([100, 100, 100, 100, 130, 160, 100, 70, 40, 40, 100, 160], "AAA")
    b = series([100, 100, 100, 130, 160, 100, 70, 40, 40, 100, 160, 160], "BBB")
    params = {"fast": 2, "slow": 3}
    merged = signals("sma-cross", b + a, params)
    alone = signals("sma-cross", a, params) + signals("sma-cross", b, params)
    assert merged == sorted(alone, key=lambda s: (s.at, s.symbol))
    assert {s.symbol for s in merged} == {"AAA", "BBB"}


def test_defaults_apply_when_no_parameters_are_given() -> None:
    assert signals("sma-cross", aapl()) == signals("sma-cross", aapl(), {"fast": 10, "slow": 30})


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("sma-cross", {"fast": 30, "slow": 10}, "fast (30) must be shorter than slow (10)"),
        ("sma-cross", {"fast": 5, "slow": 5}, "must be shorter than slow"),
        ("sma-cross", {"fast": 0}, "fast (bars in the fast moving average) must be at least 1, got 0"),
        ("sma-cross", {"fast": 2.5}, "fast (bars in the fast moving average) must be a whole number, got 2.5"),
        ("sma-cross", {"fast": True}, "must be a whole number, got True"),
        ("sma-cross", {"fast": "ten"}, "must be a whole number, got 'ten'"),
        ("sma-cross", {"speed": 3}, "unknown parameter(s) speed; it takes fast, slow"),
        ("mean-reversion", {"window": 1}, "standard deviation) must be at least 2, got 1"),
        ("mean-reversion", {"k": 0}, "k must be greater than 0, got 0"),
        ("mean-reversion", {"k": "nan"}, "must be a finite number, got 'nan'"),
        ("mean-reversion", {"k": float("inf")}, "must be a finite number"),
        ("mean-reversion", {"k": [2]}, "must be a number, got [2]"),
        ("momentum", {"buy_above": -0.1}, "sell_below (-0.05) must be lower than buy_above (-0.1)"),
        ("momentum", {"lookback": 0}, "lookback (bars back to the reference close) must be at least 1"),
    ],
)
def test_bad_parameters_are_refused_with_what_to_change(name: str, params: dict[str, object], message: str) -> None:
    with pytest.raises(StrategyError) as raised:
        signals(name, aapl(), params)
    assert message in str(raised.value)


def test_an_unknown_strategy_names_the_known_ones() -> None:
    known = "mean-reversion, momentum, sma-cross"
    with pytest.raises(StrategyError, match=f"unknown strategy 'rsi'; choose one of {known}"):
        signals("rsi", aapl())


def test_bars_it_cannot_read_are_refused() -> None:
    bars = series([100, 101, 102])
    with pytest.raises(StrategyError, match="not in strictly increasing time order"):
        signals("momentum", [bars[0], bars[2], bars[1]])
    with pytest.raises(StrategyError, match="not in strictly increasing time order"):
        signals("momentum", [bars[0], bars[0]])
    hourly = Bar("TEST", "1h", T0 + 10 * DAY, 100, 100, 100, 100, 1)
    with pytest.raises(StrategyError, match=r"mix timeframes \['1d', '1h'\]"):
        signals("momentum", [*bars, hourly])
    naive = Bar("TEST", "1d", datetime(2024, 1, 1), 100, 100, 100, 100, 1)
    with pytest.raises(StrategyError, match="no UTC time zone"):
        signals("momentum", [naive])
    odd = Bar("TEST", "1w", T0, 100, 100, 100, 100, 1)
    with pytest.raises(StrategyError, match="timeframe '1w' is not understood"):
        signals("momentum", [odd])
