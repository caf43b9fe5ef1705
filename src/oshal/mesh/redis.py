"""Redis client construction in one place (asyncio, hiredis parser, bounded pool)."""

from __future__ import annotations

from redis.asyncio import Redis


def connect(url: str, *, max_connections: int = 64) -> Redis:
    return Redis.from_url(url, max_connections=max_connections, health_check_interval=30)


def is_nogroup(error: Exception) -> bool:
    return "NOGROUP" in str(error)
