"""/docs and /redoc work offline: every asset they load is served by the platform itself."""

from __future__ import annotations

import re

import httpx
import pytest

from conftest import Platform


@pytest.mark.parametrize(("page", "assets"), [
    ("/docs", {"/static/docs/swagger-ui-bundle.js": "javascript", "/static/docs/swagger-ui.css": "text/css",
               "/static/docs/favicon-32x32.png": "image/png"}),
    ("/redoc", {"/static/docs/redoc.standalone.js": "javascript", "/static/docs/favicon-32x32.png": "image/png"}),
])
def test_the_docs_pages_load_only_local_assets(platform: Platform, page: str, assets: dict[str, str]) -> None:
    assert httpx.get(f"{platform.url}{page}").status_code == 401  # the page needs a key, like /openapi.json
    with platform.client() as admin:
        html = admin.get(page)
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
    referenced = set(re.findall(r"""(?:src|href)=["']([^"']+)["']""", html.text))
    referenced |= set(re.findall(r"""url: ?["']([^"']+)["']""", html.text))
    assert not [url for url in referenced if "//" in url], referenced  # no other host, no CDN
    assert not re.search(r"https?://", html.text.replace("http://www.w3.org", ""))
    assert set(assets) <= referenced and "/openapi.json" in html.text
    for url, kind in assets.items():
        asset = httpx.get(f"{platform.url}{url}")  # public: the same files for everyone
        assert asset.status_code == 200 and kind in asset.headers["content-type"], url
        assert len(asset.content) > 500


def test_an_asset_that_is_not_there_is_a_404_and_paths_stay_inside(platform: Platform) -> None:
    assert httpx.get(f"{platform.url}/static/docs/nothing.js").status_code == 404
    escaped = httpx.get(f"{platform.url}/static/docs/..%2f..%2fapp.py")
    assert escaped.status_code == 404
