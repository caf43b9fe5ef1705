"""A browser-like HTTP client for the console: cookies kept, redirects not followed, forms posted with their
CSRF token as a page gave it."""

from __future__ import annotations

import re
from typing import Any

import httpx

from conftest import Platform

_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(html: str) -> str:
    found = _CSRF.search(html)
    assert found, "the page has no form with a CSRF token"
    return found[1]


class Console:
    def __init__(self, pf: Platform) -> None:
        self.http = httpx.Client(base_url=pf.url, follow_redirects=False, timeout=30)
        self.token = ""

    def __enter__(self) -> Console:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.http.close()

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.http.get(path, **kw)

    def post(self, path: str, data: dict[str, Any] | None = None, *, from_page: str | None = None,
             **kw: Any) -> httpx.Response:
        """Post a form with the CSRF token of ``from_page`` (default: the page the form is posted to, or '/')."""
        page = self.http.get(from_page or "/")
        assert page.status_code == 200, page.text[:500]
        return self.http.post(path, data={"csrf": csrf_of(page.text), **(data or {})},
                              headers={"Origin": str(self.http.base_url).rstrip("/")}, **kw)

    def login(self, key: str) -> httpx.Response:
        page = self.http.get("/login")
        assert page.status_code == 200
        response = self.http.post("/login", data={"csrf": csrf_of(page.text), "key": key, "next": "/"})
        return response


def signed_in(pf: Platform, key: str) -> Console:
    console = Console(pf)
    response = console.login(key)
    assert response.status_code == 303, response.text[:500]
    assert response.headers["location"] == "/"
    return console
