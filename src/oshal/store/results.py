"""Result commits for the collector: attempts, phase/ticket advance and ledger rows, idempotent on keys."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from uuid import UUID

from oshal.store.db import Statement


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
# tests/store/test_function_files.py holds the names to the types. JSON rather than arrays of the composite types,
# which psycopg writes field by field in Python: those cost the collector more per batch (bench/record_results.py).
_ATTEMPT_FIELDS = tuple(f.name for f in fields(AttemptRow) if f.name != "output_json")
_LEDGER_FIELDS = tuple(f.name for f in fields(LedgerRow))


def _attempt(row: AttemptRow) -> str:
    """One attempt as a JSON object; the output goes in as the JSON text it already is (decoding it only to encode
    it again cost the collector two passes over every output)."""
    record = json.dumps({name: getattr(row, name) for name in _ATTEMPT_FIELDS}, default=str)
    return f'{record[:-1]},"output":{row.output_json or "null"}}}'


def record_results(tenant: UUID, attempts: Sequence[AttemptRow], ledger: Sequence[LedgerRow]) -> Statement:
    """One tenant's share of a collector batch, as one call; its rows name the tickets that finished."""
    return ("SELECT finished_ticket AS id, finished_status AS status, parent "
            "FROM oshal_record_results(%s, %s::jsonb, %s::jsonb)",
            (tenant, f"[{','.join(_attempt(a) for a in attempts)}]",
             json.dumps([{name: getattr(r, name) for name in _LEDGER_FIELDS} for r in ledger], default=str)))


def tickets_read_back(ticket_ids: Sequence[UUID]) -> Statement:
    """The rows GET /v1/tickets/{id} shows for ``ticket_ids``, read in the transaction of the tenant's
    :func:`record_results` after it (which set the tenant: RLS keeps every other tenant's tickets out)."""
    return "SELECT * FROM ticket_view WHERE id = ANY(%s)", (list(ticket_ids),)
