"""The desk's bots' work (deterministic intents, run by the node host as ``oshal_trading.intents:NAME`` in a fleet
manifest). Each is a pure function of its input — the desk step's ticket carries the bars, the portfolio and the
limits — calling the desk's own core unchanged: strategies (signal), risk (risk), the paper broker (execute) and the
recap. The same input always gives the same output, ids included, so a redelivered or replayed step is harmless.

One desk step trades one bar: the decision is taken at the close of the bar before it (``decided_on``), and the
orders fill on the step's bar — the backtest's order of events, one bar at a time.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping
from datetime import timedelta
from decimal import Decimal
from typing import Any

from oshal_trading import analyst, chart_process, strategies
from oshal_trading import recap as recap_of
from oshal_trading.alpaca_trading import AlpacaTrading
from oshal_trading.bars import timeframe_step
from oshal_trading.desk_config import DESK_NAME, DeskConfigError, limits_from_json, paper_from_json
from oshal_trading.ledger import Ledger
from oshal_trading.live_broker import BrokerError, LiveBroker, fill_of, send_once
from oshal_trading.model import Order, OrderType, Side
from oshal_trading.paper import PaperBroker
from oshal_trading.risk import Exposure, Holding, decide
from oshal_trading.wire import (
    WireError,
    decision_to_json,
    fill_from_json,
    fill_to_json,
    many,
    order_from_json,
    order_to_json,
    parse_when,
    series_from_json,
    signal_from_json,
    signal_to_json,
)


def _object(value: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ValueError(f"input must be an object ({what})")
    return value


def client_order_id(desk: str, step: str, signal_id: str) -> str:
    """Deterministic: one signal on one desk at one step is one order, however often the step runs."""
    return "o-" + hashlib.sha256(f"{desk}|{step}|{signal_id}".encode()).hexdigest()[:24]


def signal(value: Any) -> dict[str, Any]:
    """{strategy, params, history: {SYMBOL: bar columns}} -> the signals made at the close of each symbol's last
    bar (the strategy sees the whole history, so its state matches a backtest over the same bars)."""
    doc = _object(value, "strategy, params, history")
    strategy = doc.get("strategy")
    if not isinstance(strategy, str):
        raise ValueError("input.strategy must name a strategy")
    series = series_from_json(doc.get("history") or {}, "input.history")
    found = strategies.signals(strategy, [b for bars in series.values() for b in bars], dict(doc.get("params") or {}))
    last_close = {symbol: bars[-1].start + timeframe_step(bars[-1].timeframe)
                  for symbol, bars in series.items() if bars}
    return {"signals": [signal_to_json(s) for s in found if last_close.get(s.symbol) == s.at]}


def analyse(value: Any) -> dict[str, Any]:
    """{signals} -> {notes: [{signal, rationale}]}: the analyst's note on each signal (a model writes them when the
    bot runs on a provider; this is the offline analyst)."""
    doc = _object(value, "signals")
    return {"notes": analyst.notes(many(signal_from_json, doc.get("signals") or [], "input.signals"))}


def _sized_order(desk: str, step: str, sig: Any, held: int, close: int, equity: int, allocation: Decimal,
                 n_symbols: int, created_at: Any) -> Order | None:
    """Long only, as the backtest sizes: a buy opens a position when flat, a sell closes one."""
    if sig.side is Side.BUY and held == 0:
        quantity = int(Decimal(equity) * allocation / n_symbols) // close
        if quantity <= 0:
            return None
        side = Side.BUY
    elif sig.side is Side.SELL and held > 0:
        quantity, side = held, Side.SELL
    else:
        return None
    return Order(client_order_id=client_order_id(desk, step, sig.id), signal_id=sig.id, symbol=sig.symbol,
                 side=side, quantity=quantity, type=OrderType.MARKET, created_at=created_at)


def risk(value: Any) -> dict[str, Any]:
    """Signals + the portfolio at the decision bar's close -> sized orders, each with the risk engine's decision
    (every rule recorded). ``approved`` lists the orders that may go to the broker."""
    doc = _object(value, "desk, step, signals, portfolio, limits")
    desk, step = doc.get("desk"), doc.get("step")
    if not isinstance(desk, str) or not isinstance(step, str):
        raise ValueError("input.desk and input.step must name the desk and its step")
    halted = doc.get("halted")
    if not isinstance(halted, bool):
        raise ValueError("input.halted must be true or false (fail closed: a desk whose state is unknown is halted)")
    decided_at = parse_when(doc.get("decided_at"), "input.decided_at")
    portfolio = _object(doc.get("portfolio"), "portfolio: cash, positions, closes, equity, day_start_equity")
    try:
        limits = limits_from_json(doc.get("limits"))
    except DeskConfigError as e:
        raise ValueError(str(e)) from None
    positions = {str(s): int(q) for s, q in dict(portfolio.get("positions") or {}).items()}
    closes = {str(s): int(c) for s, c in dict(portfolio.get("closes") or {}).items()}
    equity, day_start = int(portfolio["equity"]), int(portfolio["day_start_equity"])
    sizing = _object(doc.get("sizing"), "sizing: allocation, symbols")
    allocation, n_symbols = Decimal(str(sizing["allocation"])), int(sizing["symbols"])
    created_at = decided_at + timedelta(days=1)
    exposure = Exposure({s: Holding(q, closes[s]) for s, q in positions.items() if q}, int(portfolio["cash"]),
                        day_start)
    decisions, approved = [], []
    for sig in many(signal_from_json, doc.get("signals") or [], "input.signals"):
        close = closes.get(sig.symbol)
        if close is None:
            raise WireError(f"no close for {sig.symbol} in the portfolio; every signal's symbol needs one")
        order = _sized_order(desk, step, sig, positions.get(sig.symbol, 0), close, equity, allocation, n_symbols,
                             created_at)
        if order is None:
            continue
        decision = decide(order, close, exposure, limits, halted=halted, now=decided_at)
        decisions.append({"signal_id": sig.id, "order": order_to_json(order), "decision": decision_to_json(decision)})
        if decision.approved:
            approved.append(order_to_json(order))
    return {"decisions": decisions, "approved": approved}


async def execute(value: Any, tools: Any) -> dict[str, Any]:
    """Approved orders + the step's bars -> fills. Paper (the default): the paper broker fills on the step's bars
    (bar-based, slippage, fees, volume cap, day orders). Live (the desk's step took both gates and its approval):
    each order goes to Alpaca through the ``alpaca-trading`` connector (tool gateway, the tenant's stored keys) under
    its client order id, exactly once however often the step runs, and what Alpaca reports filled is the fill."""
    doc = _object(value, "mode, orders, bars, paper")
    mode = doc.get("mode", "paper")
    if mode == "live":
        return await _execute_live(doc, AlpacaTrading(tools))
    if mode != "paper":
        raise ValueError(f"mode {mode!r} is not paper or live")
    return execute_paper(doc)


def execute_paper(doc: Mapping[str, Any]) -> dict[str, Any]:
    try:
        broker = PaperBroker(paper_from_json(doc.get("paper")))
    except DeskConfigError as e:
        raise ValueError(str(e)) from None
    orders = many(order_from_json, doc.get("orders") or [], "input.orders")
    for order in orders:
        broker.submit(order)
    fills = []
    series = series_from_json(doc.get("bars") or {}, "input.bars")
    days = set()
    for symbol in sorted(series):
        for bar in series[symbol]:
            fills.extend(broker.on_bar(bar))
            days.add(bar.start.date())
    for day in sorted(days):
        broker.end_day(day)
    states = [broker.order(o.client_order_id) for o in orders]
    return {"fills": [fill_to_json(f) for f in fills],
            "orders": [{"client_order_id": s.order.client_order_id, "status": s.status.value,
                        "filled_quantity": s.filled_quantity} for s in states]}


async def _execute_live(doc: Mapping[str, Any], broker: LiveBroker) -> dict[str, Any]:
    orders = many(order_from_json, doc.get("orders") or [], "input.orders")
    series = series_from_json(doc.get("bars") or {}, "input.bars")
    fills, reports = [], []
    for order in orders:
        try:
            sent = await send_once(broker, order)
        except BrokerError as e:
            raise ValueError(str(e)) from None
        bars = series.get(order.symbol) or []
        fill = fill_of(sent.order, bars[0].start if bars else sent.order.filled_at or dt.datetime.now(dt.UTC))
        if fill is not None:
            fills.append(fill_to_json(fill))
        reports.append({"client_order_id": order.client_order_id, "status": sent.order.status,
                        "filled_quantity": sent.order.filled_quantity, "broker": broker.name,
                        "broker_order_id": sent.order.broker_id, "how": sent.how})
    return {"fills": fills, "orders": reports}


def _recap_document(doc: Mapping[str, Any]) -> tuple[dict[str, Any], list[Any], list[Any]]:
    day = date_of(doc.get("day"), "input.day")
    opening = doc.get("opening_cash")
    if isinstance(opening, bool) or not isinstance(opening, int) or opening < 0:
        raise ValueError("input.opening_cash must be whole cents")
    ledger = Ledger(opening)
    orders = {o.client_order_id: o for o in many(order_from_json, doc.get("orders") or [], "input.orders")}
    fills = many(fill_from_json, doc.get("fills") or [], "input.fills")
    for fill in fills:
        order = orders.get(fill.client_order_id)
        if order is None:
            raise ValueError(f"fill {fill.id} has no order in input.orders")
        ledger.post_fill(fill, order)
    today = set(doc.get("fills_today") or [])
    closes = {str(s): int(c) for s, c in dict(doc.get("closes") or {}).items()}
    signals = many(signal_from_json, doc.get("signals") or [], "input.signals")
    bars = series_from_json(doc.get("history") or {}, "input.history")
    report = recap_of.daily(day, ledger, closes, int(doc["equity_start"]), [f for f in fills if f.id in today],
                            signals, bars)
    curve = _object(doc.get("equity_curve") or {"days": [], "equity": []}, "equity_curve: days, equity")
    return recap_to_json(report) | {"desk": doc.get("desk"), "trial_balance_balanced":
                                    ledger.trial_balance().balanced}, list(curve["days"]), list(curve["equity"])


async def recap(value: Any, tools: Any) -> dict[str, Any]:
    """The day's recap from the desk's books (P&L, positions, exposure, best and worst fills, signal hit rate, a
    template narrative), and the equity curve as a PNG artifact of the recap's ticket (``equity.png``). A scheduled
    recap *request* (``{"request": "daily-recap", "desk": NAME}``) is only acknowledged: the desk service answers it
    with the recap from its books (:mod:`oshal_trading.recap_requests`)."""
    doc = _object(value, "desk, day, opening_cash, fills, orders, closes")
    if "request" in doc:
        return recap_request(doc)
    document, days, equity = _recap_document(doc)
    if days:
        png = await chart_process.render([date_of(d, "equity_curve.days") for d in days], [int(e) for e in equity],
                                         f"{document['desk']} equity to {document['day']}")
        stored = await tools.put_artifact("equity.png", png, "image/png")
        document["chart"] = {"artifact": "equity.png", "bytes": len(png), "sha256": stored.get("sha256")}
    return document


def narrate(value: Any) -> dict[str, Any]:
    """{recap: the recap's figures} -> {narrative}. Offline the narrator keeps the recap's template narrative; on a
    model provider the ``trade-narrator`` bot (model-capable) writes it from the same figures."""
    doc = _object(value, "recap")
    recap = _object(doc.get("recap"), "recap: the recap bot's figures, with its template narrative")
    narrative = recap.get("narrative")
    if not isinstance(narrative, str) or not narrative.strip():
        raise ValueError("input.recap.narrative must be the recap's template narrative")
    return {"narrative": narrative}


def recap_request(doc: Mapping[str, Any]) -> dict[str, Any]:
    if doc.get("request") != "daily-recap":
        raise ValueError(f"input.request {doc.get('request')!r}: the recap bot takes the request 'daily-recap'")
    desk = doc.get("desk")
    if not isinstance(desk, str) or not DESK_NAME.match(desk):
        raise ValueError(f"input.desk {desk!r} must name a desk (e.g. main)")
    return {"request": "daily-recap", "desk": desk,
            "answered_by": "the desk service (oshal trade desk serve) files the recap of the last booked session"}


def date_of(value: Any, where: str) -> dt.date:
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise ValueError(f"{where}: {value!r} is not a date (YYYY-MM-DD)") from None


def recap_to_json(r: recap_of.Recap) -> dict[str, Any]:
    return {"day": r.day.isoformat(), "equity_start": r.equity_start, "equity_end": r.equity_end, "pnl": r.pnl,
            "realized_total": r.realized_total, "unrealized": r.unrealized, "fees_total": r.fees_total,
            "positions": [{"symbol": p.symbol, "quantity": p.quantity, "average_cost": p.average_cost,
                           "mark": p.mark, "unrealized": p.unrealized} for p in r.positions],
            "gross_exposure": r.gross_exposure, "net_exposure": r.net_exposure, "fills": r.fills,
            "best_fill": r.best_fill, "worst_fill": r.worst_fill, "signals_scored": r.signals_scored,
            "signal_hit_rate": r.signal_hit_rate, "narrative": r.narrative}
