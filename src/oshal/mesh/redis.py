"""Redis client construction in one place (asyncio, hiredis parser, bounded pool)."""

from __future__ import annotations

from redis.asyncio import Redis


def connect(url: str, *, max_connections: int = 64) -> Redis:
    # No CLIENT SETINFO on connect: a bot's ACL user may not run CLIENT, and each refused attempt would land in
    # Redis' ACL log, which the runtime scan reads for identities stepping out of their lane.
    return Redis.from_url(url, max_connections=max_connections, health_check_interval=30, driver_info=None)


def is_nogroup(error: Exception) -> bool:
    return "NOGROUP" in str(error)
