"""The desk's books: double-entry accounting of fills in integer minor units, each posting traceable to its signal.

Accounts (an amount is signed: a debit is positive, a credit negative; every journal entry sums to zero):

- ``cash`` (asset) — may go below zero: the books record what the broker did, keeping cash up is the risk
  engine's job;
- ``positions:<SYMBOL>`` (asset) — the open position **at cost**; the share count is kept beside it;
- ``fees`` (expense) — kept out of the cost basis, so realized P&L is gross of fees and net P&L is
  ``realized_pnl() - fees()``;
- ``realized_pnl`` (income) — credited with the gain of a sell over its **average cost**;
- ``capital`` (equity) — the opening cash.

Conventions:

- **Average cost**: a sell takes ``cost x sold / held`` out of the position, rounded down to the minor unit; the
  sell that closes the position takes all that is left, so no cost is ever stranded.
- **Long only**: a sell of more shares than are held is refused (no short positions); the risk engine is meant
  to block such orders before they reach a broker.
- **Unrealized P&L is a valuation, not a posting**: ``unrealized_pnl(prices)`` and ``equity(prices)`` value the
  positions at the prices given; nothing is written, so the books hold only what traded.
- **Idempotent by fill id**: posting the same fill again returns its entry and books nothing; a different fill
  under a known id is refused, as is a fill that overfills its order.

Every fill's entry names the fill; the ledger keeps fill -> order (client order id) -> signal id and risk decision
id as it is given them, so :meth:`Ledger.trace` walks any P&L line back to the signal that caused it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from oshal_trading.model import Fill, Order, RiskDecision, Side

CASH = "cash"
FEES = "fees"
REALIZED_PNL = "realized_pnl"
CAPITAL = "capital"
POSITIONS = "positions:"
PNL_ACCOUNTS = (REALIZED_PNL, FEES)


class PostingRefused(ValueError):
    """A fill the books cannot take; the message says what was wrong."""


class UnknownLine(LookupError):
    """No journal entry with this id."""


def position_account(symbol: str) -> str:
    return POSITIONS + symbol


@dataclass(frozen=True, slots=True)
class Posting:
    account: str
    amount: int  # minor units; > 0 debit, < 0 credit


@dataclass(frozen=True, slots=True)
class JournalEntry:
    id: str
    at: datetime | None
    memo: str
    postings: tuple[Posting, ...]
    fill_id: str | None  # None only for the opening entry

    @property
    def debits(self) -> int:
        return sum(p.amount for p in self.postings if p.amount > 0)

    @property
    def credits(self) -> int:
        return -sum(p.amount for p in self.postings if p.amount < 0)


@dataclass(frozen=True, slots=True)
class PnlLine:
    """One posting to a P&L account (realized P&L or fees), with the entry and fill it came from."""

    entry_id: str
    account: str
    amount: int  # as posted: realized gains are credits (negative), fees debits (positive)
    fill_id: str


@dataclass(frozen=True, slots=True)
class Position:
    symbol: str
    quantity: int
    cost: int  # minor units, what the shares held cost


@dataclass(frozen=True, slots=True)
class TrialBalanceRow:
    account: str
    debit: int
    credit: int


@dataclass(frozen=True, slots=True)
class TrialBalance:
    rows: tuple[TrialBalanceRow, ...]  # by account name

    @property
    def total_debits(self) -> int:
        return sum(row.debit for row in self.rows)

    @property
    def total_credits(self) -> int:
        return sum(row.credit for row in self.rows)

    @property
    def balanced(self) -> bool:
        return self.total_debits == self.total_credits


@dataclass(frozen=True, slots=True)
class Trace:
    """From a P&L line back to what caused it: the entry, the fill, its order, the order's risk decision and
    signal (the ids the caller gave; ``risk_decision_id`` is None if no decision was given with the fill)."""

    entry_id: str
    fill: Fill
    order: Order
    risk_decision_id: str | None
    signal_id: str


class Ledger:
    def __init__(self, opening_cash: int = 0, at: datetime | None = None) -> None:
        if isinstance(opening_cash, bool) or not isinstance(opening_cash, int) or opening_cash < 0:
            raise ValueError(f"opening_cash must be an integer number of minor units >= 0, got {opening_cash!r}")
        self._entries: dict[str, JournalEntry] = {}  # in booking order
        self._balances: dict[str, int] = {}
        self._shares: dict[str, int] = {}
        self._fills: dict[str, Fill] = {}  # in posting order
        self._entry_of_fill: dict[str, str] = {}
        self._orders: dict[str, Order] = {}
        self._filled: dict[str, int] = {}  # client order id -> shares booked
        self._decisions: dict[str, str] = {}  # client order id -> risk decision id
        if opening_cash:
            self._book(at, "opening cash", None, (Posting(CASH, opening_cash), Posting(CAPITAL, -opening_cash)))

    # --- posting -----------------------------------------------------------------------------------------------

    def post_fill(self, fill: Fill, order: Order, decision: RiskDecision | None = None) -> JournalEntry:
        """Book ``fill`` of ``order`` (approved by ``decision``, if given) as one balanced entry."""
        known = self._fills.get(fill.id)
        if known is not None:
            if known != fill:
                raise PostingRefused(f"fill id {fill.id!r} was already posted with different details; "
                                     "a fill id names one fill")
            return self.entry(self._entry_of_fill[fill.id])
        self._check(fill, order, decision)
        self._orders.setdefault(order.client_order_id, order)
        if decision is not None:
            self._decisions.setdefault(order.client_order_id, decision.id)
        account = position_account(fill.symbol)
        notional = fill.quantity * fill.price
        postings: tuple[Posting, ...]
        if fill.side is Side.BUY:
            postings = (Posting(account, notional), Posting(FEES, fill.fee), Posting(CASH, -(notional + fill.fee)))
            self._shares[fill.symbol] = self._shares.get(fill.symbol, 0) + fill.quantity
        else:
            held = self._shares[fill.symbol]
            cost = self._balances[account]
            cost_out = cost if fill.quantity == held else cost * fill.quantity // held
            postings = (Posting(CASH, notional - fill.fee), Posting(FEES, fill.fee), Posting(account, -cost_out),
                        Posting(REALIZED_PNL, -(notional - cost_out)))
            self._shares[fill.symbol] = held - fill.quantity
        self._fills[fill.id] = fill
        self._filled[order.client_order_id] = self._filled.get(order.client_order_id, 0) + fill.quantity
        memo = f"{fill.side} {fill.quantity} {fill.symbol} @ {fill.price} (order {fill.client_order_id})"
        entry = self._book(fill.at, memo, fill.id, tuple(p for p in postings if p.amount))
        self._entry_of_fill[fill.id] = entry.id
        return entry

    def _check(self, fill: Fill, order: Order, decision: RiskDecision | None) -> None:
        where = f"fill {fill.id!r}"
        if fill.client_order_id != order.client_order_id:
            raise PostingRefused(f"{where} belongs to order {fill.client_order_id!r}, not {order.client_order_id!r}")
        if (fill.symbol, fill.side) != (order.symbol, order.side):
            raise PostingRefused(f"{where} is a {fill.side} of {fill.symbol} but its order is a {order.side} of "
                                 f"{order.symbol}")
        known = self._orders.get(order.client_order_id)
        if known is not None and known != order:
            raise PostingRefused(f"{where}: order {order.client_order_id!r} was posted before with different details")
        if fill.quantity <= 0 or fill.price <= 0 or fill.fee < 0:
            raise PostingRefused(f"{where}: quantity {fill.quantity} and price {fill.price} must be > 0 and fee "
                                 f"{fill.fee} >= 0")
        filled = self._filled.get(order.client_order_id, 0)
        if filled + fill.quantity > order.quantity:
            raise PostingRefused(f"{where} would fill {filled + fill.quantity} shares of order "
                                 f"{order.client_order_id!r}, which is for {order.quantity}")
        if decision is not None:
            if decision.client_order_id != order.client_order_id:
                raise PostingRefused(f"{where}: risk decision {decision.id!r} is for order "
                                     f"{decision.client_order_id!r}, not {order.client_order_id!r}")
            if not decision.approved:
                raise PostingRefused(f"{where}: risk decision {decision.id!r} blocked order "
                                     f"{order.client_order_id!r}; a blocked order cannot be booked")
            registered = self._decisions.get(order.client_order_id)
            if registered is not None and registered != decision.id:
                raise PostingRefused(f"{where}: order {order.client_order_id!r} was approved by risk decision "
                                     f"{registered!r}, not {decision.id!r}")
        if fill.side is Side.SELL and fill.quantity > self._shares.get(fill.symbol, 0):
            raise PostingRefused(f"{where} sells {fill.quantity} {fill.symbol} but only "
                                 f"{self._shares.get(fill.symbol, 0)} are held; the books are long only")

    def _book(self, at: datetime | None, memo: str, fill_id: str | None,
              postings: tuple[Posting, ...]) -> JournalEntry:
        if sum(p.amount for p in postings) != 0:  # unreachable by construction; the books never take one
            raise AssertionError(f"unbalanced entry {memo!r}: {postings}")
        entry = JournalEntry(id=f"je-{len(self._entries) + 1:06d}", at=at, memo=memo, postings=postings,
                             fill_id=fill_id)
        self._entries[entry.id] = entry
        for posting in postings:
            self._balances[posting.account] = self._balances.get(posting.account, 0) + posting.amount
        return entry

    # --- reading -----------------------------------------------------------------------------------------------

    def entries(self) -> tuple[JournalEntry, ...]:
        return tuple(self._entries.values())

    def entry(self, entry_id: str) -> JournalEntry:
        try:
            return self._entries[entry_id]
        except KeyError:
            raise UnknownLine(f"no journal entry {entry_id!r}") from None

    def balance(self, account: str) -> int:
        """The account's balance, debit positive."""
        return self._balances.get(account, 0)

    def cash(self) -> int:
        return self.balance(CASH)

    def fees(self) -> int:
        return self.balance(FEES)

    def realized_pnl(self) -> int:
        """Gains less losses on what was sold, gross of fees."""
        return -self.balance(REALIZED_PNL)

    def positions(self) -> dict[str, Position]:
        """Open positions by symbol (closed ones left out)."""
        return {symbol: Position(symbol, shares, self.balance(position_account(symbol)))
                for symbol, shares in sorted(self._shares.items()) if shares}

    def _market_value(self, prices: Mapping[str, int]) -> int:
        missing = sorted(symbol for symbol in self.positions() if symbol not in prices)
        if missing:
            raise ValueError(f"no price for held symbol(s) {', '.join(missing)}; value every open position")
        return sum(p.quantity * prices[p.symbol] for p in self.positions().values())

    def unrealized_pnl(self, prices: Mapping[str, int]) -> int:
        """What the open positions would gain over their cost at ``prices`` (a valuation; nothing is posted)."""
        return self._market_value(prices) - sum(p.cost for p in self.positions().values())

    def equity(self, prices: Mapping[str, int]) -> int:
        """Cash plus the open positions valued at ``prices``."""
        return self.cash() + self._market_value(prices)

    def trial_balance(self) -> TrialBalance:
        return TrialBalance(tuple(TrialBalanceRow(account, max(amount, 0), max(-amount, 0))
                                  for account, amount in sorted(self._balances.items())))

    # --- tracing -----------------------------------------------------------------------------------------------

    def pnl_lines(self) -> list[PnlLine]:
        return [PnlLine(entry.id, posting.account, posting.amount, entry.fill_id)
                for entry in self._entries.values() if entry.fill_id is not None
                for posting in entry.postings if posting.account in PNL_ACCOUNTS]

    def trace(self, line: PnlLine | str) -> Trace:
        """Walk a P&L line (or a journal entry id) back: entry -> fill -> order -> risk decision and signal."""
        entry = self.entry(line if isinstance(line, str) else line.entry_id)
        if entry.fill_id is None:
            raise UnknownLine(f"journal entry {entry.id!r} ({entry.memo}) books no fill")
        fill = self._fills[entry.fill_id]
        order = self._orders[fill.client_order_id]
        return Trace(entry.id, fill, order, self._decisions.get(order.client_order_id), order.signal_id)

    def reconcile(self, fills: Iterable[Fill]) -> list[str]:
        """What disagrees between the books and ``fills`` (the broker's record): positions that are not the sum
        of the fills, fills missing on either side or posted differently. Empty when they agree."""
        problems = []
        given: dict[str, Fill] = {}
        for fill in fills:
            if fill.id in given and given[fill.id] != fill:
                problems.append(f"fill {fill.id!r} appears twice with different details")
            given[fill.id] = fill
        for fill_id, fill in given.items():
            posted = self._fills.get(fill_id)
            if posted is None:
                problems.append(f"fill {fill_id!r} ({fill.side} {fill.quantity} {fill.symbol}) is not in the books")
            elif posted != fill:
                problems.append(f"fill {fill_id!r} was booked with different details than the broker reports")
        problems += [f"fill {fill_id!r} is in the books but not in the fills given"
                     for fill_id in self._fills if fill_id not in given]
        expected: dict[str, int] = {}
        for fill in given.values():
            expected[fill.symbol] = expected.get(fill.symbol, 0) + (fill.quantity if fill.side is Side.BUY
                                                                    else -fill.quantity)
        for symbol in sorted(set(expected) | set(self._shares)):
            held, want = self._shares.get(symbol, 0), expected.get(symbol, 0)
            if held != want:
                problems.append(f"{symbol}: the books hold {held} shares, the fills add up to {want}")
            if held == 0 and self.balance(position_account(symbol)) != 0:
                problems.append(f"{symbol}: no shares held but {self.balance(position_account(symbol))} of cost "
                                "is left on the position")
        if not self.trial_balance().balanced:
            problems.append("the trial balance does not balance")
        return problems
