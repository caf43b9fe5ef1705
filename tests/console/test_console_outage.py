"""The console while an engine is killed: every page answers with a page (200, or 503 that says a backing service
is down and to retry), never a traceback or a 500, and the same session works again once the engine is back."""

from __future__ import annotations

import time

import pytest

from conftest import Platform
from console_client import signed_in


@pytest.mark.parametrize("engine", ["postgres", "redis"])
def test_a_killed_engine_is_a_retry_page_and_the_session_survives_it(platform: Platform, engine: str) -> None:
    with signed_in(platform, platform.admin_key) as console:
        assert console.get("/").status_code == 200
        platform.kill_engine(engine, wait=False)
        seen: list[int] = []
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            for path in ("/", "/bots", "/tickets"):
                page = console.get(path)
                seen.append(page.status_code)
                assert page.status_code in (200, 503), (engine, path, page.status_code, page.text[:500])
                if page.status_code == 503:
                    assert "a backing service is unavailable" in page.text and page.headers["retry-after"] == "1"
                    assert "Traceback" not in page.text
            if platform.is_ready() and seen[-3:] == [200, 200, 200]:
                break
            time.sleep(0.1)
        assert seen[-3:] == [200, 200, 200], f"the console did not come back after {engine} restarted: {seen[-10:]}"
        print(f"\n{engine} killed: {seen.count(503)} retry pages of {len(seen)} requests, then back")
