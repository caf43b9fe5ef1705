"""The desk service: drives the desk's workflow over the bars of its sessions and keeps its books as records.

Each desk step (one bar) is one ``desk-step`` ticket — signal → risk → execute on the desk's bots — whose
idempotency key is the desk and the step, so a restarted service gets the same ticket back instead of trading the
bar twice. When the step is done the service records, as application records (``/v1/apps/trading/records``), its
signals, every risk decision, the orders sent (client order id = a hash of signal, desk and step), the fills and the
journal entries, then the step itself, last. Records are written once: the same content again is accepted, different
content under the same name is refused (409), so a retried or replayed step never books an order or a fill twice,
and a step that would is stopped with the conflict. On start the service rebuilds the ledger from the recorded steps
and resumes after the last one.

The desk's switches (halt, live, autopilot) are records too (``switches``, newest wins); a halted desk's risk step
blocks every order (the kill-switch rule) and ``oshal trade halt`` also engages the platform's kill switch on the
execute bot.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib.resources import files
from typing import Any

import yaml

from oshal_trading import analyst, desk_config
from oshal_trading.bar_source import BarSource
from oshal_trading.desk_config import DeskConfig
from oshal_trading.intents import client_order_id
from oshal_trading.ledger import Ledger
from oshal_trading.model import Bar, Fill, Order, RiskDecision
from oshal_trading.platform import PlatformAPI, PlatformError, RecordConflict, Records
from oshal_trading.wire import (
    bars_to_columns,
    decision_from_json,
    fill_from_json,
    fill_to_json,
    order_from_json,
    order_to_json,
    series_to_json,
    when,
)

WORKFLOW = "desk-step"
EXECUTE_BOT = "trade-execute"
RECAP_BOT = "trade-recap"
NARRATOR_BOT = "trade-narrator"
MAX_NARRATIVE_CHARS = 4000
TERMINAL = ("done", "failed", "dead_letter", "cancelled", "escalated", "customer_action")
LIVE_FLAG = "OSHAL_TRADING_LIVE"

__all__ = ["DeskError", "DeskService", "StepOutcome", "client_order_id"]


class DeskError(Exception):
    """The desk cannot go on; the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class Switches:
    halted: bool = False
    live: bool = False
    autopilot: bool = False
    reason: str = ""
    seq: int = 0


@dataclass(frozen=True, slots=True)
class StepOutcome:
    day: dt.date
    ticket: str
    outcome: str  # traded, no_orders, orders_rejected, awaiting_approval, done_before
    fills: tuple[str, ...]
    equity: int


@dataclass
class Books:
    """The desk's state rebuilt from its records: the ledger and the equity at each step's close."""

    ledger: Ledger
    curve: list[tuple[dt.date, int]] = field(default_factory=list)
    closes: dict[str, int] = field(default_factory=dict)
    orders: dict[str, Order] = field(default_factory=dict)
    decisions: dict[str, RiskDecision] = field(default_factory=dict)
    fills: list[Fill] = field(default_factory=list)


def fill_key(fill_id: str) -> str:
    return fill_id.replace("/", ".")


def workflow_definition() -> dict[str, Any]:
    document = yaml.safe_load((files("oshal_trading") / "workflows" / "desk.yaml").read_text())
    assert isinstance(document, dict)
    return document


async def publish_workflow(api: PlatformAPI) -> dict[str, Any]:
    """Publish (or keep: identical definitions are not republished) the desk-step ticket type."""
    result: dict[str, Any] = await api.post("/v1/workflows", {"definition": workflow_definition()})
    return result


async def read_switches(records: Records, desk: str) -> Switches:
    latest = await records.latest("switches", f"{desk}.")
    if latest is None:
        return Switches()
    body = latest[1]
    return Switches(bool(body.get("halted")), bool(body.get("live")), bool(body.get("autopilot")),
                    str(body.get("reason") or ""), int(body.get("seq") or 0))


