"""What the OpenAPI document says beyond what FastAPI derives: how to authenticate and every error status.

Authentication is stated as security schemes (a bearer API key or ``X-API-Key``; a bot token for the bot routes)
instead of the raw header parameters the auth dependencies read, so clients and Swagger UI's "Authorize" know it.

Every status a route can answer is listed, each with the one error body (:class:`ErrorOut`). Most statuses
follow from how a route is built, so they are derived, not written per route:

* every route: 422 (any parameter, even an undeclared one, is checked for characters Postgres refuses), 500 (the
  catch-all, with an error id) and 503 (Postgres or Redis unreachable);
* a route that authenticates a key: 401, 403 and 429; a route that authenticates a bot: 401 and 403;
* a route with a request body: 413; a route with path parameters: 404.

What only the code behind a route decides (a 409 on a state conflict, a 402 on a budget, a 404 for a name in the
body, a 400) is listed in :data:`EXTRA_STATUSES`. ``tests/api/test_api_fuzz.py`` calls every operation and fails
on a status that is not documented here, so this table cannot silently fall behind the code.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi
from fastapi.routing import RouteContext, iter_route_contexts
from pydantic import BaseModel, Field

from oshal.api.access import ROUTES, Audience

_REF = "#/components/schemas/ErrorOut"


class ErrorOut(BaseModel):
    """Every error answer: a stable code, what went wrong, and how to fix it."""

    error: str = Field(description="A stable code: invalid, too_large, unauthorized, forbidden, not_found, conflict, "
                                   "budget_exceeded, rate_limited, unavailable, internal, ...")
    message: str = Field(description="What went wrong, on what.")
    hint: str | None = Field(default=None, description="What to do about it.")
    details: list[dict[str, Any]] | None = Field(
        default=None, description="Validation errors (422): one per field, each with loc, msg and type.")
    error_id: str | None = Field(default=None, description="500 only: the id under which the error is logged.")


DESCRIPTIONS: dict[int, str] = {
    400: "The request breaks a rule of the platform.",
    401: "No valid credential: the key is missing, unknown, expired or revoked.",
    402: "A budget cannot cover the call; the ticket pauses until there is room.",
    403: "The credential is valid but its role or tenant does not allow this.",
    404: "Not found, or not visible to the caller's tenant.",
    409: "The request conflicts with the current state (a duplicate, or a state that does not allow it).",
    413: "The request body is larger than the limit.",
    422: "Invalid input: the message names each field and what is wrong with it.",
    429: "Too many requests for this key; retry after the Retry-After seconds.",
    500: "An unexpected error; the body carries the error id it was logged under.",
    503: "A backing service (Postgres, Redis) is unavailable; retry shortly.",
}

_RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before retrying.", "schema": {"type": "integer"}}}

# (method, path) -> statuses only the code behind the route knows about.
EXTRA_STATUSES: dict[tuple[str, str], frozenset[int]] = {
    ("POST", "/v1/tickets"): frozenset({404, 409}),
    ("POST", "/v1/tickets/batch"): frozenset({404, 409}),
    ("POST", "/v1/tickets/{ticket_id}/cancel"): frozenset({409}),
    ("POST", "/v1/tickets/{ticket_id}/replay"): frozenset({409}),
    ("POST", "/v1/tickets/{ticket_id}/{action}"): frozenset({409}),
    ("POST", "/v1/tenants"): frozenset({409}),
    ("POST", "/v1/keys"): frozenset({404}),
    ("GET", "/v1/keys"): frozenset({404}),
    ("POST", "/v1/connectors/import"): frozenset({409}),
    ("POST", "/v1/connectors"): frozenset({409}),
    ("POST", "/v1/connectors/{connector_id}/signature"): frozenset({409}),
    ("POST", "/v1/connections"): frozenset({404}),
    ("PUT", "/v1/bots/{bot}/tools"): frozenset({404}),
    ("POST", "/v1/schedules"): frozenset({404, 409}),
    ("POST", "/v1/prices"): frozenset({409}),
    ("POST", "/v1/kill"): frozenset({404, 409}),
    ("POST", "/v1/tools/list"): frozenset({404, 409}),
    ("POST", "/v1/models/begin"): frozenset({402, 404, 409}),
    ("POST", "/v1/models/end"): frozenset({404, 409}),
    ("PUT", "/v1/artifacts/gateway/{name}"): frozenset({413}),  # the body is read raw, not as a model
    ("PUT", "/v1/apps/{app}/records/{collection}/{key}"): frozenset({409}),
    ("POST", "/v1/connectors/{connector_id}/disable"): frozenset({409}),
    ("POST", "/v1/connectors/{connector_id}/enable"): frozenset({409}),
    ("POST", "/v1/nodes/enrollments"): frozenset({404}),
    ("POST", "/v1/nodes/join"): frozenset({401, 403, 404}),  # the code is its credential, checked by the service
}


def install_openapi_doc(app: FastAPI) -> None:
    """Make ``app.openapi()`` document security and every route's error statuses (computed once, then cached)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description,
                                 routes=app.routes)
            routes = api_routes(app)
            document_security(schema, routes)
            document_errors(schema, routes)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def api_routes(app: FastAPI) -> list[RouteContext]:
    """The app's documented routes as they are served (prefixes and app-wide dependencies applied)."""
    return [r for r in iter_route_contexts(app.routes)
            if isinstance(getattr(r, "dependant", None), Dependant) and r.include_in_schema]


