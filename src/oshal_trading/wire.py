"""The desk's records as JSON: what its bots hand each other in tickets and what it keeps as application records.

Money stays integer cents, times are ISO 8601 in UTC, and every decoder checks what it reads and names the field it
could not use, so a malformed ticket input fails its step with a message rather than trading on a guess. Bars travel
as columns per symbol (``t``, ``o``, ``h``, ``l``, ``c``, ``v``), a third of the size of one object per bar.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from oshal_trading.bars import format_start, parse_start
from oshal_trading.model import Bar, Fill, Order, OrderType, RiskDecision, RuleResult, Side, Signal


class WireError(ValueError):
    """A desk document that cannot be read; the message names the field."""


def _field(doc: Mapping[str, Any], name: str, kind: type | tuple[type, ...], where: str) -> Any:
    if not isinstance(doc, Mapping) or name not in doc:
        raise WireError(f"{where}: {name} is missing")
    value = doc[name]
    if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
        raise WireError(f"{where}: {name} must be {getattr(kind, '__name__', kind)}, got {value!r}")
    if not isinstance(value, kind):
        raise WireError(f"{where}: {name} must be {getattr(kind, '__name__', kind)}, got {type(value).__name__}")
    return value


def when(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def parse_when(text: Any, where: str) -> datetime:
    if not isinstance(text, str):
        raise WireError(f"{where} must be an ISO 8601 time, got {text!r}")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise WireError(f"{where}: {text!r} is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        raise WireError(f"{where}: {text!r} has no UTC offset")
    return moment.astimezone(UTC)


# --- bars -----------------------------------------------------------------------------------------------------


def bars_to_columns(bars: Sequence[Bar]) -> dict[str, Any]:
    """One symbol's bars (one timeframe, time order) as columns."""
    timeframe = bars[0].timeframe if bars else "1d"
    return {"timeframe": timeframe, "t": [format_start(b.start, timeframe) for b in bars],
            "o": [b.open for b in bars], "h": [b.high for b in bars], "l": [b.low for b in bars],
            "c": [b.close for b in bars], "v": [b.volume for b in bars]}


def bars_from_columns(symbol: str, doc: Any) -> list[Bar]:
    where = f"bars of {symbol}"
    timeframe = _field(doc, "timeframe", str, where)
    columns = {name: _field(doc, name, list, where) for name in ("t", "o", "h", "l", "c", "v")}
    sizes = {len(column) for column in columns.values()}
    if len(sizes) != 1:
        raise WireError(f"{where}: the columns t, o, h, l, c, v must be equally long")
    out = []
    for i, start in enumerate(columns["t"]):
        values = [columns[name][i] for name in ("o", "h", "l", "c", "v")]
        if any(isinstance(v, bool) or not isinstance(v, int) for v in values):
            raise WireError(f"{where}, bar {i}: prices and volume must be whole numbers (cents, shares)")
        try:
            moment = parse_start(str(start), timeframe)
        except ValueError as e:
            raise WireError(f"{where}, bar {i}: {e}") from None
        out.append(Bar(symbol, timeframe, moment, *values))
    return out


def series_from_json(doc: Any, where: str = "bars") -> dict[str, list[Bar]]:
    if not isinstance(doc, Mapping):
        raise WireError(f"{where} must map each symbol to its bar columns")
    return {str(symbol): bars_from_columns(str(symbol), columns) for symbol, columns in sorted(doc.items())}


def series_to_json(series: Mapping[str, Sequence[Bar]]) -> dict[str, Any]:
    return {symbol: bars_to_columns(bars) for symbol, bars in sorted(series.items()) if bars}


# --- signals, orders, decisions, fills -------------------------------------------------------------------------


def signal_to_json(s: Signal) -> dict[str, Any]:
    return {"id": s.id, "strategy": s.strategy, "symbol": s.symbol, "side": s.side.value, "strength": s.strength,
            "horizon_bars": s.horizon_bars, "at": when(s.at), "rationale": s.rationale, "inputs": s.inputs}