async def write_switches(records: Records, desk: str, *, by: str, reason: str, **changes: bool) -> Switches:
    """Record the desk's switches after ``changes`` (a new record each time; a concurrent change is retried)."""
    for _ in range(20):
        now = await read_switches(records, desk)
        state = {"halted": now.halted, "live": now.live, "autopilot": now.autopilot} | changes
        seq = now.seq + 1
        body = {"desk": desk, "seq": seq, **state, "reason": reason, "by": by, "changed": sorted(changes),
                "at": when(dt.datetime.now(dt.UTC))}
        try:
            await records.put("switches", f"{desk}.{seq:08d}", body)
        except RecordConflict:  # another writer took this number: read the state again
            continue
        return Switches(state["halted"], state["live"], state["autopilot"], reason, seq)
    raise DeskError(f"the switches of desk {desk!r} keep changing under this write; try again")


class DeskService:
    def __init__(self, api: PlatformAPI, config: DeskConfig, bars: BarSource, *, live_flag: bool = False,
                 wait_s: float = 120.0) -> None:
        self.api = api
        self.records = Records(api)
        self.config = config
        self.source = bars
        self.live_flag = live_flag
        self.wait_s = wait_s
        self.books = Books(Ledger(config.opening_cash))

    # --- start and resume ----------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Publish the workflow, record the desk's configuration (or check it is the recorded one), rebuild."""
        await publish_workflow(self.api)
        document = desk_config.to_json(self.config)
        stored = await self.records.get("desks", self.config.name)
        if stored is None:
            await self.records.put("desks", self.config.name, document)
        elif stored != document:
            changed = sorted(k for k in set(stored) | set(document) if stored.get(k) != document.get(k))
            raise DeskError(f"desk {self.config.name!r} exists with another configuration ({', '.join(changed)} "
                            "differ); a desk's books belong to its configuration",
                            ) from None
        await self.rebuild()

    async def rebuild(self) -> None:
        desk = self.config.name
        fills = {k: b for k, b in [kb async for kb in self.records.each("fills")] if b.get("desk") == desk}
        orders = {k: b for k, b in [kb async for kb in self.records.each("orders")] if b.get("desk") == desk}
        decisions = {k: b for k, b in [kb async for kb in self.records.each("risk")] if b.get("desk") == desk}
        books = Books(Ledger(self.config.opening_cash))
        for _, step in [kb async for kb in self.records.each("steps")]:
            if step.get("desk") != desk:
                continue
            for fid in step["fills"]:
                fill = fill_from_json(fills[fill_key(fid)]["fill"])
                order_doc = orders[fill.client_order_id]
                order = order_from_json(order_doc["order"])
                decision = decision_from_json(decisions[f"{desk}.{order_doc['decision_id']}"]["decision"])
                books.ledger.post_fill(fill, order, decision)
                books.orders[order.client_order_id] = order
                books.decisions[order.client_order_id] = decision
                books.fills.append(fill)
            books.curve.append((dt.date.fromisoformat(step["day"]), int(step["equity"])))
            books.closes = {str(s): int(c) for s, c in step["closes"].items()}
        self.books = books

    # --- running -------------------------------------------------------------------------------------------------

    async def trading_days(self, start: dt.date, end: dt.date) -> list[dt.date]:
        series = await self.source.bars(self.config.symbols, start, end)
        return sorted({b.start.date() for bars in series.values() for b in bars})

    async def run(self, end: dt.date, *, start: dt.date | None = None,
                  on_step: Any = None) -> list[StepOutcome]:
        """Every step from the one after the last recorded (a fresh desk: ``start``, default ``history_from``)
        up to ``end``; stops early at a step waiting for a person (live order approval)."""
        first = self.books.curve[-1][0] + dt.timedelta(days=1) if self.books.curve else (
            start or self.config.history_from)
        if first < self.config.history_from:
            raise DeskError(f"{first} is before the desk's history ({self.config.history_from}); the desk trades "
                            "from its history_from on")
        outcomes = []
        for day in await self.trading_days(first, end):
            outcome = await self.step(day)
            outcomes.append(outcome)
            if on_step is not None:
                await on_step(outcome)
            if outcome.outcome == "awaiting_approval":
                break
        return outcomes

    async def mode(self) -> tuple[str, Switches]:
        """paper or live: live needs both the configuration flag and the desk's live switch (else paper, or a
        refusal when the switch is on without the flag)."""
        switches = await read_switches(self.records, self.config.name)
        if switches.live and not self.live_flag:
            raise DeskError(f"desk {self.config.name!r} has its live switch on, but this service is not configured "
                            f"for live trading ({LIVE_FLAG}=1 is not set): refusing to trade",
                            ) from None
        return ("live" if switches.live and self.live_flag else "paper"), switches

    async def step_input(self, day: dt.date, mode: str, switches: Switches) -> dict[str, Any]:
        cfg = self.config
        series = await self.source.bars(cfg.symbols, cfg.history_from, day)
        history = {s: [b for b in bars if b.start.date() < day] for s, bars in series.items()}
        today = {s: [b for b in bars if b.start.date() == day] for s, bars in series.items()}
        decided: list[Bar] = [bars[-1] for bars in history.values() if bars]
        decided_on = max((b.start for b in decided), default=dt.datetime.combine(day, dt.time(), dt.UTC)
                         - dt.timedelta(days=1))
        closes = {s: bars[-1].close for s, bars in history.items() if bars}
        ledger = self.books.ledger
        curve = self.books.curve
        equity = ledger.equity(closes)
        day_start = curve[-2][1] if len(curve) >= 2 else cfg.opening_cash
        return {
            "desk": cfg.name, "step": day.isoformat(), "mode": mode, "autopilot": switches.autopilot,
            "halted": switches.halted, "strategy": cfg.strategy, "params": dict(cfg.params),
            "history": series_to_json(history), "bars": {s: bars_to_columns(b) for s, b in today.items() if b},
            "decided_at": when(decided_on),
            "portfolio": {"cash": ledger.cash(), "positions": {s: p.quantity for s, p in ledger.positions().items()},
                          "closes": closes, "equity": equity, "day_start_equity": day_start},
            "limits": desk_config.limits_to_json(cfg.risk_limits),
            "sizing": {"allocation": str(cfg.allocation), "symbols": len(cfg.symbols)},
            "paper": desk_config.paper_to_json(cfg.paper),
        }

    async def _wait(self, ticket_id: str) -> dict[str, Any]:
        deadline = time.monotonic() + self.wait_s
        while True:
            ticket: dict[str, Any] = await self.api.get(f"/v1/tickets/{ticket_id}", wait=20)
            if ticket["status"] in TERMINAL or ticket["status"] == "approval_required":
                return ticket
            if time.monotonic() >= deadline:
                raise DeskError(f"step ticket {ticket_id} is still {ticket['status']} after {self.wait_s:g} s",
                                ) from None

    async def step(self, day: dt.date) -> StepOutcome:
        """Run the desk's step on ``day``'s bar (or return it, if it is recorded already)."""
        desk = self.config.name
        done = await self.records.get("steps", f"{desk}.{day.isoformat()}")
        if done is not None:
            return StepOutcome(day, done["ticket"], "done_before", tuple(done["fills"]), int(done["equity"]))
        mode, switches = await self.mode()
        body = {"type": WORKFLOW, "input": await self.step_input(day, mode, switches),
                "idempotency_key": f"desk:{desk}:{day.isoformat()}:{mode}"}
        try:
            created = await self.api.post("/v1/tickets", body)
        except PlatformError as e:
            raise DeskError(f"the platform refused the step on {day}: {e}") from e
        ticket = await self._wait(str(created["id"]))
        if ticket["status"] == "approval_required":
            return StepOutcome(day, str(ticket["id"]), "awaiting_approval", (), self.books.curve[-1][1]
                               if self.books.curve else self.config.opening_cash)
        if ticket["status"] != "done":
            raise DeskError(f"step {day} (ticket {ticket['id']}) ended {ticket['status']}: "
                            f"{ticket.get('error') or ticket.get('status_reason') or 'no reason given'}")
        return await self.record(day, str(ticket["id"]), ticket["result"], mode=str(ticket["input"].get("mode")
                                                                                    or "paper"))

    async def record(self, day: dt.date, ticket_id: str, result: Mapping[str, Any], *,
                     mode: str = "paper") -> StepOutcome:
        """Book a finished step: every record first, the step last (so a crash in between re-runs the step, and its
        records come back equal). A live order's record keeps the broker's order id and status."""
        desk, step = self.config.name, day.isoformat()
        outcome, output = str(result.get("outcome") or ""), result.get("output") or {}
        executed = {str(o.get("client_order_id")): o for o in output.get("orders") or [] if isinstance(o, Mapping)}
        signals = list(output.get("signals") or [])
        notes = analyst.kept_notes(output.get("analysis"), {str(s["id"]) for s in signals})
        for signal in signals:
            body = {"desk": desk, "step": step, "signal": signal}
            if signal["id"] in notes:
                body["analysis"] = notes[signal["id"]]
            await self.records.put("signals", f"{desk}.{signal['id']}", body)
        approved: dict[str, tuple[Order, RiskDecision]] = {}
        for item in output.get("decisions") or []:
            decision = decision_from_json(item["decision"])
            order = order_from_json(item["order"])
            await self.records.put("risk", f"{desk}.{decision.id}", {"desk": desk, "step": step,
                                                                     "signal_id": item["signal_id"],
                                                                     "order": item["order"],
                                                                     "decision": item["decision"]})
            if decision.approved and outcome == "traded":  # sent to the broker (a rejected live step sends none)
                approved[order.client_order_id] = (order, decision)
                document = {"desk": desk, "step": step, "order": order_to_json(order), "signal_id": order.signal_id,
                            "decision_id": decision.id, "mode": mode}
                report = executed.get(order.client_order_id) or {}
                if mode == "live" and report:
                    document["broker"] = {k: report.get(k) for k in ("broker", "broker_order_id", "status",
                                                                     "filled_quantity")}
                await self.records.put("orders", order.client_order_id, document)
        fills = [fill_from_json(f) for f in output.get("fills") or []]
        for fill in fills:
            if fill.client_order_id not in approved:
                raise DeskError(f"step {step} reports fill {fill.id} of order {fill.client_order_id}, which its risk "
                                "step did not approve; nothing of this step is booked")
        series = await self.source.bars(self.config.symbols, day, day)
        closes = dict(self.books.closes) | {s: bars[-1].close for s, bars in series.items() if bars}
        for fill in fills:
            order, decision = approved[fill.client_order_id]
            await self.records.put("fills", fill_key(fill.id), {"desk": desk, "step": step,
                                                                "fill": fill_to_json(fill),
                                                                "order_id": order.client_order_id})
            entry = self.books.ledger.post_fill(fill, order, decision)
            await self.records.put("journal", f"{desk}.{entry.id}", {
                "desk": desk, "step": step, "entry": entry.id, "fill_id": fill.id, "memo": entry.memo,
                "at": when(entry.at) if entry.at else None,
                "postings": [{"account": p.account, "amount": p.amount} for p in entry.postings]})
            self.books.orders[order.client_order_id] = order
            self.books.decisions[order.client_order_id] = decision
            self.books.fills.append(fill)
        equity = self.books.ledger.equity(closes)
        await self.records.put("steps", f"{desk}.{step}", {
            "desk": desk, "day": step, "ticket": ticket_id, "outcome": outcome,
            "signals": [s["id"] for s in output.get("signals") or []],
            "decisions": [i["decision"]["id"] for i in output.get("decisions") or []],
            "orders": output.get("orders") or [], "fills": [f.id for f in fills], "closes": closes,
            "equity": equity, "cash": self.books.ledger.cash()})
        self.books.curve.append((day, equity))
        self.books.closes = closes
        return StepOutcome(day, ticket_id, outcome, tuple(f.id for f in fills), equity)


    async def recap(self, day: dt.date) -> dict[str, Any]:
        """The day's recap, written by the recap bot on its own ticket (one per desk and day) with the equity chart
        as that ticket's artifact ``equity.png``; kept as the record ``recaps/<desk>.<day>``."""
        desk = self.config.name
        kept = await self.records.get("recaps", f"{desk}.{day.isoformat()}")
        if kept is not None:
            return kept
        curve = [(d, e) for d, e in self.books.curve if d <= day]
        if not curve or curve[-1][0] != day:
            raise DeskError(f"desk {desk!r} has no booked session on {day}; replay it first")
        equity_start = curve[-2][1] if len(curve) >= 2 else self.config.opening_cash
        signals = [body["signal"] async for _, body in self.records.each("signals") if body.get("desk") == desk
                   and body["step"] <= day.isoformat()]
        compact = [s | {"rationale": "", "inputs": {}} for s in signals]  # the hit rate needs side, symbol, time
        first = min((dt.date.fromisoformat(s["at"][:10]) for s in signals), default=day) - dt.timedelta(days=1)
        series = await self.source.bars(self.config.symbols, max(first, self.config.history_from), day)
        fills = [f for f in self.books.fills if f.at.date() <= day]
        body = {"bot": RECAP_BOT, "idempotency_key": f"recap:{desk}:{day.isoformat()}", "input": {
            "desk": desk, "day": day.isoformat(), "opening_cash": self.config.opening_cash,
            "equity_start": equity_start, "fills": [fill_to_json(f) for f in fills],
            "orders": [order_to_json(self.books.orders[c]) for c in dict.fromkeys(f.client_order_id for f in fills)],
            "fills_today": [f.id for f in fills if f.at.date() == day], "closes": self.books.closes,
            "signals": compact, "history": series_to_json(series),
            "equity_curve": {"days": [d.isoformat() for d, _ in curve], "equity": [e for _, e in curve]}}}
        created = await self.api.post("/v1/tickets", body)
        ticket = await self._wait(str(created["id"]))
        if ticket["status"] != "done":
            raise DeskError(f"the recap of {day} (ticket {ticket['id']}) ended {ticket['status']}: "
                            f"{ticket.get('error') or 'no reason given'}")
        narrative = await self._narrate(day, ticket["result"])
        document = {"desk": desk, "day": day.isoformat(), "ticket": str(ticket["id"]), "recap": ticket["result"],
                    "narrative": narrative}
        await self.records.put("recaps", f"{desk}.{day.isoformat()}", document)
        return document

    async def _narrate(self, day: dt.date, recap: Mapping[str, Any]) -> dict[str, Any]:
        """The recap's narrative from the narrator bot (a model's words when one is configured), on its own ticket
        (one per desk and day, so a re-run gets the same words); the template's when the narrator fails."""
        desk, template = self.config.name, str(recap.get("narrative") or "")
        figures = {k: v for k, v in recap.items() if k != "chart"}
        created = await self.api.post("/v1/tickets", {"bot": NARRATOR_BOT, "idempotency_key":
                                                      f"narrate:{desk}:{day.isoformat()}",
                                                      "input": {"recap": figures}})
        ticket = await self._wait(str(created["id"]))
        text = (ticket.get("result") or {}).get("narrative") if ticket["status"] == "done" else None
        if isinstance(text, str) and text.strip():
            return {"text": text.strip()[:MAX_NARRATIVE_CHARS], "by": NARRATOR_BOT, "ticket": str(ticket["id"])}
        return {"text": template, "by": "template", "ticket": str(ticket["id"]),
                "note": f"the narrator's ticket ended {ticket['status']}: {ticket.get('error') or 'no narrative'}"}


@dataclass(frozen=True, slots=True)
class TraceOut:
    fill: dict[str, Any]
    order: dict[str, Any]
    decision: dict[str, Any]
    signal: dict[str, Any]
    journal: list[dict[str, Any]]


async def trace(records: Records, fill_id: str) -> TraceOut:
    """Walk a fill back: fill -> order -> risk decision -> signal (and the journal entry that booked it)."""
    fill = await records.get("fills", fill_key(fill_id))
    if fill is None:
        raise DeskError(f"no fill {fill_id!r} is recorded", ) from None
    desk = fill["desk"]
    order = await records.get("orders", fill["order_id"])
    if order is None:
        raise DeskError(f"fill {fill_id} names order {fill['order_id']}, which is not recorded")
    decision = await records.get("risk", f"{desk}.{order['decision_id']}")
    signal = await records.get("signals", f"{desk}.{order['signal_id']}")
    if decision is None or signal is None:
        raise DeskError(f"order {fill['order_id']}: its risk decision or signal is not recorded")
    journal = [body async for _, body in records.each("journal") if body.get("fill_id") == fill_id]
    return TraceOut(fill, order, decision, signal, journal)