def statuses_of(route: RouteContext, method: str) -> set[int]:
    codes = {422, 500, 503}
    audience = _audience(route, method)
    if audience is Audience.BOT:
        codes |= {401, 403}
    elif audience is not Audience.PUBLIC:
        codes |= {401, 403, 429}
    if route.body_field is not None:
        codes.add(413)
    if route.dependant.path_params:
        codes.add(404)
    return codes | EXTRA_STATUSES.get((method, route.path_format or ""), frozenset())


def document_errors(schema: dict[str, Any], routes: list[RouteContext]) -> None:
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["ErrorOut"] = ErrorOut.model_json_schema(ref_template="#/components/schemas/{model}")
    for route in routes:
        for method in sorted(route.methods or ()):
            operation = schema["paths"].get(route.path_format, {}).get(method.lower())
            if operation is None:
                continue
            responses = operation.setdefault("responses", {})
            for code in sorted(statuses_of(route, method)):
                responses[str(code)] = _response(code)  # 422 too: FastAPI's default shape is not what we send
    for unused in ("HTTPValidationError", "ValidationError"):  # FastAPI's 422 body, replaced above
        if not _referenced(schema["paths"], f"#/components/schemas/{unused}"):
            components.pop(unused, None)


SECURITY_SCHEMES: dict[str, dict[str, Any]] = {
    "apiKey": {"type": "http", "scheme": "bearer", "description": "An oshal API key: `Authorization: Bearer osk_...`"},
    "apiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key", "description": "The same key, as a header"},
    "botToken": {"type": "apiKey", "in": "header", "name": "X-Oshal-Bot-Token",
                 "description": "Bots only: the token the platform issued to the bot"},
}
_AUTH_HEADERS = {"authorization", "x-api-key", "x-oshal-bot-token"}


def document_security(schema: dict[str, Any], routes: list[RouteContext]) -> None:
    schema.setdefault("components", {})["securitySchemes"] = SECURITY_SCHEMES
    for route in routes:
        audience = _audience(route, min(route.methods or {"GET"}))
        if audience is Audience.PUBLIC:
            continue
        security: list[dict[str, list[str]]] = (
            [{"botToken": []}] if audience is Audience.BOT else [{"apiKey": []}, {"apiKeyHeader": []}])
        for operation in _operations(schema, route):
            operation["security"] = security
            parameters = [p for p in operation.get("parameters", [])
                          if not (p.get("in") == "header" and p.get("name", "").lower() in _AUTH_HEADERS)]
            if parameters:
                operation["parameters"] = parameters
            else:
                operation.pop("parameters", None)


def _operations(schema: dict[str, Any], route: RouteContext) -> Iterator[dict[str, Any]]:
    for method in sorted(route.methods or ()):
        operation = schema["paths"].get(route.path_format, {}).get(method.lower())
        if operation is not None:
            yield operation


def _response(code: int) -> dict[str, Any]:
    response: dict[str, Any] = {"description": DESCRIPTIONS[code],
                                "content": {"application/json": {"schema": {"$ref": _REF}}}}
    if code in (429, 503):
        response["headers"] = _RETRY_AFTER
    return response


def _audience(route: RouteContext, method: str) -> Audience:
    """Who may call it, from the access table (the routes' one declaration; start-up checks it is complete). The
    table names a route by its path as declared, converters included (``{symbol:path}``), as the guard check does."""
    declared = ROUTES.get((method, route.path or ""))
    return declared.audience if declared is not None else Audience.PUBLIC


def _referenced(node: Any, ref: str) -> bool:
    if isinstance(node, dict):
        return node.get("$ref") == ref or any(_referenced(v, ref) for v in node.values())
    if isinstance(node, list):
        return any(_referenced(v, ref) for v in node)
    return False
