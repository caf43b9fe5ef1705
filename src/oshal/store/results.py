"""Result commits for the collector: attempts, phase/ticket advance and ledger rows, idempotent on keys."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from operator import attrgetter
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


# Each row goes to the database as a record of oshal_attempt_row or oshal_ledger_row (migration 015), whose
# fields are these dataclasses' fields in this order (tests/store/test_function_files.py holds them to it).
_ATTEMPT_FIELDS = attrgetter(*(f.name for f in fields(AttemptRow)))
_LEDGER_FIELDS = attrgetter(*(f.name for f in fields(LedgerRow)))


def record_results(tenant: UUID, attempts: Sequence[AttemptRow], ledger: Sequence[LedgerRow]) -> Statement:
    """One tenant's share of a collector batch, as one call; its rows name the tickets that finished."""
    return ("SELECT finished_ticket AS id, finished_status AS status, parent "
            "FROM oshal_record_results(%s, %s::oshal_attempt_row[], %s::oshal_ledger_row[])",
            (tenant, [_ATTEMPT_FIELDS(a) for a in attempts], [_LEDGER_FIELDS(r) for r in ledger]))
