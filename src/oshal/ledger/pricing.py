"""Usage to cost, in integer micro-dollars. Only the collector calls this: cost is captured once.

Every usage type is priced at its own rate and the parts are summed exactly, in micro-dollars times
tokens; the sum is rounded once, half up, to whole micro-dollars, and the per-request fee is added.
Rounding each part first would lose up to half a micro-dollar per part and make the cost depend on how
the parts were grouped.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from oshal.ledger.prices import Price, PriceTable
from oshal.ledger.usage import UsageCounts
from oshal.mesh.envelopes import CallUsage

_PER_MTOK = 1_000_000


@dataclass(frozen=True, slots=True)
class Priced:
    cost_micros: int  # what the ledger charges
    source: str  # "provider" | "estimated" | "unpriced" | "replay"
    # What the price table says, recorded even when the provider reported the cost so the two can be
    # reconciled; None when no price row applies.
    computed_micros: int | None = None


def scaled_cost(price: Price, usage: UsageCounts) -> int:
    """The exact token cost in micro-dollars x 10^6 (no rounding, no request fee)."""
    one_hour = usage.cache_write_1h_tokens
    return (
        usage.input_tokens * price.input
        + usage.cached_read_tokens * price.cached_read
        + (usage.cache_write_tokens - one_hour) * price.cache_write
        + one_hour * (price.cache_write if price.cache_write_1h is None else price.cache_write_1h)
        + (usage.output_tokens - usage.reasoning_tokens) * price.output
        + usage.reasoning_tokens * (price.output if price.reasoning is None else price.reasoning)
    )


def price_usage(price: Price, usage: UsageCounts) -> int:
    """One call's cost under ``price``, in whole micro-dollars."""
    return (scaled_cost(price, usage) + _PER_MTOK // 2) // _PER_MTOK + price.request


def usage_counts(call: CallUsage) -> UsageCounts:
    return UsageCounts(
        input_tokens=call.input_tokens, output_tokens=call.output_tokens, reasoning_tokens=call.reasoning_tokens,
        cached_read_tokens=call.cached_read_tokens, cache_write_tokens=call.cache_write_tokens,
        cache_write_1h_tokens=call.cache_write_1h_tokens,
    )


def price_call(table: PriceTable, call: CallUsage, at: dt.datetime) -> Priced:
    """A replayed call costs nothing; a provider-reported cost wins; otherwise the effective price at
    ``at``; otherwise unpriced (0). ``computed_micros`` is the table's figure in every case it has one."""
    if call.replayed:
        return Priced(0, "replay", 0)
    price = table.lookup(call.provider, call.model, at)
    computed = None if price is None else price_usage(price, usage_counts(call))
    if call.reported_cost_micros is not None:
        return Priced(call.reported_cost_micros, "provider", computed)
    if computed is None:
        return Priced(0, "unpriced", None)
    return Priced(computed, "estimated", computed)
