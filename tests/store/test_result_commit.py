"""The collector's result commit (oshal_record_results through record_results_unflushed) on its short paths: a
batch without model calls, a batch that finishes nothing, and the read back of only the tickets waited for."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import fields
from typing import Any

from conftest import Platform, make_tenant
from oshal.store.results import AttemptRow, LedgerRow, _attempt, _call, record_results_unflushed
from oshal.store.tickets import NewTicket, insert_dispatched
from oshal.types import new_id


def _dispatched(platform: Platform, tenant: uuid.UUID, n: int) -> list[NewTicket]:
    """Tickets created and dispatched in the store only: no bot runs them, the test records their results."""
    rows = [NewTicket(new_id(), new_id(), "echo", '{"text": "hi"}', None, None) for _ in range(n)]
    platform.on_plane(platform.plane.db.call(insert_dispatched(tenant, None, rows)))
    return rows


def _done(row: NewTicket, deliveries: int = 1) -> AttemptRow:
    now = dt.datetime.now(dt.UTC)
    return AttemptRow(row.phase_id, 1, row.id, "done", '{"text": "hi"}', None, "echo-0", deliveries, now, now)


def _record(platform: Platform, tenant: uuid.UUID, attempts: list[AttemptRow], ledger: list[LedgerRow],
            read_back: list[str]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = platform.on_plane(
        platform.plane.db.call(record_results_unflushed(tenant, attempts, ledger, read_back)))
    return rows


def _events(platform: Platform, tickets: list[NewTicket]) -> list[tuple[Any, ...]]:
    with platform.superuser() as conn:
        return conn.execute("SELECT ticket_id, from_status, to_status, actor FROM ticket_events "
                            "WHERE ticket_id = ANY(%s) ORDER BY ticket_id", ([t.id for t in tickets],)).fetchall()


def test_a_batch_without_calls_finishes_its_tickets_and_reads_back_only_the_waited_one(platform: Platform) -> None:
    tenant = uuid.UUID(make_tenant(platform, "commit-nocalls").tenant_id)
    waited, unwaited = _dispatched(platform, tenant, 2)
    rows = _record(platform, tenant, [_done(waited), _done(unwaited)], [], [str(waited.id)])

    by_ticket = {row["finished_ticket"]: row for row in rows}
    assert {t: r["finished_status"] for t, r in by_ticket.items()} == {waited.id: "done", unwaited.id: "done"}
    # The waited ticket comes back as GET /v1/tickets/{id} shows it; the other one's read-back columns are empty.
    assert by_ticket[waited.id]["id"] == waited.id
    assert by_ticket[waited.id]["status"] == "done"
    assert by_ticket[waited.id]["result"] == {"text": "hi"}
    assert by_ticket[waited.id]["cost_micros"] == 0
    assert by_ticket[unwaited.id]["id"] is None and by_ticket[unwaited.id]["status"] is None
    # Both transitions recorded by the collector; nothing billed.
    assert sorted(_events(platform, [waited, unwaited])) == sorted(
        (t.id, "in_progress", "done", "collector") for t in (waited, unwaited))
    with platform.superuser() as conn:
        billed = conn.execute("SELECT count(*) FROM ledger WHERE ticket_id = ANY(%s)",
                              ([waited.id, unwaited.id],)).fetchone()
    assert billed == (0,)


def test_a_batch_that_finishes_nothing_records_no_transition(platform: Platform) -> None:
    tenant = uuid.UUID(make_tenant(platform, "commit-redelivered").tenant_id)
    ticket, = _dispatched(platform, tenant, 1)
    first = _record(platform, tenant, [_done(ticket)], [], [str(ticket.id)])
    assert [row["finished_status"] for row in first] == ["done"]

    # The same result delivered again: already recorded, so nothing finishes and no second transition is written
    # (the one row back is the "none" row, its finished_ticket NULL).
    again = _record(platform, tenant, [_done(ticket)], [], [str(ticket.id)])
    assert [row["finished_ticket"] for row in again] == [None]
    assert _events(platform, [ticket]) == [(ticket.id, "in_progress", "done", "collector")]


def test_a_batch_with_calls_still_bills_them_next_to_results_without(platform: Platform) -> None:
    tenant = uuid.UUID(make_tenant(platform, "commit-calls").tenant_id)
    priced, plain = _dispatched(platform, tenant, 2)
    call = LedgerRow(f"{priced.phase_id}:1:1", priced.id, priced.phase_id, 1, "echo", "openai", "gpt-4o-mini",
                     1000, 100, 0, 0, 210, "estimated", computed_cost_micros=210)
    rows = _record(platform, tenant, [_done(priced), _done(plain)], [call], [str(priced.id), str(plain.id)])

    by_ticket = {row["finished_ticket"]: row for row in rows}
    assert by_ticket[priced.id]["cost_micros"] == 210 and by_ticket[priced.id]["calls"] == 1
    assert by_ticket[plain.id]["cost_micros"] == 0 and by_ticket[plain.id]["calls"] == 0



def test_an_attempt_goes_to_postgres_as_a_json_object_of_every_field_by_name() -> None:
    started = dt.datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=dt.UTC)
    for row in (AttemptRow(new_id(), 2, new_id(), "failed", None, 'it "broke"\n\u00e9', "host-7-0", 3, started, None),
                AttemptRow(new_id(), 1, new_id(), "done", '{"text": "h\\u00e9"}', None, "echo-0", 1, None, started)):
        sent = json.loads(_attempt(row))
        assert list(sent) == [f.name.removesuffix("_json") for f in fields(AttemptRow) if f.name != "output_json"] \
            + ["output"]
        expected = {f.name: getattr(row, f.name) for f in fields(AttemptRow) if f.name != "output_json"}
        assert sent == {**json.loads(json.dumps(expected, default=str)),
                        "output": None if row.output_json is None else json.loads(row.output_json)}


def test_a_ledger_row_goes_to_postgres_as_a_json_object_of_every_field_by_name() -> None:
    for row in (LedgerRow('call "1"\u00e9', new_id(), new_id(), 2, "echo", "openai", "gpt-4o-mini", 10, 20, 3, 4, 567,
                          "estimated", 5, 560, None, new_id()),
                LedgerRow("call-2", new_id(), new_id(), 1, "echo", "x", "y", 0, 0, 0, 0, 0, "unpriced")):
        sent = json.loads(_call(row))
        assert list(sent) == [f.name for f in fields(LedgerRow)]
        assert sent == json.loads(json.dumps({f.name: getattr(row, f.name) for f in fields(LedgerRow)}, default=str))
