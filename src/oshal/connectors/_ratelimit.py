"""Per-connector request rate limit: an async token bucket per connector id. Waiters sleep, never poll."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping

from oshal.errors import ConfigError

DEFAULT_RATE = (10.0, 20.0)  # requests per second, burst


class TokenBucket:
    def __init__(self, rate: float, burst: float) -> None:
        if rate <= 0 or burst < 1:
            raise ConfigError(f"rate limit ({rate}/s, burst {burst}) is invalid",
                              hint="use a rate above 0 requests per second and a burst of at least 1")
        self.rate = float(rate)
        self.burst = float(burst)
        self._tokens = float(burst)
        self._last = time.monotonic()
        self._lock = asyncio.Lock()  # FIFO: waiters are served in arrival order

    async def acquire(self) -> None:
        async with self._lock:
            while True:
                now = time.monotonic()
                self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
                self._last = now
                if self._tokens >= 1:
                    self._tokens -= 1
                    return
                await asyncio.sleep((1 - self._tokens) / self.rate)


class RateLimiter:
    """``limits`` maps a connector id to (rate per second, burst); others get ``default``."""

    def __init__(self, limits: Mapping[str, tuple[float, float]] | None = None,
                 default: tuple[float, float] = DEFAULT_RATE) -> None:
        self._limits = dict(limits or {})
        self._default = default
        for rate, burst in (*self._limits.values(), default):
            TokenBucket(rate, burst)  # validate eagerly: a bad setting fails at startup, not on first call
        self._buckets: dict[str, TokenBucket] = {}

    async def acquire(self, connector_id: str) -> None:
        bucket = self._buckets.get(connector_id)
        if bucket is None:
            bucket = self._buckets[connector_id] = TokenBucket(*self._limits.get(connector_id, self._default))
        await bucket.acquire()
