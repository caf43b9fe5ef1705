"""How a bot replica waits out Redis trouble: capped exponential backoff with jitter, one log line per change.

Trouble is Redis unreachable (crashed, restarting), still loading its data, or refusing the bot's login (its ACL user
is missing until the control plane re-creates it). None of these ends the replica: each loop backs off and retries,
and the replica logs when the trouble starts, when its kind changes and when it is over, not at every retry.
"""

from __future__ import annotations

import random
import time
from typing import Any

from redis.exceptions import AuthenticationError, BusyLoadingError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError


def trouble_kind(error: BaseException) -> str:
    if isinstance(error, AuthenticationError):  # WRONGPASS (no such user, or another password) and NOAUTH
        return "login refused"
    if isinstance(error, BusyLoadingError):
        return "loading its data"
    if isinstance(error, RedisTimeoutError | TimeoutError):
        return "timed out"
    if isinstance(error, ResponseError):
        return f"refused the command ({str(error).split(' ', 1)[0]})"
    return "unreachable"


class RedisTrouble:
    """One per replica, shared by its loops, so an outage is logged once and not once per loop and retry."""

    def __init__(self, log: Any) -> None:
        self.log = log
        self.kind: str | None = None
        self.since = 0.0

    def failed(self, loop: str, error: BaseException) -> None:
        kind = trouble_kind(error)
        if kind == self.kind:
            return
        if self.kind is None:
            self.since = time.monotonic()
        self.log.warning("redis trouble; backing off and retrying", reason=kind, loop=loop, error=str(error))
        self.kind = kind

    def recovered(self) -> None:
        if self.kind is not None:
            self.log.warning("redis usable again", after_s=round(time.monotonic() - self.since, 2))
            self.kind = None


class Backoff:
    """A loop's delay before its next try: doubles from ``base_s`` up to ``cap_s``, drawn from [delay/2, delay]."""

    def __init__(self, trouble: RedisTrouble, loop: str, base_s: float = 0.1, cap_s: float = 5.0) -> None:
        self.trouble = trouble
        self.loop = loop
        self.base_s = base_s
        self.cap_s = cap_s
        self.failures = 0

    def failed(self, error: BaseException) -> float:
        self.trouble.failed(self.loop, error)
        delay = min(self.base_s * 2 ** min(self.failures, 30), self.cap_s)
        self.failures += 1
        return random.uniform(delay / 2, delay)

    def succeeded(self) -> None:
        if self.failures:
            self.failures = 0
            self.trouble.recovered()


__all__ = ["Backoff", "RedisTrouble", "trouble_kind"]
