"""Redis client construction in one place (asyncio, hiredis parser, bounded pool)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError
from redis.exceptions import TimeoutError as RedisTimeoutError

# What an unreachable or restarting Redis raises: wait and retry, the work is not at fault.
REDIS_DOWN = (RedisConnectionError, RedisTimeoutError, OSError)


def connect(url: str, *, max_connections: int = 64) -> Redis:
    # No CLIENT SETINFO on connect: a bot's ACL user may not run CLIENT, and each refused attempt would land in
    # Redis' ACL log, which the runtime scan reads for identities stepping out of their lane.
    return Redis.from_url(url, max_connections=max_connections, health_check_interval=30, driver_info=None)


def is_nogroup(error: Exception) -> bool:
    return "NOGROUP" in str(error)


async def run_script(redis: Redis, text: str, keys: Sequence[str], args: Sequence[str | bytes | int]) -> Any:
    """EVALSHA, falling back to EVAL (which caches the script) when the server does not know it yet, so a hot
    script's text crosses the wire once per server, not once per call. Control plane only: bots run no scripts."""
    sha = _SHAS.get(text)
    if sha is None:
        sha = _SHAS[text] = hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()
    try:
        return await redis.evalsha(sha, len(keys), *keys, *args)
    except NoScriptError:
        return await redis.eval(text, len(keys), *keys, *args)


_SHAS: dict[str, str] = {}
