"""The desk's double-entry books: exact cents on a hand-computed case, refusals that keep them whole, and the
invariants (balanced, equity identity, positions = the sum of fills, every P&L line traceable) over random fills."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oshal_trading.ledger import (
    CAPITAL,
    CASH,
    FEES,
    REALIZED_PNL,
    Ledger,
    Position,
    Posting,
    PostingRefused,
    TrialBalanceRow,
    UnknownLine,
)
from oshal_trading.model import Bar, Fill, Order, RiskDecision, RuleResult, Side
from oshal_trading.paper import FeeSchedule, PaperBroker, PaperConfig

T0 = datetime(2015, 1, 5, 14, 30, tzinfo=UTC)


def make_order(coid: str, side: Side, quantity: int, symbol: str = "AAPL") -> Order:
    return Order(client_order_id=coid, signal_id=f"sig-{coid}", symbol=symbol, side=side, quantity=quantity)


def make_fill(order: Order, price: int, fee: int = 100, quantity: int | None = None, n: int = 1) -> Fill:
    return Fill(id=f"{order.client_order_id}/{n}", client_order_id=order.client_order_id, symbol=order.symbol,
                side=order.side, quantity=order.quantity if quantity is None else quantity, price=price, fee=fee,
                at=T0 + timedelta(days=n), bar_start=T0 + timedelta(days=n))


def approve(order: Order) -> RiskDecision:
    return RiskDecision(id=f"risk-{order.client_order_id}", client_order_id=order.client_order_id, approved=True,
                        rules=(RuleResult("max_order_notional", True, "under the limit"),), at=T0)


# --- a small case computed by hand -----------------------------------------------------------------------------


def test_buy_buy_partial_sell_sell_to_the_cent() -> None:
    books = Ledger(opening_cash=10_000_000, at=T0)
    b1, b2 = make_order("b1", Side.BUY, 100), make_order("b2", Side.BUY, 50)
    s1, s2 = make_order("s1", Side.SELL, 70), make_order("s2", Side.SELL, 80)
    books.post_fill(make_fill(b1, 10_835), b1, approve(b1))
    books.post_fill(make_fill(b2, 10_654), b2, approve(b2))
    # 150 shares cost 1,083,500 + 532,700 = 1,616,200
    assert books.positions() == {"AAPL": Position("AAPL", 150, 1_616_200)}
    assert books.cash() == 10_000_000 - 1_083_600 - 532_800

    partial = books.post_fill(make_fill(s1, 11_189), s1, approve(s1))
    # average cost out: 1,616,200 x 70 / 150 = 754,226.67 -> 754,226; proceeds 70 x 11,189 = 783,230
    assert partial.postings == (Posting(CASH, 783_130), Posting(FEES, 100), Posting("positions:AAPL", -754_226),
                                Posting(REALIZED_PNL, -29_004))
    assert partial.debits == partial.credits == 783_230
    assert books.positions() == {"AAPL": Position("AAPL", 80, 861_974)}
    assert books.realized_pnl() == 29_004
    assert books.cash() == 9_166_730
    assert books.unrealized_pnl({"AAPL": 11_201}) == 80 * 11_201 - 861_974 == 34_106
    assert books.equity({"AAPL": 11_201}) == 9_166_730 + 896_080

    books.post_fill(make_fill(s2, 11_201), s2, approve(s2))
    # the closing sell takes all the cost that is left: 896,080 - 861,974
    assert books.realized_pnl() == 29_004 + 34_106 == 63_110
    assert books.fees() == 400
    assert books.positions() == {}
    assert books.cash() == 10_000_000 + 63_110 - 400 == 10_062_710
    assert books.equity({}) == books.cash()
    assert books.trial_balance().rows == (
        TrialBalanceRow(CAPITAL, 0, 10_000_000), TrialBalanceRow(CASH, 10_062_710, 0), TrialBalanceRow(FEES, 400, 0),
        TrialBalanceRow("positions:AAPL", 0, 0), TrialBalanceRow(REALIZED_PNL, 0, 63_110))
    assert books.trial_balance().total_debits == books.trial_balance().total_credits == 10_063_110


def test_a_zero_fee_posts_no_fee_line() -> None:
    books = Ledger(opening_cash=1_000_000)
    buy = make_order("b1", Side.BUY, 10)
    entry = books.post_fill(make_fill(buy, 10_000, fee=0), buy)
    assert entry.postings == (Posting("positions:AAPL", 100_000), Posting(CASH, -100_000))


# --- tracing ---------------------------------------------------------------------------------------------------


def test_every_pnl_line_walks_back_to_its_fill_order_risk_decision_and_signal() -> None:
    books = Ledger(opening_cash=5_000_000)
    buy, sell = make_order("b1", Side.BUY, 100), make_order("s1", Side.SELL, 100)
    books.post_fill(make_fill(buy, 10_000, fee=50), buy, approve(buy))
    books.post_fill(make_fill(sell, 10_500, fee=60, quantity=40), sell, approve(sell))
    books.post_fill(make_fill(sell, 10_400, fee=0, quantity=60, n=2), sell)
    lines = books.pnl_lines()
    assert [(line.account, line.amount, line.fill_id) for line in lines] == [
        (FEES, 50, "b1/1"), (FEES, 60, "s1/1"), (REALIZED_PNL, -20_000, "s1/1"), (REALIZED_PNL, -24_000, "s1/2")]
    traces = [books.trace(line) for line in lines]
    assert [(t.fill.id, t.order.client_order_id, t.risk_decision_id, t.signal_id) for t in traces] == [
        ("b1/1", "b1", "risk-b1", "sig-b1"), ("s1/1", "s1", "risk-s1", "sig-s1"),
        ("s1/1", "s1", "risk-s1", "sig-s1"), ("s1/2", "s1", "risk-s1", "sig-s1")]
    assert books.trace(lines[0].entry_id) == traces[0]


def test_trace_names_what_it_cannot_find() -> None:
    books = Ledger(opening_cash=100)
    with pytest.raises(UnknownLine, match="books no fill"):
        books.trace(books.entries()[0].id)
    with pytest.raises(UnknownLine, match="je-999999"):
        books.trace("je-999999")


# --- what the books refuse -------------------------------------------------------------------------------------


def held(books: Ledger) -> tuple[object, ...]:
    return books.entries(), books.positions(), books.cash()


def test_posting_the_same_fill_again_books_nothing() -> None:
    books = Ledger(opening_cash=2_000_000)
    buy = make_order("b1", Side.BUY, 100)
    fill = make_fill(buy, 10_000)
    entry = books.post_fill(fill, buy)
    before = held(books)
    assert books.post_fill(fill, buy) == entry
    assert held(books) == before


def test_refusals_leave_the_books_untouched() -> None:
    books = Ledger(opening_cash=2_000_000)
    buy = make_order("b1", Side.BUY, 100)
    books.post_fill(make_fill(buy, 10_000, quantity=60), buy, approve(buy))
    before = held(books)
    other = make_order("x", Side.BUY, 10)
    blocked = RiskDecision("risk-b1", "b1", approved=False, rules=(RuleResult("kill_switch", False, "halted"),),
                           at=T0)
    cases: list[tuple[Fill, Order, RiskDecision | None, str]] = [
        (make_fill(buy, 10_001, quantity=60), buy, None, "already posted with different details"),
        (make_fill(buy, 10_000, quantity=41, n=2), buy, None, "would fill 101 shares"),
        (make_fill(other, 10_000), buy, None, "belongs to order 'x'"),
        (make_fill(make_order("b1", Side.SELL, 100), 10_000, n=2), buy, None, "is a sell of AAPL but its order is"),
        (make_fill(buy, 10_000, quantity=1, n=2), make_order("b1", Side.BUY, 200), None, "different details"),
        (make_fill(buy, 0, quantity=1, n=2), buy, None, "must be > 0"),
        (make_fill(buy, 10_000, fee=-1, quantity=1, n=2), buy, None, "fee -1 >= 0"),
        (make_fill(buy, 10_000, quantity=1, n=2), buy, blocked, "blocked order"),
        (make_fill(buy, 10_000, quantity=1, n=2), buy, approve(other), "is for order 'x'"),
        (make_fill(buy, 10_000, quantity=1, n=2), buy,
         RiskDecision("risk-2", "b1", True, (), T0), "approved by risk decision 'risk-b1'"),
        (make_fill(make_order("s1", Side.SELL, 61), 10_000), make_order("s1", Side.SELL, 61), None,
         "only 60 are held; the books are long only"),
        (make_fill(make_order("s2", Side.SELL, 1, "TSLA"), 10_000), make_order("s2", Side.SELL, 1, "TSLA"), None,
         "only 0 are held"),
    ]
    for fill, order, decision, message in cases:
        with pytest.raises(PostingRefused, match=message):
            books.post_fill(fill, order, decision)
        assert held(books) == before


def test_cash_may_go_below_zero_and_the_books_still_balance() -> None:
    books = Ledger(opening_cash=1_000)
    buy = make_order("b1", Side.BUY, 1)
    books.post_fill(make_fill(buy, 1_500, fee=10), buy)
    assert books.cash() == -510
    assert books.trial_balance().balanced


def test_valuing_positions_needs_a_price_for_each() -> None:
    books = Ledger(opening_cash=1_000_000)
    for symbol in ("AAPL", "TSLA"):
        buy = make_order(f"b-{symbol}", Side.BUY, 1, symbol)
        books.post_fill(make_fill(buy, 10_000), buy)
    with pytest.raises(ValueError, match=r"no price for held symbol.*TSLA"):
        books.equity({"AAPL": 10_000})
    with pytest.raises(ValueError, match="opening_cash"):
        Ledger(opening_cash=-1)


# --- reconciliation ----------------------------------------------------------------------------------------------


def test_reconcile_names_every_disagreement_with_the_broker() -> None:
    books = Ledger(opening_cash=5_000_000)
    buy, sell = make_order("b1", Side.BUY, 100), make_order("s1", Side.SELL, 30)
    fills = [make_fill(buy, 10_000), make_fill(sell, 10_100)]
    for fill, order in zip(fills, (buy, sell), strict=True):
        books.post_fill(fill, order)
    assert books.reconcile(fills) == []
    extra = make_fill(make_order("b2", Side.BUY, 5), 9_900)
    assert books.reconcile([*fills, extra]) == [
        "fill 'b2/1' (buy 5 AAPL) is not in the books", "AAPL: the books hold 70 shares, the fills add up to 75"]
    assert books.reconcile(fills[:1]) == [
        "fill 's1/1' is in the books but not in the fills given",
        "AAPL: the books hold 70 shares, the fills add up to 100"]
    changed = make_fill(sell, 10_100, quantity=20)
    assert books.reconcile([fills[0], changed]) == [
        "fill 's1/1' was booked with different details than the broker reports",
        "AAPL: the books hold 70 shares, the fills add up to 80"]


def test_the_paper_brokers_fills_on_real_bars_reconcile_with_the_books() -> None:
    # AAPL daily bars, unadjusted, in cents: Quandl WIKI prices in plotly/datasets `dash-stock-ticker-demo.csv` (MIT).
    rows = [("2015-01-05", 10829, 10865, 10541, 10625, 64285491), ("2015-01-06", 10654, 10743, 10463, 10626, 65797116),
            ("2015-01-07", 10720, 10820, 10670, 10775, 40105934), ("2015-01-08", 10923, 11215, 10870, 11189, 59364547)]
    bars = [Bar("AAPL", "1d", datetime.fromisoformat(d).replace(tzinfo=UTC) + timedelta(hours=14, minutes=30),
                o, h, low, c, v) for d, o, h, low, c, v in rows]
    broker = PaperBroker(PaperConfig(slippage_bps=5, max_participation=Decimal("0.0001"),
                                     fees=FeeSchedule(per_share=Decimal("0.5"), minimum=100)))
    books = Ledger(opening_cash=200_000_000)
    plan = [make_order("b1", Side.BUY, 9_000), make_order("b2", Side.BUY, 2_000), make_order("s1", Side.SELL, 5_000),
            make_order("s2", Side.SELL, 4_000)]
    orders = {o.client_order_id: o for o in plan}
    fills = []
    for placed, bar in zip(plan, bars, strict=True):
        broker.submit(placed)
        for fill in broker.on_bar(bar):
            books.post_fill(fill, orders[fill.client_order_id], approve(orders[fill.client_order_id]))
            fills.append(fill)
    # 0.01% of each day's volume: b1 fills 6428 of 9000 and s1 4010 of 5000; their rests expire with their day
    assert [(f.id, f.quantity) for f in fills] == [("b1/1", 6428), ("b2/1", 2000), ("s1/1", 4010), ("s2/1", 4000)]
    assert books.positions()["AAPL"].quantity == 6428 + 2000 - 4010 - 4000
    assert books.reconcile(fills) == []
    assert books.reconcile(broker.order("b1").fills + broker.order("b2").fills + broker.order("s1").fills
                           + broker.order("s2").fills) == []
    assert books.fees() == sum(f.fee for f in fills)


# --- invariants over random fill sequences -----------------------------------------------------------------------

SYMBOLS = ("AAPL", "TSLA", "GOOGL")


@st.composite
def trading(draw: st.DrawFn) -> tuple[int, list[tuple[Fill, Order, RiskDecision]], dict[str, int]]:
    """An opening cash, a sequence of fills that never sells more than is held (an order may fill in parts),
    and prices to value what is left."""
    shares = dict.fromkeys(SYMBOLS, 0)
    steps: list[tuple[Fill, Order, RiskDecision]] = []
    for i in range(draw(st.integers(0, 25))):
        symbol = draw(st.sampled_from(SYMBOLS))
        side = Side.SELL if shares[symbol] and draw(st.booleans()) else Side.BUY
        quantity = draw(st.integers(1, shares[symbol] if side is Side.SELL else 5_000))
        order = make_order(f"o{i}", side, quantity, symbol)
        parts = draw(st.integers(1, min(3, quantity)))
        done = 0
        for n in range(1, parts + 1):
            size = quantity - done if n == parts else draw(st.integers(1, quantity - done - (parts - n)))
            done += size
            fill = make_fill(order, draw(st.integers(1, 200_000)), fee=draw(st.integers(0, 500)), quantity=size, n=n)
            steps.append((fill, order, approve(order)))
        shares[symbol] += quantity if side is Side.BUY else -quantity
    prices = {symbol: draw(st.integers(1, 200_000)) for symbol in SYMBOLS}
    return draw(st.integers(0, 10**12)), steps, prices


@settings(max_examples=300, deadline=None)
@given(trading())
def test_the_books_stay_whole_over_any_fills(case: tuple[int, list[tuple[Fill, Order, RiskDecision]],
                                                         dict[str, int]]) -> None:
    opening, steps, prices = case
    books = Ledger(opening_cash=opening, at=T0)
    for fill, order, decision in steps:
        entry = books.post_fill(fill, order, decision)
        assert entry.debits == entry.credits and entry.fill_id == fill.id
        assert books.trial_balance().balanced
    fills = [fill for fill, _, _ in steps]
    positions = books.positions()
    assert books.equity(prices) == books.cash() + sum(p.quantity * prices[p.symbol] for p in positions.values())
    assert books.equity(prices) == opening + books.realized_pnl() - books.fees() + books.unrealized_pnl(prices)
    for symbol in SYMBOLS:
        bought = sum(f.quantity for f in fills if f.symbol == symbol and f.side is Side.BUY)
        sold = sum(f.quantity for f in fills if f.symbol == symbol and f.side is Side.SELL)
        assert (positions[symbol].quantity if symbol in positions else 0) == bought - sold
        if symbol in positions:  # average cost lies within the prices paid
            paid = [f.price for f in fills if f.symbol == symbol and f.side is Side.BUY]
            assert min(paid) * positions[symbol].quantity <= positions[symbol].cost
            assert positions[symbol].cost <= max(paid) * positions[symbol].quantity
    assert books.reconcile(fills) == []
    assert books.fees() == sum(f.fee for f in fills)
    by_id = {fill.id: (order, decision) for fill, order, decision in steps}
    lines = books.pnl_lines()
    assert sum(line.amount for line in lines) == books.fees() - books.realized_pnl()
    for line in lines:
        trace = books.trace(line)
        order, decision = by_id[line.fill_id]
        assert trace.fill.id == line.fill_id and trace.fill.client_order_id == order.client_order_id
        assert (trace.order, trace.risk_decision_id, trace.signal_id) == (order, decision.id, order.signal_id)
