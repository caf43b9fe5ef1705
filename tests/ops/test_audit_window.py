"""Reading the audit log from a moment on, without reading it from the beginning."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from conftest import Platform
from oshal_ops.api import PlatformAPI
from oshal_ops.audit_window import entries_since, stamped


class CountingTransport(httpx.AsyncHTTPTransport):
    """A real transport that counts the audit entries the platform sent back."""

    def __init__(self) -> None:
        super().__init__()
        self.entries_read = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await super().handle_async_request(request)
        await response.aread()
        if request.url.path == "/v1/audit":
            self.entries_read += len(response.json())
        return response


async def _everything(api: PlatformAPI) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    while True:
        page = await api.get("/v1/audit", after=rows[-1]["seq"] if rows else 0, limit=1000)
        rows += page
        if len(page) < 1000:
            return rows


async def _engage_and_release(api: PlatformAPI, times: int) -> None:
    for n in range(times):
        await api.post("/v1/kill", {"bot": "echo", "reason": f"audit window {n}"})
        await api.delete("/v1/kill/echo")


async def test_entries_since_a_moment_are_exactly_those_stamped_from_it(platform: Platform) -> None:
    async with PlatformAPI(platform.url, platform.admin_key) as api:
        await _engage_and_release(api, 15)  # 60 entries before the moment: small pages must search
        await asyncio.sleep(0.05)
        moment = datetime.now(UTC)
        await _engage_and_release(api, 3)
        everything = await _everything(api)
        expected = [e["seq"] for e in everything if stamped(e) >= moment]
        # each change is two entries: the operator's request, then what it did
        assert sorted(e["action"] for e in everything if e["seq"] in expected) == \
            ["kill_switch.engage"] * 3 + ["kill_switch.release"] * 3 + ["operator.delete"] * 3 + ["operator.post"] * 3
        for page in (1, 2, 7, 1000):
            found = await entries_since(api, moment, page=page)
            assert [e["seq"] for e in found] == expected, page
        assert [e["seq"] for e in await entries_since(api, moment - timedelta(days=1))] == \
            [e["seq"] for e in everything]
        assert await entries_since(api, datetime.now(UTC) + timedelta(minutes=5), page=2) == []
        with pytest.raises(ValueError, match="time zone"):
            await entries_since(api, datetime.now())

    counting = CountingTransport()
    async with PlatformAPI(platform.url, platform.admin_key, transport=counting) as api:
        assert [e["seq"] for e in await entries_since(api, moment, page=4)] == expected
    assert len(everything) > 60  # the session's earlier entries are there to be skipped ...
    assert counting.entries_read < 40  # ... and were: probes and the last pages, not the whole log
