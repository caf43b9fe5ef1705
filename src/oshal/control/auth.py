"""The auth gate: resolves a request's key to (tenant, key, role) or refuses. Fails closed."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass
from uuid import UUID

from oshal.audit import trail
from oshal.control import api_keys
from oshal.errors import Forbidden, Unauthorized
from oshal.logs import get_logger
from oshal.store import access
from oshal.store.db import Database
from oshal.types import Role

log = get_logger(__name__)
_CACHE_TTL_S = 2.0
_CACHE_MAX = 10_000


@dataclass(frozen=True, slots=True)
class Principal:
    tenant_id: UUID
    key_id: UUID
    role: Role

    @property
    def actor(self) -> str:
        """How this caller appears in the audit log and ticket timelines."""
        return f"key:{self.key_id}"

    def require_operator(self) -> None:
        if self.role is not Role.OPERATOR:
            raise Forbidden("this action needs an operator key", hint="ask an operator to run it")


def credential_from_headers(authorization: str | None, api_key_header: str | None) -> str | None:
    """Bearer token, ``X-API-Key``, or HTTP Basic with the key as password (for browsers on /docs)."""
    if api_key_header:
        return api_key_header.strip()
    if not authorization:
        return None
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() == "bearer":
        return value.strip()
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode()
        except (ValueError, UnicodeDecodeError):
            return None
        return decoded.partition(":")[2] or None
    return None


class Authenticator:
    """Checks keys against the database through a narrow definer function, with a short positive cache.

    Every refusal is audited (batched, see :class:`AuditBuffer`); keys that authenticate have their last use
    recorded every ``usage_flush_s`` for the access scan.
    """

    def __init__(self, db: Database, *, usage_flush_s: float = 30.0) -> None:
        self._db = db
        self._cache: dict[str, tuple[float, Principal]] = {}
        self.failures = trail.AuditBuffer(db)
        self._used: set[UUID] = set()
        self._usage_flush_s = usage_flush_s
        self._forget_hooks: list[Callable[[UUID], None]] = []

    def on_forget(self, hook: Callable[[UUID], None]) -> None:
        """Called with a key's id when it is revoked (the console's sessions of that key end with it)."""
        self._forget_hooks.append(hook)

    def forget(self, key_id: UUID) -> None:
        self._cache = {k: v for k, v in self._cache.items() if v[1].key_id != key_id}
        for hook in self._forget_hooks:
            hook(key_id)

    async def authenticate(self, credential: str | None, *, source: str = "") -> Principal:
        try:
            return await self._authenticate(credential)
        except Unauthorized as refused:
            prefix = api_keys.parse_prefix(credential or "") or ""
            self.failures.add(trail.Entry(None, f"key:{prefix}" if prefix else "anonymous", "auth.failure",
                                          refused.message, {"source": source, "prefix": prefix}))
            raise

    async def _authenticate(self, credential: str | None) -> Principal:
        if not credential:
            raise Unauthorized("missing API key",
                               hint="send 'Authorization: Bearer osk_...' (oshal key create makes one)")
        cached = self._cache.get(credential)
        now = time.monotonic()
        if cached and cached[0] > now:
            return cached[1]
        prefix = api_keys.parse_prefix(credential)
        if prefix is None:
            raise Unauthorized("malformed API key", hint="keys look like osk_<12 hex>_<secret>")
        async with self._db.system() as conn:
            row = await access.key_check(conn, prefix, api_keys.digest(credential))
        if row is None:
            raise Unauthorized("invalid API key")
        if row["revoked_at"] is not None:
            raise Unauthorized("API key has been revoked", hint="create a new key with `oshal key create`")
        expires = row["expires_at"]
        if isinstance(expires, dt.datetime) and expires <= dt.datetime.now(dt.UTC):
            raise Unauthorized("API key has expired", hint="create a new key with `oshal key create`")
        principal = Principal(row["tenant_id"], row["id"], Role(row["role"]))
        if len(self._cache) >= _CACHE_MAX:
            self._cache.clear()
        self._cache[credential] = (now + _CACHE_TTL_S, principal)
        self._used.add(principal.key_id)
        return principal

    async def flush_usage(self) -> None:
        used, self._used = self._used, set()
        if used:
            async with self._db.system() as conn:
                await access.mark_keys_used(conn, list(used))

    async def run(self, stop: asyncio.Event) -> None:
        """Write audited refusals in batches and key usage every ``usage_flush_s``."""
        failures = asyncio.create_task(self.failures.run(stop))
        try:
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self._usage_flush_s)
                try:
                    await self.flush_usage()
                except Exception as e:
                    log.warning("recording key usage failed", error=str(e))
        finally:
            await failures
