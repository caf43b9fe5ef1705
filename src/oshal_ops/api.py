"""The platform's REST API as the operations loop uses it: one async client with an operator key.

A refusal or failure becomes :class:`PlatformError` with the status and the platform's own message and hint, so
callers decide by status (404: gone, 409: a state that does not allow it) and report the platform's words.
"""

from __future__ import annotations

from typing import Any

import httpx

DEFAULT_TIMEOUT_S = 10.0


class PlatformError(Exception):
    def __init__(self, method: str, path: str, status: int, message: str, hint: str = "") -> None:
        super().__init__(f"{method} {path}: {status} {message}" + (f" ({hint})" if hint else ""))
        self.method, self.path, self.status, self.message, self.hint = method, path, status, message, hint


class PlatformAPI:
    """``base_url`` is the control plane (e.g. http://127.0.0.1:8800); ``key`` an operator key (``osk_...``)."""

    def __init__(self, base_url: str, key: str, *, timeout_s: float = DEFAULT_TIMEOUT_S,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.AsyncClient(base_url=self.base_url, timeout=timeout_s, transport=transport,
                                       headers={"Authorization": f"Bearer {key}"})

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> PlatformAPI:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def request(self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None,
                      ok: tuple[int, ...] = ()) -> Any:
        """The decoded JSON body (None for an empty one). Statuses in ``ok`` count as success even when >= 400."""
        try:
            response = await self._http.request(method, path, json=json,
                                                params={k: v for k, v in (params or {}).items() if v is not None})
        except httpx.HTTPError as e:
            raise PlatformError(method, path, 0, f"the platform did not answer: {type(e).__name__}: {e}",
                                "is the control plane running at " + self.base_url + "?") from e
        if response.status_code >= 400 and response.status_code not in ok:
            try:
                body = response.json()
            except ValueError:
                body = {}
            body = body if isinstance(body, dict) else {}
            raise PlatformError(method, path, response.status_code,
                                str(body.get("message") or response.text[:300]), str(body.get("hint") or ""))
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            return response.text

    async def get(self, path: str, **params: Any) -> Any:
        return await self.request("GET", path, params=params)

    async def post(self, path: str, body: Any = None, **params: Any) -> Any:
        return await self.request("POST", path, json=body, params=params)

    async def put(self, path: str, body: Any = None) -> Any:
        return await self.request("PUT", path, json=body)

    async def patch(self, path: str, body: Any = None) -> Any:
        return await self.request("PATCH", path, json=body)

    async def delete(self, path: str) -> Any:
        return await self.request("DELETE", path)
