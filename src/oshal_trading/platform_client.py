"""The platform's REST API as the desk's commands use it: one synchronous client with an operator key.

Where the platform is and which key it takes are :mod:`oshal_trading.platform`'s to say (the desk's async client
reads them there too). A refusal becomes :class:`PlatformError` carrying the platform's own message and hint.
"""

from __future__ import annotations

import time
from typing import Any

import httpx

from oshal_trading.platform import KeyMissing, platform_key, platform_url

DEFAULT_TIMEOUT_S = 60.0
_TICKET_WORKING = frozenset({"backlog", "approved", "in_progress"})  # any other status waits for someone, or is final


class PlatformError(Exception):
    def __init__(self, message: str, *, status: int = 0, hint: str = "") -> None:
        super().__init__(message)
        self.status, self.hint = status, hint


def _key() -> str:
    try:
        return platform_key()
    except KeyMissing as e:
        raise PlatformError(str(e)) from e  # its message says where a key is looked for


class PlatformClient:
    def __init__(self, base_url: str, key: str, *, timeout_s: float = DEFAULT_TIMEOUT_S,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout_s, transport=transport,
                                  headers={"Authorization": f"Bearer {key}"})

    @classmethod
    def from_environment(cls) -> PlatformClient:
        return cls(platform_url(), _key())

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> PlatformClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None) -> Any:
        try:
            response = self._http.request(method, path, json=json,
                                          params={k: v for k, v in (params or {}).items() if v is not None})
        except httpx.HTTPError as e:
            raise PlatformError(f"the platform at {self.base_url} did not answer: {type(e).__name__}: {e}",
                                hint="start it with `oshal up`, or set OSHAL_API_URL") from e
        if response.status_code >= 400:
            try:
                body = response.json()
            except ValueError:
                body = None
            body = body if isinstance(body, dict) else {}
            raise PlatformError(f"{method} {path}: {response.status_code} "
                                f"{body.get('message') or response.text[:300]}",
                                status=response.status_code, hint=str(body.get("hint") or ""))
        return response.json() if response.content else None

    # --- bars ------------------------------------------------------------------------------------------------

    def put_bars(self, symbol: str, timeframe: str, bars: list[dict[str, Any]], source: str) -> dict[str, Any]:
        result: dict[str, Any] = self.request("PUT", f"/v1/bars/{symbol}/{timeframe}",
                                              json={"bars": bars, "source": source})
        return result

    def bars_page(self, symbol: str, timeframe: str, *, start: str | None, end: str | None, cursor: str | None,
                  limit: int) -> dict[str, Any]:
        page: dict[str, Any] = self.request("GET", f"/v1/bars/{symbol}/{timeframe}",
                                            params={"from": start, "to": end, "cursor": cursor, "limit": limit})
        return page

    def series(self, symbol: str | None = None) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        cursor = None
        while True:
            page = self.request("GET", "/v1/bars", params={"symbol": symbol, "cursor": cursor, "limit": 1000})
            items += page["items"]
            cursor = page["next_cursor"]
            if cursor is None:
                return items

    # --- tickets ---------------------------------------------------------------------------------------------

    def run_ticket(self, bot: str, ticket_input: dict[str, Any], *, timeout_s: float = 120.0) -> dict[str, Any]:
        """Submit a ticket to ``bot`` and wait until it stops working (done, failed, waiting for an approval...)."""
        ticket: dict[str, Any] = self.request("POST", "/v1/tickets", json={"bot": bot, "input": ticket_input})
        deadline = time.monotonic() + timeout_s
        while ticket["status"] in _TICKET_WORKING:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise PlatformError(f"ticket {ticket['id']} for {bot} did not finish in {timeout_s:.0f} s "
                                    f"(status {ticket['status']})",
                                    hint=f"is the {bot} bot running? `oshal ticket show {ticket['id']}`")
            ticket = self.request("GET", f"/v1/tickets/{ticket['id']}", params={"wait": round(min(remaining, 20), 3)})
        return ticket
