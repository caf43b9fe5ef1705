"""Remote nodes' gateway tokens: random, shown once at join, kept as a SHA-256 digest, rejected once revoked.

A node token reads ``node.<node id>.<secret>``. The gateway checks it against the node's row, with a short positive
cache: a revocation made on this replica is seen at once (:meth:`NodeTokens.forget`), one made on another replica
within ``cache_ttl_s`` — well inside one heartbeat TTL.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from uuid import UUID

from oshal.errors import Unauthorized
from oshal.store import nodes as repo
from oshal.store.db import Database

PREFIX = "node."
_CACHE_MAX = 10_000


def is_node_token(token: str | None) -> bool:
    return bool(token) and str(token).startswith(PREFIX)


def issue(node_id: UUID) -> tuple[str, bytes]:
    """A new token for ``node_id`` and the digest to keep."""
    token = f"{PREFIX}{node_id}.{secrets.token_urlsafe(32)}"
    return token, digest(token)


def digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def node_of(token: str) -> UUID | None:
    _, _, rest = token.partition(PREFIX)
    node, dot, secret = rest.partition(".")
    if not dot or not secret:
        return None
    try:
        return UUID(node)
    except ValueError:
        return None


class NodeTokens:
    def __init__(self, db: Database, *, cache_ttl_s: float = 1.0) -> None:
        self._db = db
        self._cache_ttl_s = cache_ttl_s
        self._cache: dict[str, tuple[float, UUID, str]] = {}  # token -> (valid until, node, bot)

    async def verify(self, token: str) -> str:
        """The bot a node token acts for, or Unauthorized (malformed, unknown, or the node was revoked)."""
        now = time.monotonic()
        cached = self._cache.get(token)
        if cached and cached[0] > now:
            return cached[2]
        node = node_of(token)
        if node is None:
            raise Unauthorized("malformed node token", hint="nodes get theirs from `oshal node join`")
        async with self._db.platform() as conn:
            row = await repo.token_check(conn, node)
        if row is None or not hmac.compare_digest(bytes(row["token_digest"]), digest(token)):
            raise Unauthorized("invalid node token", hint="join again with a new code from `oshal node enroll`")
        if row["revoked_at"] is not None:
            raise Unauthorized(f"node {node} has been revoked",
                               hint="a revoked node stays revoked: enroll a new one with `oshal node enroll`")
        if len(self._cache) >= _CACHE_MAX:
            self._cache.clear()
        bot = str(row["bot"])
        self._cache[token] = (now + self._cache_ttl_s, node, bot)
        return bot

    def forget(self, node_id: UUID) -> None:
        """Drop a revoked node's cached tokens, so its next call is checked against the database."""
        self._cache = {token: entry for token, entry in self._cache.items() if entry[1] != node_id}
