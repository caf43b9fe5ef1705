"""Result commits for the collector: attempts, phase/ticket advance and ledger rows, idempotent on keys."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
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


def record_results(tenant: UUID, attempts: Sequence[AttemptRow], ledger: Sequence[LedgerRow]) -> Statement:
    """One tenant's share of a collector batch, as one call; its rows name the tickets that finished."""
    return (
        "SELECT finished_ticket AS id, finished_status AS status, parent FROM oshal_record_results(%s, %s::uuid[], "
        "%s::int[], %s::uuid[], %s::text[], %s::text[], %s::text[], %s::text[], %s::int[], %s::timestamptz[], "
        "%s::timestamptz[], %s::text[], %s::uuid[], %s::uuid[], %s::int[], %s::text[], %s::text[], %s::text[], "
        "%s::bigint[], %s::bigint[], %s::bigint[], %s::bigint[], %s::bigint[], %s::text[], %s::bigint[], "
        "%s::bigint[], %s::bigint[], %s::uuid[])",
        (tenant, [a.phase_id for a in attempts], [a.attempt for a in attempts], [a.ticket_id for a in attempts],
         [a.outcome for a in attempts], [a.output_json for a in attempts], [a.error for a in attempts],
         [a.consumer for a in attempts], [a.deliveries for a in attempts], [a.started_at for a in attempts],
         [a.finished_at for a in attempts],
         [r.call_id for r in ledger], [r.ticket_id for r in ledger], [r.phase_id for r in ledger],
         [r.attempt for r in ledger], [r.bot for r in ledger], [r.provider for r in ledger],
         [r.model for r in ledger], [r.input_tokens for r in ledger], [r.output_tokens for r in ledger],
         [r.cached_read_tokens for r in ledger], [r.cache_write_tokens for r in ledger],
         [r.cost_micros for r in ledger], [r.price_source for r in ledger], [r.reasoning_tokens for r in ledger],
         [r.computed_cost_micros for r in ledger], [r.reported_cost_micros for r in ledger],
         [r.reservation_id for r in ledger]),
    )
