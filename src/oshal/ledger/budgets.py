"""The most a model call can cost, from its model's price and the request: what a reservation holds."""

from __future__ import annotations

from oshal.ledger.prices import Price

_PER_MTOK = 1_000_000


def max_call_cost(price: Price | None, *, input_bytes: int, max_output_tokens: int) -> int:
    """An upper bound in micro-dollars. A token is at least one byte of the prompt, so the prompt's size in bytes
    bounds its input tokens, each priced at the dearest input rate; every output token may be a reasoning token."""
    if price is None:
        return 0  # an unpriced model costs nothing in the ledger either
    if input_bytes < 0 or max_output_tokens < 0:
        raise ValueError("input_bytes and max_output_tokens must not be negative")
    input_rate = max(price.input, price.cached_read, price.cache_write, price.cache_write_1h or 0)
    output_rate = max(price.output, price.reasoning if price.reasoning is not None else 0)
    scaled = input_bytes * input_rate + max_output_tokens * output_rate
    return -(-scaled // _PER_MTOK) + price.request  # rounded up: never under-reserve
