"""Web console sessions: an API key traded once for a session token that a cookie carries.

A session acts exactly as the key it was opened with (same tenant, same role) and ends when the key is revoked or
expires, when the operator logs out, or after ``console_session_ttl_s``. Only the token's SHA-256 digest is stored.
Forms carry a CSRF token derived from the session token (an HMAC), so a page of another site can post nothing.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from uuid import UUID

from oshal.audit import trail
from oshal.control.auth import Authenticator, Principal
from oshal.errors import Unauthorized
from oshal.store import sessions as store
from oshal.store.db import Database
from oshal.types import Role

TOKEN_PREFIX = "oss_"  # noqa: S105 - the scheme of session tokens, not a secret
_CACHE_TTL_S = 2.0
_CACHE_MAX = 10_000
_EXPIRED = Unauthorized("your console session has ended", hint="log in again with your API key")


@dataclass(frozen=True, slots=True)
class OpenedSession:
    token: str
    principal: Principal
    expires_at: dt.datetime


def digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def csrf_token(session_token: str) -> str:
    """The token every form of this session carries; it cannot be computed without the session cookie."""
    mac = hmac.new(session_token.encode(), b"oshal-console-csrf", hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")


def csrf_matches(session_token: str, presented: str | None) -> bool:
    return bool(presented) and hmac.compare_digest(csrf_token(session_token), presented or "")


class ConsoleSessions:
    def __init__(self, db: Database, auth: Authenticator, *, ttl_s: float) -> None:
        self._db = db
        self._auth = auth
        self._ttl_s = ttl_s
        self._cache: dict[bytes, tuple[float, Principal]] = {}
        auth.on_forget(self.forget_key)

    async def open(self, credential: str, *, source: str) -> OpenedSession:
        """Authenticate ``credential`` (an API key) and open a session for it; refusals are audited by the gate."""
        who = await self._auth.authenticate(credential.strip(), source=f"console {source}".strip())
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        expires_at = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=self._ttl_s)
        async with self._db.tenant(who.tenant_id) as conn:
            await store.open_session(conn, digest=digest(token), tenant_id=who.tenant_id, key_id=who.key_id,
                                     expires_at=expires_at)
            await trail.record(conn, trail.Entry(who.tenant_id, who.actor, "console.login", "", {"source": source}))
        return OpenedSession(token, who, expires_at)

    async def principal(self, token: str | None) -> Principal:
        """Who the session with ``token`` acts as; Unauthorized when there is no such live session."""
        if not token or not token.startswith(TOKEN_PREFIX) or len(token) > 128:
            raise Unauthorized("log in to use the console", hint="log in with an API key")
        key = digest(token)
        now = time.monotonic()
        cached = self._cache.get(key)
        if cached and cached[0] > now:
            return cached[1]
        async with self._db.system() as conn:
            row = await store.session_check(conn, key)
        if row is None or row["revoked_at"] is not None:
            self._cache.pop(key, None)
            raise _EXPIRED
        key_expiry = row["key_expires_at"]
        if isinstance(key_expiry, dt.datetime) and key_expiry <= dt.datetime.now(dt.UTC):
            raise _EXPIRED
        who = Principal(row["tenant_id"], row["key_id"], Role(row["role"]))
        if len(self._cache) >= _CACHE_MAX:
            self._cache.clear()
        self._cache[key] = (now + _CACHE_TTL_S, who)
        return who

    async def close(self, token: str, who: Principal) -> None:
        key = digest(token)
        self._cache.pop(key, None)
        async with self._db.tenant(who.tenant_id) as conn:
            await store.close_session(conn, key)
            await trail.record(conn, trail.Entry(who.tenant_id, who.actor, "console.logout", "", {}))

    def forget_key(self, key_id: UUID) -> None:
        """A revoked key's sessions stop at once in this process (the database refuses them from now on)."""
        self._cache = {k: v for k, v in self._cache.items() if v[1].key_id != key_id}

    async def sweep(self) -> int:
        async with self._db.system() as conn:
            return await store.sweep_expired(conn)
