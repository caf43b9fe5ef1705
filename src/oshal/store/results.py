"""Result commits for the collector: attempts, phase/ticket advance and ledger rows, idempotent on keys."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from oshal.store.db import Statement

_text = json.encoder.encode_basestring_ascii  # a str as a JSON string, as json.dumps writes it (C)


@dataclass(frozen=True, slots=True)
class AttemptRow:
    phase_id: UUID
    attempt: int
    ticket_id: UUID
    outcome: str
    output_json: str | None
    error: str | None
    consumer: str
    deliveries: int
    started_at: datetime | None
    finished_at: datetime | None


@dataclass(frozen=True, slots=True)
class LedgerRow:
    call_id: str
    ticket_id: UUID
    phase_id: UUID
    attempt: int
    bot: str
    provider: str
    model: str
    input_tokens: int
    output_tokens: int
    cached_read_tokens: int
    cache_write_tokens: int
    cost_micros: int
    price_source: str
    reasoning_tokens: int = 0
    computed_cost_micros: int | None = None
    reported_cost_micros: int | None = None
    reservation_id: UUID | None = None


# The rows go to oshal_record_results as JSON arrays of records of oshal_attempt_row and oshal_ledger_row
# (migration 015), keyed by these fields' names (output_json's text goes as the JSON value "output");
# tests/store/test_function_files.py holds the names to the types, tests/store/test_result_commit.py the JSON to the
# fields. JSON rather than arrays of the composite types, which psycopg writes field by field in Python: those cost
# the collector more per batch (bench/record_results.py).


def _attempt(row: AttemptRow) -> str:
    """One attempt as a JSON object, written out field by field (half the time of a dict through json.dumps, whose
    ids and times each went through its fallback); the output goes in as the JSON text it already is (decoding it
    only to encode it again cost the collector two passes over every output)."""
    return (f'{{"phase_id":"{row.phase_id}","attempt":{row.attempt:d},"ticket_id":"{row.ticket_id}",'
            f'"outcome":{_text(row.outcome)},"error":{_maybe(row.error)},"consumer":{_text(row.consumer)},'
            f'"deliveries":{row.deliveries:d},"started_at":{_maybe(row.started_at)},'
            f'"finished_at":{_maybe(row.finished_at)},"output":{row.output_json or "null"}}}')


def _maybe(value: object) -> str:
    """A JSON string of ``value`` as text (a time as str() writes it, which Postgres reads), or null."""
    return "null" if value is None else _text(str(value))


def record_results(tenant: UUID, attempts: Sequence[AttemptRow], ledger: Sequence[LedgerRow]) -> Statement:
    """One tenant's share of a collector batch, as one call; its rows name the tickets that finished."""
    return ("SELECT finished_ticket AS id, finished_status AS status, parent "
            "FROM oshal_record_results(%s, %s::jsonb, %s::jsonb)", (tenant, *_records(attempts, ledger)))



def _records(attempts: Sequence[AttemptRow], ledger: Sequence[LedgerRow]) -> tuple[str, str]:
    return f"[{','.join(_attempt(a) for a in attempts)}]", f"[{','.join(_call(c) for c in ledger)}]"


def _call(row: LedgerRow) -> str:
    """One ledger row as a JSON object, written out as :func:`_attempt` writes an attempt."""
    return (f'{{"call_id":{_text(row.call_id)},"ticket_id":"{row.ticket_id}","phase_id":"{row.phase_id}",'
            f'"attempt":{row.attempt:d},"bot":{_text(row.bot)},"provider":{_text(row.provider)},'
            f'"model":{_text(row.model)},"input_tokens":{row.input_tokens:d},"output_tokens":{row.output_tokens:d},'
            f'"cached_read_tokens":{row.cached_read_tokens:d},"cache_write_tokens":{row.cache_write_tokens:d},'
            f'"cost_micros":{row.cost_micros:d},"price_source":{_text(row.price_source)},'
            f'"reasoning_tokens":{row.reasoning_tokens:d},"computed_cost_micros":{_number(row.computed_cost_micros)},'
            f'"reported_cost_micros":{_number(row.reported_cost_micros)},'
            f'"reservation_id":{_maybe(row.reservation_id)}}}')


def _number(value: int | None) -> str:
    return "null" if value is None else f"{value:d}"


# The same call, committed without waiting for the disk (the setting is read at commit, so its place in the statement
# does not matter), with where the WAL is before it (each row: wal_written, wal_flushed) and, for each ticket of
# ``read_back`` it finishes, the row GET /v1/tickets/{id} shows (oshal_ticket: under the same tenant, RLS applies;
# volatile, so it sees what oshal_record_results wrote, which returns its rows only once it is done). One row at
# least; a finished_ticket of NULL stands for none. OFFSET 0 keeps the subquery whole, so its WHERE (outer columns
# only) gates the call: a filter outside it ran oshal_ticket for every finished ticket of the batch, waited for or
# not (in a batch of 500 with no waiters, 60% of the statement's time, growing with the tables).
_UNFLUSHED = (
    "SELECT s.wal_written, s.wal_flushed, r.finished_ticket, r.finished_status, r.parent, v.* "
    "FROM (SELECT set_config('synchronous_commit', 'off', true) AS synchronous_commit, "
    "(pg_current_wal_insert_lsn() - '0/0'::pg_lsn)::int8 AS wal_written, "
    "(pg_current_wal_flush_lsn() - '0/0'::pg_lsn)::int8 AS wal_flushed) s "
    "LEFT JOIN LATERAL oshal_record_results(%(tenant)s, %(results)s::jsonb, %(calls)s::jsonb) r ON true "
    "LEFT JOIN LATERAL (SELECT * FROM oshal_ticket(%(tenant)s, r.finished_ticket) "
    "WHERE r.finished_ticket = ANY(%(read_back)s::uuid[]) "
    "AND r.finished_status NOT IN ('step', 'fence', 'duplicate') OFFSET 0) v ON true")


def record_results_unflushed(tenant: UUID, attempts: Sequence[AttemptRow], ledger: Sequence[LedgerRow],
                             read_back: Sequence[str]) -> Statement:
    """:func:`record_results` for the collector's usual path: see _UNFLUSHED."""
    results, calls = _records(attempts, ledger)
    return _UNFLUSHED, {"tenant": tenant, "results": results, "calls": calls, "read_back": list(read_back)}
