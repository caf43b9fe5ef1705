"""The OpenAPI document states what the API really does: security, error statuses and bodies, bounds, rules."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from conftest import Platform
from oshal.api.openapi_doc import EXTRA_STATUSES
from oshal.api.validation import INT8_MAX

ERROR_REF = {"$ref": "#/components/schemas/ErrorOut"}
METHODS = ("get", "put", "post", "patch", "delete")


@pytest.fixture
def document(platform: Platform) -> dict[str, Any]:
    with platform.client() as admin:
        response = admin.get("/openapi.json")
    assert response.status_code == 200
    return response.json()  # type: ignore[no-any-return]


def _operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method in METHODS:
            if method in item:
                yield method.upper(), path, item[method]


def _integers(node: Any, components: dict[str, Any], where: str, seen: tuple[str, ...] = ()) -> Iterator[str]:
    """Every integer schema under ``node`` (following $refs) that lacks a bound or exceeds bigint."""
    if isinstance(node, dict):
        if node.get("type") == "integer":
            low, high = node.get("minimum"), node.get("maximum")
            if low is None or high is None or low < -INT8_MAX - 1 or high > INT8_MAX:
                yield f"{where}: minimum={low} maximum={high}"
        ref = node.get("$ref")
        if isinstance(ref, str):
            name = ref.rsplit("/", 1)[-1]
            if name not in seen:
                yield from _integers(components[name], components, f"{where}->{name}", (*seen, name))
        for key, value in node.items():
            if key != "$ref":
                yield from _integers(value, components, f"{where}.{key}", seen)
    elif isinstance(node, list):
        for value in node:
            yield from _integers(value, components, where, seen)


def test_every_integer_input_is_bounded_by_its_column(document: dict[str, Any]) -> None:
    components = document["components"]["schemas"]
    unbounded = [problem for method, path, op in _operations(document)
                 for problem in _integers([op.get("parameters", []), op.get("requestBody", {})], components,
                                          f"{method} {path}")]
    assert unbounded == []


def test_every_operation_documents_its_errors_with_one_schema(document: dict[str, Any]) -> None:
    assert set(document["components"]["schemas"]["ErrorOut"]["properties"]) >= {"error", "message", "hint",
                                                                                 "details"}
    assert "HTTPValidationError" not in document["components"]["schemas"]  # FastAPI's 422 shape is not ours
    operations = list(_operations(document))
    assert len(operations) > 70
    for method, path, op in operations:
        responses = op["responses"]
        for code in ("422", "500", "503"):
            assert responses[code]["content"]["application/json"]["schema"] == ERROR_REF, (method, path, code)
        if op.get("security"):
            assert {"401", "403"} <= set(responses), (method, path)
        if "requestBody" in op:
            assert "413" in responses, (method, path)
        if "{" in path:
            assert "404" in responses, (method, path)
        assert not [p for p in op.get("parameters", []) if p["in"] == "header"
                    and p["name"].lower() in ("authorization", "x-api-key", "x-oshal-bot-token")], (method, path)
    assert "Retry-After" in document["paths"]["/v1/tickets"]["get"]["responses"]["429"]["headers"]


def test_security_schemes_say_how_to_authenticate(document: dict[str, Any]) -> None:
    schemes = document["components"]["securitySchemes"]
    assert schemes["apiKey"]["scheme"] == "bearer" and schemes["botToken"]["name"] == "X-Oshal-Bot-Token"
    security = {(m, p): op.get("security") for m, p, op in _operations(document)}
    assert security[("GET", "/v1/tickets")] == [{"apiKey": []}, {"apiKeyHeader": []}]
    assert security[("POST", "/v1/models/begin")] == [{"botToken": []}]
    assert security[("GET", "/healthz")] is None


def test_route_specific_statuses_and_content_types(document: dict[str, Any]) -> None:
    paths = document["paths"]
    for (method, path), codes in EXTRA_STATUSES.items():
        assert method.lower() in paths[path], f"{method} {path} is in EXTRA_STATUSES but not a route"
        assert {str(c) for c in codes} <= set(paths[path][method.lower()]["responses"])
    assert "402" in paths["/v1/models/begin"]["post"]["responses"]
    assert "409" in paths["/v1/tickets"]["post"]["responses"]
    assert list(paths["/metrics"]["get"]["responses"]["200"]["content"]) == ["text/plain"]
    assert list(paths["/v1/audit/export"]["get"]["responses"]["200"]["content"]) == ["application/x-ndjson"]


def test_cross_field_rules_are_in_the_schema(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    assert schemas["TicketCreate"]["oneOf"] == [
        {"required": ["bot"], "properties": {"bot": {"not": {"type": "null"}}}},
        {"required": ["type"], "properties": {"type": {"not": {"type": "null"}}}}]
    assert len(schemas["ScheduleCreate"]["oneOf"]) == 2
    assert schemas["ScheduleUpdate"]["minProperties"] == 1
    assert schemas["AssessIn"]["then"]["required"] == ["until"]
    assert schemas["BudgetIn"]["oneOf"][0]["properties"]["scope"] == {"const": "tenant"}
