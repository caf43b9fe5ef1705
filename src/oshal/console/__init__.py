"""The web console: server-rendered pages at ``/``, served by the control plane beside the API.

It reads and changes the platform through the same services and the same access model as the API; a browser
signs in with an API key, which is traded for a session cookie. Every asset is in ``static/`` (works offline).
"""

from __future__ import annotations

from importlib.resources import files

from starlette.staticfiles import StaticFiles

from oshal.api.app import Surface
from oshal.console.access import CONSOLE_ROUTES, STATIC_PATH
from oshal.console.routes import (
    approvals,
    apps,
    architecture,
    auth,
    bots,
    connectors,
    cost,
    overview,
    security,
    tickets,
)

ROUTERS = (auth.router, overview.router, tickets.router, approvals.router, bots.router, cost.router,
           connectors.router, apps.router, security.router, architecture.router)


def surface() -> Surface:
    """The console, ready to be served by :func:`oshal.api.app.create_app` beside the API."""
    static = StaticFiles(directory=str(files("oshal.console") / "static"))
    return Surface(routers=ROUTERS, access=CONSOLE_ROUTES, mounts={STATIC_PATH: static})
