"""Interactive API docs served from the package, so they work offline: Swagger UI at /docs, ReDoc at /redoc.

The pages need a key like the document they render (/openapi.json, see :mod:`oshal.api.routes.docs`); the
vendored assets under ``static/docs/`` (see its VERSIONS file) are public, being the same for everyone. Nothing is
fetched from a CDN, fonts included, and Swagger UI's online validator badge is off.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS_DIR = Path(__file__).parent / "static" / "docs"
ASSETS_URL = "/static/docs"
DOCS_PATHS = ("/docs", "/redoc")


def install_docs_assets(app: FastAPI) -> None:
    app.mount(ASSETS_URL, StaticFiles(directory=ASSETS_DIR), name="docs-assets")


def swagger_ui_page(title: str, openapi_url: str) -> HTMLResponse:
    return get_swagger_ui_html(openapi_url=openapi_url, title=title,
                               swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
                               swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
                               swagger_favicon_url=f"{ASSETS_URL}/favicon-32x32.png",
                               swagger_ui_parameters={"validatorUrl": None})


def redoc_page(title: str, openapi_url: str) -> HTMLResponse:
    return get_redoc_html(openapi_url=openapi_url, title=title, redoc_js_url=f"{ASSETS_URL}/redoc.standalone.js",
                          redoc_favicon_url=f"{ASSETS_URL}/favicon-32x32.png", with_google_fonts=False)
