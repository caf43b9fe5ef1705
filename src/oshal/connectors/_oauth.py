"""OAuth2 access tokens for connectors: client credentials and refresh token grants, cached per credential.

A token is reused until shortly before it expires (30 s early, or half its lifetime when that is shorter).
``stale`` lets the runtime say "the API refused this token": it is dropped and one new token is fetched, even
when several calls notice at once. A refresh token the server rotates is kept in memory for this runtime's
lifetime and handed to the caller's ``on_refresh_token`` callback, which should persist it.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import inspect
import json
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx

from oshal.connectors.manifest import AuthScheme
from oshal.errors import ConfigError, Forbidden, Unavailable

PostForm = Callable[[httpx.URL, dict[str, str], dict[str, str]], Awaitable[tuple[int, bytes]]]
RefreshCallback = Callable[[str], Awaitable[None] | None]
DEFAULT_LIFETIME_S = 3600.0  # when the server does not say (expires_in is only RECOMMENDED); a 401 still refreshes


@dataclass
class _Entry:
    access_token: str | None = None
    expires_at: float = 0.0
    refresh_token: str | None = None  # the newest one when the server rotates them
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class OAuthTokens:
    def __init__(self, post: PostForm) -> None:
        self._post = post
        self._entries: dict[tuple[str, ...], _Entry] = {}

    async def token(self, *, connector_id: str, scheme: AuthScheme, secret: str, client_id: str | None,
                    on_refresh_token: RefreshCallback | None = None, stale: str | None = None) -> str:
        if not scheme.token_url:
            raise ConfigError(f"the {scheme.kind} auth scheme of connector {connector_id} has no token_url",
                              hint="set token_url in the connector manifest")
        digest = hashlib.sha256(secret.encode()).hexdigest()
        key = (connector_id, scheme.kind, scheme.token_url, client_id or "", digest)
        entry = self._entries.setdefault(key, _Entry())
        async with entry.lock:
            if stale is not None and entry.access_token == stale:
                entry.access_token = None
            if entry.access_token is None or time.monotonic() >= entry.expires_at:
                await self._fetch(entry, connector_id, scheme, secret, client_id, on_refresh_token)
            assert entry.access_token is not None
            return entry.access_token

    async def _fetch(self, entry: _Entry, connector_id: str, scheme: AuthScheme, secret: str, client_id: str | None,
                     on_refresh_token: RefreshCallback | None) -> None:
        assert scheme.token_url is not None
        headers = {"Accept": "application/json"}
        if scheme.kind == "oauth2_client_credentials":
            if not client_id:
                raise Forbidden(f"the oauth2_client_credentials credential for connector {connector_id} has no "
                                "client_id", hint="store the credential with its client id")
            # RFC 6749 2.3.1: each part form-encoded, then HTTP Basic.
            basic = base64.b64encode(f"{quote(client_id, safe='')}:{quote(secret, safe='')}".encode()).decode()
            headers["Authorization"] = f"Basic {basic}"
            form = {"grant_type": "client_credentials"}
            if scheme.scopes:
                form["scope"] = " ".join(scheme.scopes)
        else:
            form = {"grant_type": "refresh_token", "refresh_token": entry.refresh_token or secret}
            if client_id:
                form["client_id"] = client_id
        status, raw = await self._post(httpx.URL(scheme.token_url), form, headers)
        body = _json_object(raw)
        if status in (400, 401, 403):
            code = body.get("error")
            detail = f", {code}" if isinstance(code, str) and re.fullmatch(r"[a-z_]{1,40}", code) else ""
            fix = ("reconnect the connector to get a new refresh token" if scheme.kind == "oauth2_refresh_token"
                   else "check the connector's client id and client secret")
            raise Forbidden(f"the OAuth2 token endpoint of connector {connector_id} refused the credential "
                            f"(HTTP {status}{detail})", hint=fix)
        token = body.get("access_token")
        if not 200 <= status < 300 or not isinstance(token, str) or not token:
            raise Unavailable(f"the OAuth2 token endpoint of connector {connector_id} answered HTTP {status} without "
                              "an access_token", hint="retry later; if it persists, check the manifest's token_url")
        lifetime = _seconds(body.get("expires_in"))
        entry.access_token = token
        entry.expires_at = time.monotonic() + lifetime - min(30.0, lifetime / 2)
        rotated = body.get("refresh_token")
        if (scheme.kind == "oauth2_refresh_token" and isinstance(rotated, str) and rotated
                and rotated != (entry.refresh_token or secret)):
            entry.refresh_token = rotated
            if on_refresh_token is not None:
                outcome = on_refresh_token(rotated)
                if inspect.isawaitable(outcome):
                    await outcome


def _json_object(raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _seconds(value: Any) -> float:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return DEFAULT_LIFETIME_S
    return min(seconds, 86400.0) if seconds > 0 else DEFAULT_LIFETIME_S
