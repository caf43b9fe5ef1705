"""The route inventory: every router the app serves, in the order it includes them, and the check that each
route is guarded as the access table declares, for the host (`oshal security verify`) without a running app."""

from __future__ import annotations

from fastapi import FastAPI
from starlette.routing import BaseRoute

from oshal.api.access import declaration_problems
from oshal.api.route_guards import guarded_routes, live_route_problems
from oshal.api.routes import (
    admin,
    artifacts,
    bars,
    budgets,
    connectors,
    docs,
    fleet,
    gateway,
    health,
    knowledge,
    nodes,
    records,
    schedules,
    security,
    tickets,
    topology,
    workflows,
)

ROUTERS = (gateway.router, health.router, tickets.router, tickets.dead_letters, admin.router, fleet.router,
           connectors.router, artifacts.router, workflows.router, schedules.router, security.router,
           budgets.router, gateway.models, docs.router, topology.router, knowledge.router,
           bars.router, records.router, nodes.router)
RAW_ROUTES = gateway.raw_routes  # plain Starlette routes, matched before anything else


def served_routes() -> list[BaseRoute]:
    """Every route the app serves, in one flat list."""
    return [*RAW_ROUTES, *(route for router in ROUTERS for route in router.routes)]


def route_declaration_problems(app: FastAPI | None = None) -> list[str]:
    """The start-up check again: every route (of the running app, when given) guarded exactly as declared."""
    return live_route_problems(app) if app is not None else declaration_problems(guarded_routes(served_routes()))
