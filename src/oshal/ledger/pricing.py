"""Usage to cost, in integer micro-dollars. Only the collector calls this: cost is captured once."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from oshal.ledger.prices import PriceTable
from oshal.mesh.envelopes import CallUsage

_PER_MTOK = 1_000_000


@dataclass(frozen=True, slots=True)
class Priced:
    cost_micros: int
    source: str  # "provider" | "estimated" | "unpriced"


def price_call(table: PriceTable, call: CallUsage, at: dt.datetime) -> Priced:
    """A provider-reported cost wins; otherwise the effective price at ``at``; otherwise unpriced (0)."""
    if call.reported_cost_micros is not None:
        return Priced(call.reported_cost_micros, "provider")
    price = table.lookup(call.provider, call.model, at)
    if price is None:
        return Priced(0, "unpriced")
    scaled = (
        call.input_tokens * price.input
        + call.output_tokens * price.output
        + call.cached_read_tokens * price.cached_read
        + call.cache_write_tokens * price.cache_write
    )
    return Priced((scaled + _PER_MTOK // 2) // _PER_MTOK, "estimated")
