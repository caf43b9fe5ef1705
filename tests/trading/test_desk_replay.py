"""The desk on the running platform: a replayed session through signal -> risk -> paper fill -> ledger, on the
desk's bots and lanes, its books kept as application records — checked against the ledger's invariants and against
the backtest over the same bars; a restarted service resumes without booking anything twice."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from conftest import Platform, make_tenant
from desk_support import END, START, SYMBOLS, all_records, desk, desk_config, marked_equity
from oshal_trading import analyst, backtest
from oshal_trading.bars import load_bundled
from oshal_trading.desk import trace
from oshal_trading.intents import client_order_id
from oshal_trading.ledger import CASH
from oshal_trading.platform import RecordConflict
from oshal_trading.wire import fill_from_json


async def test_a_replayed_session_books_every_fill_traceably_and_matches_the_backtest(platform: Platform) -> None:
    ops = make_tenant(platform, "desk-replay", role="operator")
    service = desk(platform.url, ops.key)
    await service.start()
    outcomes = await service.run(END)
    await service.api.aclose()

    expected = backtest.run(desk_config().backtest_config(), load_bundled(SYMBOLS), start=START, end=END)
    assert [o.day for o in outcomes] == list(expected.days)
    # the same fills, to the cent, and the same equity at every close
    def same(f: Any) -> tuple[Any, ...]:
        return (f.symbol, f.side, f.quantity, f.price, f.fee, f.at)

    assert [same(f) for f in service.books.fills] == [same(f) for f in expected.fills]
    assert len(expected.fills) >= 10
    assert [o.equity for o in outcomes] == list(expected.equity)
    assert {o.outcome for o in outcomes} >= {"traded", "no_orders"}

    # the invariants, on the books the records rebuild (a fresh service reads only the records)
    again = desk(platform.url, ops.key)
    await again.start()
    ledger = again.books.ledger
    assert [same(f) for f in again.books.fills] == [same(f) for f in expected.fills]
    balance = ledger.trial_balance()
    assert balance.balanced and balance.total_debits == balance.total_credits > 0
    assert ledger.reconcile(again.books.fills) == []
    records = again.records
    steps = await all_records(records, "steps", "main")
    last = steps[f"main.{END.isoformat()}"]
    positions = {s: p.quantity for s, p in ledger.positions().items()}
    assert last["cash"] == ledger.balance(CASH)
    assert marked_equity(last["cash"], positions, last["closes"]) == last["equity"] == expected.equity[-1]

    # every fill traces to its order, its (approving) risk decision and its signal
    fills = await all_records(records, "fills", "main")
    assert len(fills) == len(expected.fills)
    journal = await all_records(records, "journal", "main")
    assert sum(p["amount"] for e in journal.values() for p in e["postings"]) == 0
    for body in fills.values():
        fill = fill_from_json(body["fill"])
        walked = await trace(records, fill.id)
        assert walked.order["order"]["client_order_id"] == fill.client_order_id
        assert walked.decision["decision"]["approved"] is True
        assert walked.decision["order"]["client_order_id"] == fill.client_order_id
        assert walked.signal["signal"]["id"] == walked.order["signal_id"] == walked.decision["signal_id"]
        assert walked.signal["signal"]["symbol"] == fill.symbol
        # the analyst's note is stored with its signal: the case for it, and the values the strategy used
        note = walked.signal["analysis"]
        assert note.startswith(f"{walked.signal['signal']['strategy']} says go ") and fill.symbol in note
        assert [e["fill_id"] for e in walked.journal] == [fill.id]
    await again.api.aclose()


async def test_a_restarted_service_resumes_and_a_replayed_step_books_nothing_twice(platform: Platform) -> None:
    ops = make_tenant(platform, "desk-resume", role="operator")
    first = desk(platform.url, ops.key)
    await first.start()
    day = START
    while True:  # step by step up to the first session that traded
        outcome = (await first.run(day))[-1]
        if outcome.fills:
            break
        day = await _next_day(first, day)
    await first.api.aclose()

    # a restart: everything the new service knows comes from the records
    second = desk(platform.url, ops.key)
    await second.start()
    assert second.books.curve[-1] == (outcome.day, outcome.equity)
    records = second.records
    counts = {c: len(await all_records(records, c, "main")) for c in ("orders", "fills", "journal", "steps")}
    step = await records.get("steps", f"main.{day.isoformat()}")
    assert step is not None and step["fills"] == list(outcome.fills)

    # the step's ticket again, by its idempotency key: the same ticket, not a second trade
    ticket = await second.api.get(f"/v1/tickets/{step['ticket']}")
    replayed = await second.api.post("/v1/tickets", {"type": "desk-step", "input": ticket["input"],
                                                     "idempotency_key": f"desk:main:{day.isoformat()}:paper"})
    assert replayed["id"] == step["ticket"] and replayed.get("created") is False
    # its execute phase retried (the execute bot run again on the same approved orders): the same fills, ids
    # included, and booking the step again changes nothing
    approved = [d["order"] for d in ticket["result"]["output"]["decisions"] if d["decision"]["approved"]]
    retried = await second.api.post("/v1/tickets", {"bot": "trade-execute", "input": {
        "mode": "paper", "orders": approved, "bars": ticket["input"]["bars"], "paper": ticket["input"]["paper"]}},
        wait=30)
    assert retried["status"] == "done", retried
    assert retried["result"]["fills"] == ticket["result"]["output"]["fills"]
    books_before = second.books.ledger.trial_balance()
    again = await second.record(day, step["ticket"], {"outcome": "traded",
                                                      "output": {**ticket["result"]["output"],
                                                                 "fills": retried["result"]["fills"]}})
    assert list(again.fills) == step["fills"] and again.equity == step["equity"]
    assert {c: len(await all_records(records, c, "main")) for c in ("orders", "fills", "journal", "steps")} == counts
    assert second.books.ledger.trial_balance() == books_before
    assert len(second.books.ledger.entries()) == 1 + len(step["fills"])  # the opening entry and one per fill

    # and the rest of the session, resumed after the last recorded step
    rest = await second.run(END)
    assert rest[0].day > day and rest[-1].day == END
    await second.api.aclose()


async def test_a_different_order_under_a_recorded_client_order_id_stops_the_desk(platform: Platform) -> None:
    """The 409 guard: whatever re-runs a step, it cannot book a second, different order under one id."""
    ops = make_tenant(platform, "desk-conflict", role="operator")
    probe = desk(platform.url, ops.key, desk_config("probe"))
    await probe.start()
    day = START
    while True:
        outcome = (await probe.run(day))[-1]
        if outcome.fills:
            break
        day = await _next_day(probe, day)
    planted = await probe.records.get("orders", fill_from_json(
        (await probe.records.get("fills", outcome.fills[0].replace("/", ".")))["fill"]).client_order_id)
    assert planted is not None
    await probe.api.aclose()

    # the same order id, already recorded with another quantity (as a changed desk re-running the step would)
    service = desk(platform.url, ops.key)
    await service.start()
    coid = client_order_id("main", day.isoformat(), planted["signal_id"])
    clash = {**planted, "desk": "main", "order": {**planted["order"], "client_order_id": coid, "quantity": 1}}
    assert await service.records.put("orders", coid, clash) == "created"
    with pytest.raises(RecordConflict, match=f"orders/{coid}"):
        await service.run(day)
    assert await service.records.get("steps", f"main.{day.isoformat()}") is None  # the step is not booked
    assert await all_records(service.records, "fills", "main") == {}
    await service.api.aclose()


async def _next_day(service: Any, day: dt.date) -> dt.date:
    days = await service.trading_days(day + dt.timedelta(days=1), END)
    return days[0]


def test_an_analysts_notes_are_kept_only_for_the_steps_own_signals() -> None:
    kept = analyst.kept_notes({"notes": [
        {"signal": "s1", "rationale": "  the case  "}, {"signal": "s1", "rationale": "a second note"},
        {"signal": "invented", "rationale": "a signal the strategy never made"}, {"signal": "s2", "rationale": ""},
        "not a note", {"signal": "s2", "rationale": "x" * 5000}]}, {"s1", "s2"})
    assert kept == {"s1": "the case", "s2": "x" * analyst.MAX_NOTE_CHARS}
    assert analyst.kept_notes("not an object", {"s1"}) == {}
    assert analyst.kept_notes({"notes": "nope"}, {"s1"}) == {}
