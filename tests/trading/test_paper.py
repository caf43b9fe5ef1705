"""The paper broker: fills inside the bar, slippage against the trader, limit semantics, size against volume,
fees rounded up per order, day orders, idempotent client order ids."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oshal_trading.model import Bar, Order, OrderType, Side
from oshal_trading.paper import (
    BadBar,
    ClientOrderIdConflict,
    FeeSchedule,
    OrderRefused,
    OrderStatus,
    PaperBroker,
    PaperConfig,
    UnknownOrder,
)

# Real daily bars, unadjusted, in cents: Quandl WIKI end-of-day prices as published in plotly/datasets
# `dash-stock-ticker-demo.csv` (MIT; commit 4e10878cf77d0d034029d44d53a28c0f6d565380).
AAPL = [  # date, open, high, low, close, volume
    ("2015-01-02", 11139, 11144, 10735, 10933, 53204626),
    ("2015-01-05", 10829, 10865, 10541, 10625, 64285491),
    ("2015-01-06", 10654, 10743, 10463, 10626, 65797116),
    ("2015-01-07", 10720, 10820, 10670, 10775, 40105934),
    ("2015-01-08", 10923, 11215, 10870, 11189, 59364547),
    ("2015-01-09", 11267, 11325, 11021, 11201, 53315099),
    ("2015-01-12", 11260, 11263, 10880, 10925, 49650790),
    ("2015-01-13", 11143, 11280, 10891, 11022, 67091928),
]
TSLA = [
    ("2015-01-02", 22287, 22325, 21326, 21931, 4764443),
    ("2015-01-05", 21455, 21650, 20716, 21009, 5368477),
    ("2015-01-06", 21006, 21420, 20421, 21128, 6261936),
]
OPEN_UTC = timedelta(hours=14, minutes=30)  # 09:30 New York in January


def day_bar(symbol: str, row: tuple[str, int, int, int, int, int]) -> Bar:
    day, o, h, low, c, v = row
    start = datetime.fromisoformat(day).replace(tzinfo=UTC) + OPEN_UTC
    return Bar(symbol, "1d", start, o, h, low, c, v)


def aapl(i: int) -> Bar:
    return day_bar("AAPL", AAPL[i])


def order(coid: str, side: Side = Side.BUY, quantity: int = 100, symbol: str = "AAPL", *,
          limit: int | None = None, created_at: datetime | None = None) -> Order:
    return Order(client_order_id=coid, signal_id=f"sig-{coid}", symbol=symbol, side=side, quantity=quantity,
                 type=OrderType.LIMIT if limit is not None else OrderType.MARKET, limit_price=limit,
                 created_at=created_at)


# --- market orders and slippage ------------------------------------------------------------------------------


def test_market_orders_fill_at_the_next_open_moved_against_the_trader() -> None:
    broker = PaperBroker(PaperConfig(slippage_bps=5))
    broker.submit(order("b1", Side.BUY))
    broker.submit(order("s1", Side.SELL))
    fills = broker.on_bar(aapl(1))
    # open 10829: a buy pays 10829 x 1.0005 = 10834.41 -> 10835 (up), a sell gets 10823.59 -> 10823 (down)
    assert [(f.client_order_id, f.side, f.quantity, f.price) for f in fills] == [
        ("b1", Side.BUY, 100, 10835), ("s1", Side.SELL, 100, 10823)]
    assert all(f.bar_start == aapl(1).start and f.at == aapl(1).start for f in fills)
    assert broker.open_orders() == []
    assert broker.order("b1").status is OrderStatus.FILLED


def test_no_slippage_fills_at_the_open_exactly() -> None:
    broker = PaperBroker()
    broker.submit(order("b1"))
    assert [f.price for f in broker.on_bar(aapl(2))] == [10654]


def test_slippage_never_pushes_a_fill_outside_the_bar() -> None:
    broker = PaperBroker(PaperConfig(slippage_bps=500))
    broker.submit(order("b1", Side.BUY))
    broker.submit(order("s1", Side.SELL))
    bar = aapl(0)  # open 11139: +5% is 11695.95, above the high 11144; -5% is 10582.05, below the low 10735
    assert [f.price for f in broker.on_bar(bar)] == [bar.high, bar.low]


def test_an_order_never_fills_on_a_bar_that_starts_before_it_was_created() -> None:
    broker = PaperBroker()
    created = aapl(1).start + timedelta(hours=7)  # after the 2015-01-05 close
    broker.submit(order("b1", created_at=created))
    assert broker.on_bar(aapl(1)) == []
    assert broker.order("b1").day is None
    fills = broker.on_bar(aapl(2))
    assert [(f.price, f.bar_start) for f in fills] == [(aapl(2).open, aapl(2).start)]


# --- limit orders --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("side", "limit", "price"), [
    (Side.BUY, 10800, 10800),    # low 10541 <= 10800 < open 10829: at the limit
    (Side.BUY, 11000, 10829),    # above the open: at the open
    (Side.BUY, 10541, 10541),    # touching the low fills
    (Side.BUY, 10540, None),     # never traded that low
    (Side.SELL, 10600, 10829),   # below the open: at the open
    (Side.SELL, 10850, 10850),   # open 10829 < 10850 <= high 10865: at the limit
    (Side.SELL, 10865, 10865),   # touching the high fills
    (Side.SELL, 10866, None),    # never traded that high
])
def test_a_limit_fills_only_if_the_bar_trades_through_it(side: Side, limit: int, price: int | None) -> None:
    broker = PaperBroker(PaperConfig(slippage_bps=50))  # a limit takes no slippage
    broker.submit(order("l1", side, limit=limit))
    fills = broker.on_bar(aapl(1))
    assert [f.price for f in fills] == ([] if price is None else [price])
    assert broker.order("l1").status is (OrderStatus.OPEN if price is None else OrderStatus.FILLED)


def test_an_unfilled_limit_expires_when_its_day_is_over() -> None:
    broker = PaperBroker()
    broker.submit(order("l1", limit=10000))
    assert broker.on_bar(aapl(1)) == []
    assert broker.order("l1").day == date(2015, 1, 5)
    # the next day's bar trades through 10000? no (low 10463), but the order is gone before it is looked at
    assert broker.on_bar(aapl(2)) == []
    assert broker.order("l1").status is OrderStatus.EXPIRED
    assert broker.open_orders() == []


# --- size against volume -------------------------------------------------------------------------------------


def test_a_large_order_fills_partly_and_the_rest_expires_with_its_day() -> None:
    broker = PaperBroker(PaperConfig(max_participation=Decimal("0.0001")))
    broker.submit(order("big", quantity=10_000))
    fills = broker.on_bar(aapl(1))
    assert [f.quantity for f in fills] == [6428]  # 64,285,491 x 0.0001 = 6428.55, rounded down
    state = broker.order("big")
    assert (state.status, state.filled_quantity, state.remaining) == (OrderStatus.OPEN, 6428, 3572)
    assert broker.open_orders() == [state]
    assert broker.on_bar(aapl(2)) == []  # a new session: the remainder is not carried over
    assert broker.order("big").status is OrderStatus.EXPIRED
    assert broker.order("big").remaining == 0


def minute_bar(minute: int, volume: int) -> Bar:
    # Hand-made minute bars of one session: the daily data set has no intraday bars.
    start = datetime(2015, 1, 5, 14, 30, tzinfo=UTC) + timedelta(minutes=minute)
    return Bar("AAPL", "1m", start, 10829, 10840, 10820, 10830, volume)


def test_within_a_day_the_remainder_keeps_filling_on_later_bars_until_end_day() -> None:
    broker = PaperBroker(PaperConfig(max_participation=Decimal("0.1")))
    broker.submit(order("big", quantity=500))
    assert [f.quantity for f in broker.on_bar(minute_bar(0, 2_000))] == [200]
    assert [f.quantity for f in broker.on_bar(minute_bar(1, 999))] == [99]
    assert broker.on_bar(minute_bar(2, 9)) == []  # 0.9 of a share is no share
    assert [f.quantity for f in broker.on_bar(minute_bar(3, 1_500))] == [150]
    expired = broker.end_day(date(2015, 1, 5))
    assert [(s.order.client_order_id, s.status, s.filled_quantity) for s in expired] == [
        ("big", OrderStatus.EXPIRED, 449)]
    assert [f.id for f in broker.order("big").fills] == ["big/1", "big/2", "big/3"]


def test_orders_in_one_symbol_share_the_bars_volume_in_submission_order() -> None:
    broker = PaperBroker(PaperConfig(max_participation=Decimal("0.1")))
    broker.submit(order("first", quantity=150))
    broker.submit(order("other-symbol", quantity=50, symbol="TSLA"))
    broker.submit(order("second", quantity=150))
    broker.submit(order("third", quantity=10))
    fills = broker.on_bar(minute_bar(0, 2_000))  # 200 shares may trade
    assert [(f.client_order_id, f.quantity) for f in fills] == [("first", 150), ("second", 50)]
    assert broker.order("third").filled_quantity == 0


# --- fees ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("schedule", "quantity", "notional", "fee"), [
    (FeeSchedule(per_share=Decimal("0.5"), minimum=100), 150, 1_624_350, 100),   # 75 cents, the $1 minimum
    (FeeSchedule(per_share=Decimal("0.5"), minimum=100), 301, 3_259_529, 151),   # 150.5 rounds up
    (FeeSchedule(bps=1), 100, 1_082_900, 109),                                   # 108.29 rounds up
    (FeeSchedule(bps=Decimal("0.5"), per_share=1), 10, 100_000, 15),             # 5 + 10 exactly
    (FeeSchedule(minimum=100), 0, 0, 0),                                         # nothing filled, nothing owed
])
def test_fees_round_up_to_the_minor_unit_with_a_minimum(schedule: FeeSchedule, quantity: int, notional: int,
                                                        fee: int) -> None:
    assert schedule.fee(quantity, notional) == fee


def test_the_fees_of_partial_fills_add_up_to_the_fee_of_the_whole_order() -> None:
    schedule = FeeSchedule(per_share=Decimal("0.35"), bps=Decimal("0.3"), minimum=35)
    broker = PaperBroker(PaperConfig(max_participation=Decimal("0.1"), fees=schedule))
    broker.submit(order("big", quantity=500))
    fills = [f for minute, volume in enumerate([2_000, 999, 1_500, 3_000]) for f in
             broker.on_bar(minute_bar(minute, volume))]
    assert [f.quantity for f in fills] == [200, 99, 150, 51]
    # all at the open 10829. After 200: 70 + 0.3 bps of 2,165,800 (64.974) = 134.974 -> 135.
    # After 299: 104.65 + 0.3 bps of 3,237,871 (97.13613) = 201.78613 -> 202, so the second fill owes 202 - 135.
    assert [f.fee for f in fills[:2]] == [135, 67]
    total = schedule.fee(500, sum(f.quantity * f.price for f in fills))
    assert sum(f.fee for f in fills) == total


@pytest.mark.parametrize("bad", [0.5, -1, Decimal("NaN")])
def test_a_fee_rate_must_be_exact_and_not_negative(bad: object) -> None:
    with pytest.raises(ValueError, match="per_share"):
        FeeSchedule(per_share=bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(("config", "message"), [
    (dict(slippage_bps=10_000), "slippage_bps"),
    (dict(slippage_bps=2.5), "slippage_bps"),
    (dict(max_participation=0), "max_participation"),
    (dict(max_participation=Decimal("1.5")), "max_participation"),
])
def test_a_bad_config_is_refused(config: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PaperConfig(**config)  # type: ignore[arg-type]


# --- idempotency and the order book --------------------------------------------------------------------------


def test_submitting_an_order_again_never_fills_it_twice() -> None:
    broker = PaperBroker()
    first = broker.submit(order("b1"))
    assert broker.submit(order("b1")) == first
    assert len(broker.open_orders()) == 1
    fills = broker.on_bar(aapl(1))
    assert len(fills) == 1
    again = broker.submit(order("b1"))  # a retried step after the fill: its fill, no new order
    assert (again.status, again.fills) == (OrderStatus.FILLED, tuple(fills))
    assert broker.on_bar(aapl(2)) == []


def test_a_different_order_under_a_known_id_is_refused() -> None:
    broker = PaperBroker()
    broker.submit(order("b1"))
    with pytest.raises(ClientOrderIdConflict, match=r"b1.*different order"):
        broker.submit(order("b1", quantity=101))
    assert broker.order("b1").order.quantity == 100


@pytest.mark.parametrize(("bad", "message"), [
    (order("", quantity=1), "client_order_id"),
    (order("q0", quantity=0), "quantity"),
    (order("lim", limit=0), "limit_price"),
    (Order("mkt", "s", "AAPL", Side.BUY, 1, OrderType.MARKET, limit_price=100), "market order takes no limit"),
    (Order("lim2", "s", "AAPL", Side.BUY, 1, OrderType.LIMIT), "limit_price"),
    (order("naive", created_at=datetime(2015, 1, 5, 21)), "aware UTC"),
])
def test_a_malformed_order_is_refused_with_the_reason(bad: Order, message: str) -> None:
    broker = PaperBroker()
    with pytest.raises(OrderRefused, match=message):
        broker.submit(bad)
    assert broker.open_orders() == []


def test_a_cancelled_order_fills_no_more() -> None:
    broker = PaperBroker()
    broker.submit(order("b1"))
    assert broker.cancel("b1").status is OrderStatus.CANCELLED
    assert broker.on_bar(aapl(1)) == []
    assert broker.cancel("b1").status is OrderStatus.CANCELLED
    with pytest.raises(UnknownOrder, match="nope"):
        broker.cancel("nope")


def test_a_filled_order_cannot_be_cancelled() -> None:
    broker = PaperBroker()
    broker.submit(order("b1"))
    broker.on_bar(aapl(1))
    assert broker.cancel("b1").status is OrderStatus.FILLED


# --- bars ----------------------------------------------------------------------------------------------------


def test_bars_must_come_in_time_order_per_symbol() -> None:
    broker = PaperBroker()
    broker.on_bar(aapl(2))
    broker.on_bar(day_bar("TSLA", TSLA[0]))  # another symbol keeps its own clock
    for stale in (aapl(2), aapl(1)):
        with pytest.raises(BadBar, match="not after the last bar"):
            broker.on_bar(stale)


@pytest.mark.parametrize(("bar", "message"), [
    (Bar("AAPL", "1d", datetime(2015, 1, 5, 14, 30, tzinfo=UTC), 10829, 10800, 10541, 10625, 1), "within"),
    (Bar("AAPL", "1d", datetime(2015, 1, 5, 14, 30, tzinfo=UTC), 10829, 10865, 10626, 10625, 1), "within"),
    (Bar("AAPL", "1d", datetime(2015, 1, 5, 14, 30, tzinfo=UTC), 0, 0, 0, 0, 1), "low 0"),
    (Bar("AAPL", "1d", datetime(2015, 1, 5, 14, 30, tzinfo=UTC), 10829, 10865, 10541, 10625, -1), "volume"),
    (Bar("AAPL", "1d", datetime(2015, 1, 5, 14, 30), 10829, 10865, 10541, 10625, 1), "aware UTC"),
])
def test_a_bar_that_cannot_have_traded_is_refused(bar: Bar, message: str) -> None:
    with pytest.raises(BadBar, match=message):
        PaperBroker().on_bar(bar)


def test_the_same_orders_and_bars_give_the_same_fills() -> None:
    def run() -> list[object]:
        broker = PaperBroker(PaperConfig(slippage_bps=Decimal("2.5"), max_participation=Decimal("0.0001"),
                                         fees=FeeSchedule(per_share=Decimal("0.5"), minimum=100)))
        out: list[object] = []
        for i in range(len(AAPL)):
            broker.submit(order(f"o{i}", Side.BUY if i % 2 else Side.SELL, 4_000 + 500 * i))
            out += broker.on_bar(aapl(i))
        return out
    first = run()
    assert first and first == run()


# --- invariants over random bars and orders ------------------------------------------------------------------


@st.composite
def bars_and_orders(draw: st.DrawFn) -> tuple[PaperConfig, list[Bar], list[Order]]:
    config = PaperConfig(
        slippage_bps=draw(st.integers(0, 2_000)),
        max_participation=Decimal(draw(st.integers(1, 100))) / 100,
        fees=FeeSchedule(per_share=Decimal(draw(st.integers(0, 300))) / 100, bps=draw(st.integers(0, 30)),
                         minimum=draw(st.integers(0, 200))))
    bars = []
    start = datetime(2015, 1, 5, 14, 30, tzinfo=UTC)
    for i in range(draw(st.integers(1, 6))):
        low = draw(st.integers(1, 50_000))
        high = low + draw(st.integers(0, 5_000))
        o, c = draw(st.integers(low, high)), draw(st.integers(low, high))
        bars.append(Bar("AAPL", "1h", start + timedelta(hours=i), o, high, low, c, draw(st.integers(0, 5_000))))
    orders = []
    for i in range(draw(st.integers(1, 6))):
        limit = draw(st.none() | st.integers(1, 60_000))
        orders.append(order(f"o{i}", draw(st.sampled_from(Side)), draw(st.integers(1, 2_000)), limit=limit))
    return config, bars, orders


@settings(max_examples=300, deadline=None)
@given(bars_and_orders())
def test_fills_stay_in_the_bar_against_the_trader_within_volume_and_size(
        case: tuple[PaperConfig, list[Bar], list[Order]]) -> None:
    config, bars, orders = case
    broker = PaperBroker(config)
    for o in orders:
        broker.submit(o)
    by_id = {o.client_order_id: o for o in orders}
    for bar in bars:
        fills = broker.on_bar(bar)
        assert sum(f.quantity for f in fills) <= bar.volume * config.max_participation
        for fill in fills:
            placed = by_id[fill.client_order_id]
            assert bar.low <= fill.price <= bar.high
            assert fill.quantity > 0 and fill.bar_start == bar.start
            if placed.limit_price is None:
                assert (fill.price >= bar.open) if fill.side is Side.BUY else (fill.price <= bar.open)
            elif fill.side is Side.BUY:
                assert fill.price <= placed.limit_price
            else:
                assert fill.price >= placed.limit_price
    for o in orders:
        state = broker.order(o.client_order_id)
        assert state.filled_quantity <= o.quantity
        assert (state.status is OrderStatus.FILLED) == (state.filled_quantity == o.quantity)
        notional = sum(f.quantity * f.price for f in state.fills)
        assert sum(f.fee for f in state.fills) == config.fees.fee(state.filled_quantity, notional)
        assert [f.id for f in state.fills] == [f"{o.client_order_id}/{n}" for n in range(1, len(state.fills) + 1)]
