"""The platform's REST API as the desk uses it: an async client with an operator key, and the desk's records.

Where the platform is: ``OSHAL_API_URL`` (default http://127.0.0.1:8800); the key: ``OSHAL_API_KEY``, else the admin
key ``oshal up`` wrote (``$OSHAL_HOME/admin.key``). A refusal becomes :class:`PlatformError` with the status and the
platform's own message and hint. The desk reaches the platform through this module only.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Literal

import httpx

APP = "trading"
DEFAULT_TIMEOUT_S = 30.0


class PlatformError(Exception):
    def __init__(self, method: str, path: str, status: int, message: str, hint: str = "") -> None:
        super().__init__(f"{method} {path}: {status} {message}" + (f" ({hint})" if hint else ""))
        self.method, self.path, self.status, self.message, self.hint = method, path, status, message, hint


class KeyMissing(Exception):
    """No key to call the platform with; the message says where one is looked for."""


def platform_url() -> str:
    return (os.environ.get("OSHAL_API_URL") or "http://127.0.0.1:8800").rstrip("/")


def platform_key() -> str:
    if os.environ.get("OSHAL_API_KEY", "").strip():
        return os.environ["OSHAL_API_KEY"].strip()
    path = Path(os.environ.get("OSHAL_HOME", ".oshal")) / "admin.key"
    try:
        key = path.read_text().strip()
    except OSError as e:
        raise KeyMissing(f"no API key: OSHAL_API_KEY is not set and {path} cannot be read ({e.strerror}); set "
                         "OSHAL_API_KEY to an operator key, or run `oshal up` first") from e
    if not key.startswith("osk_"):
        raise KeyMissing(f"{path} does not hold an oshal API key (osk_...)")
    return key


class PlatformAPI:
    def __init__(self, base_url: str, key: str, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.AsyncClient(base_url=self.base_url, timeout=timeout_s,
                                       headers={"Authorization": f"Bearer {key}"})

    @classmethod
    def from_environment(cls) -> PlatformAPI:
        return cls(platform_url(), platform_key())

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> PlatformAPI:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def request(self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None,
                      ok: tuple[int, ...] = ()) -> tuple[int, Any]:
        """(status, decoded body). Statuses in ``ok`` count as success even when >= 400."""
        try:
            response = await self._http.request(method, path, json=json,
                                                params={k: v for k, v in (params or {}).items() if v is not None})
        except httpx.HTTPError as e:
            raise PlatformError(method, path, 0, f"the platform did not answer: {type(e).__name__}: {e}",
                                f"is the control plane running at {self.base_url}?") from e
        body: Any = None
        if response.content:
            try:
                body = response.json()
            except ValueError:
                body = response.text
        if response.status_code >= 400 and response.status_code not in ok:
            detail = body if isinstance(body, dict) else {}
            raise PlatformError(method, path, response.status_code,
                                str(detail.get("message") or response.text[:300]), str(detail.get("hint") or ""))
        return response.status_code, body

    async def get(self, path: str, **params: Any) -> Any:
        return (await self.request("GET", path, params=params))[1]

    async def post(self, path: str, body: Any = None, **params: Any) -> Any:
        return (await self.request("POST", path, json=body, params=params))[1]

    async def delete(self, path: str) -> Any:
        return (await self.request("DELETE", path))[1]

    async def download(self, path: str) -> bytes:
        try:
            response = await self._http.get(path)
        except httpx.HTTPError as e:
            raise PlatformError("GET", path, 0, f"the platform did not answer: {e}") from e
        if response.status_code >= 400:
            raise PlatformError("GET", path, response.status_code, response.text[:300])
        return response.content


class RecordConflict(Exception):
    """A record name already holds a different body (records are immutable)."""

    def __init__(self, collection: str, key: str, stored: Any, wanted: Any) -> None:
        super().__init__(f"record {collection}/{key} already holds different content; the desk refuses to record "
                         "a second, different version of it")
        self.collection, self.key, self.stored, self.wanted = collection, key, stored, wanted


class Records:
    """The desk's application records (``/v1/apps/trading/records``): written once, read back, listed in order."""

    def __init__(self, api: PlatformAPI, app: str = APP) -> None:
        self.api = api
        self.base = f"/v1/apps/{app}/records"

    async def put(self, collection: str, key: str, body: dict[str, Any]) -> Literal["created", "same"]:
        """Create the record; an equal one already there is fine, a different one raises :class:`RecordConflict`."""
        status, _ = await self.api.request("PUT", f"{self.base}/{collection}/{key}", json=body, ok=(409,))
        if status == 409:
            existing = await self.get(collection, key)
            raise RecordConflict(collection, key, existing, body)
        return "created" if status == 201 else "same"

    async def get(self, collection: str, key: str) -> dict[str, Any] | None:
        status, record = await self.api.request("GET", f"{self.base}/{collection}/{key}", ok=(404,))
        if status == 404:
            return None
        body: dict[str, Any] = record["body"]
        return body

    async def each(self, collection: str, *, newest_first: bool = False) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        after: str | None = None
        while True:
            page = await self.api.get(f"{self.base}/{collection}", after=after, limit=200,
                                      order="desc" if newest_first else "asc")
            for item in page["items"]:
                yield item["key"], item["body"]
            after = page["next_cursor"]
            if after is None:
                return

    async def latest(self, collection: str, prefix: str) -> tuple[str, dict[str, Any]] | None:
        """The newest record whose key starts with ``prefix``."""
        async for key, body in self.each(collection, newest_first=True):
            if key.startswith(prefix):
                return key, body
        return None