def signal_from_json(doc: Any) -> Signal:
    where = "signal"
    strength = _field(doc, "strength", (int, float), where)
    return Signal(id=_field(doc, "id", str, where), strategy=_field(doc, "strategy", str, where),
                  symbol=_field(doc, "symbol", str, where), side=_side(doc, where), strength=float(strength),
                  horizon_bars=_field(doc, "horizon_bars", int, where), at=parse_when(doc.get("at"), f"{where}.at"),
                  rationale=_field(doc, "rationale", str, where), inputs=dict(doc.get("inputs") or {}))


def _side(doc: Mapping[str, Any], where: str) -> Side:
    raw = _field(doc, "side", str, where)
    try:
        return Side(raw)
    except ValueError:
        raise WireError(f"{where}: side {raw!r} is not buy or sell") from None


def order_to_json(o: Order) -> dict[str, Any]:
    return {"client_order_id": o.client_order_id, "signal_id": o.signal_id, "symbol": o.symbol, "side": o.side.value,
            "quantity": o.quantity, "type": o.type.value, "limit_price": o.limit_price,
            "created_at": when(o.created_at) if o.created_at else None}


def order_from_json(doc: Any) -> Order:
    where = "order"
    kind = _field(doc, "type", str, where)
    try:
        order_type = OrderType(kind)
    except ValueError:
        raise WireError(f"{where}: type {kind!r} is not market or limit") from None
    limit = doc.get("limit_price")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)):
        raise WireError(f"{where}: limit_price must be whole cents or null")
    created = doc.get("created_at")
    return Order(client_order_id=_field(doc, "client_order_id", str, where),
                 signal_id=_field(doc, "signal_id", str, where), symbol=_field(doc, "symbol", str, where),
                 side=_side(doc, where), quantity=_field(doc, "quantity", int, where), type=order_type,
                 limit_price=limit, created_at=None if created is None else parse_when(created, f"{where}.created_at"))


def decision_to_json(d: RiskDecision) -> dict[str, Any]:
    return {"id": d.id, "client_order_id": d.client_order_id, "approved": d.approved, "at": when(d.at),
            "rules": [{"rule": r.rule, "passed": r.passed, "detail": r.detail} for r in d.rules]}


def decision_from_json(doc: Any) -> RiskDecision:
    where = "risk decision"
    rules = tuple(RuleResult(_field(r, "rule", str, where), _field(r, "passed", bool, where),
                             _field(r, "detail", str, where)) for r in _field(doc, "rules", list, where))
    return RiskDecision(id=_field(doc, "id", str, where), client_order_id=_field(doc, "client_order_id", str, where),
                        approved=_field(doc, "approved", bool, where), rules=rules,
                        at=parse_when(doc.get("at"), f"{where}.at"))


def fill_to_json(f: Fill) -> dict[str, Any]:
    return {"id": f.id, "client_order_id": f.client_order_id, "symbol": f.symbol, "side": f.side.value,
            "quantity": f.quantity, "price": f.price, "fee": f.fee, "at": when(f.at), "bar_start": when(f.bar_start)}


def fill_from_json(doc: Any) -> Fill:
    where = "fill"
    return Fill(id=_field(doc, "id", str, where), client_order_id=_field(doc, "client_order_id", str, where),
                symbol=_field(doc, "symbol", str, where), side=_side(doc, where),
                quantity=_field(doc, "quantity", int, where), price=_field(doc, "price", int, where),
                fee=_field(doc, "fee", int, where), at=parse_when(doc.get("at"), f"{where}.at"),
                bar_start=parse_when(doc.get("bar_start"), f"{where}.bar_start"))


def many(decode: Any, docs: Any, where: str) -> list[Any]:
    if not isinstance(docs, Iterable) or isinstance(docs, str | bytes | Mapping):
        raise WireError(f"{where} must be a list")
    return [decode(doc) for doc in docs]
