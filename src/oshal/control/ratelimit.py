"""Per-key request rate limits: a token bucket per API key, refusing (429) rather than queueing."""

from __future__ import annotations

import time
from uuid import UUID

from oshal.errors import RateLimited

_MAX_KEYS = 100_000


class KeyRateLimiter:
    """Each key may make ``rate`` requests per second on average and ``burst`` at once (per API replica)."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self._buckets: dict[UUID, tuple[float, float]] = {}  # key -> (tokens, last refill)

    def check(self, key_id: UUID) -> None:
        now = time.monotonic()
        tokens, last = self._buckets.get(key_id, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens < 1:
            self._buckets[key_id] = (tokens, now)
            retry_after = (1 - tokens) / self.rate
            raise RateLimited(f"rate limit of {self.rate:g} requests/s (burst {self.burst:g}) for this key exceeded",
                              retry_after_s=retry_after,
                              hint=f"retry after {retry_after:.2f}s, or batch work with POST /v1/tickets/batch")
        if len(self._buckets) >= _MAX_KEYS:
            self._buckets.clear()
        self._buckets[key_id] = (tokens - 1, now)
