"""Bad input gets a 4xx with a JSON error that says what was wrong. Never a 500."""

from __future__ import annotations

import uuid

import httpx
import pytest

from conftest import Platform, TenantClient, make_tenant


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic !!"},
                                     {"Authorization": "Bearer osk_000000000000_wrong"}, {"X-API-Key": ""}])
def test_requests_without_a_valid_key_get_401_json(platform: Platform, headers: dict[str, str]) -> None:
    response = httpx.get(f"{platform.url}/v1/tickets", headers=headers)
    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"


def test_revoked_key_is_refused_and_members_cannot_operate(platform: Platform) -> None:
    member = make_tenant(platform, "beta")
    assert member.http.post("/v1/tenants", json={"name": "x"}).status_code == 403
    assert member.http.get("/v1/keys").status_code == 403
    keys = platform.client().get("/v1/keys", params={"tenant": "beta"}).json()
    assert [k["role"] for k in keys] == ["member"] and "key" not in keys[0] and "hash" not in keys[0]
    revoked = platform.client().delete(f"/v1/keys/{keys[0]['id']}", params={"tenant": "beta"})
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    refused = member.http.get("/v1/tickets")
    assert refused.status_code == 401 and "revoked" in refused.json()["message"]


def test_duplicate_tenant_is_a_conflict(platform: Platform) -> None:
    admin = platform.client()
    assert admin.post("/v1/tenants", json={"name": "dup"}).status_code == 201
    again = admin.post("/v1/tenants", json={"name": "dup"})
    assert again.status_code == 409 and "already exists" in again.json()["message"]
    assert admin.post("/v1/tenants", json={"name": "../bad"}).status_code == 422
    assert admin.post("/v1/keys", json={"tenant": "ghost"}).status_code == 404


@pytest.mark.parametrize(("body", "status", "fragment"), [
    ({"bot": "nobody", "input": {}}, 422, "unknown bot 'nobody'"),
    ({"input": {}}, 422, "give exactly one of \"bot\""),
    ({"bot": 5, "input": {}}, 422, "bot: Input should be a valid string"),
    ({"bot": "echo", "input": {}, "surprise": 1}, 422, "surprise: Extra inputs are not permitted"),
    ({"bot": "echo", "input": {}, "idempotency_key": ""}, 422, "idempotency_key"),
    ({"bot": "echo", "input": {"blob": "x" * 20_000}}, 413, "limit is 16384"),
])
def test_bad_ticket_bodies_are_refused_with_a_reason(platform: Platform, tenant_client: TenantClient,
                                                     body: dict[str, object], status: int, fragment: str) -> None:
    response = tenant_client.http.post("/v1/tickets", json=body)
    assert response.status_code == status, response.text
    assert fragment in response.json()["message"]


def test_malformed_json_and_wrong_content_are_422(platform: Platform, tenant_client: TenantClient) -> None:
    response = tenant_client.http.post("/v1/tickets", content=b'{"bot": "echo", "input": ',
                                       headers={"Content-Type": "application/json"})
    assert response.status_code == 422 and response.json()["error"] == "invalid"
    assert "JSON" in response.json()["message"]
    assert tenant_client.http.post("/v1/tickets", content=b"[]",
                                   headers={"Content-Type": "application/json"}).status_code == 422


def test_oversized_body_is_refused_before_it_is_read(platform: Platform, tenant_client: TenantClient) -> None:
    huge = b'{"tickets": [' + b'{"bot":"echo","input":"' + b"x" * 5_000_000 + b'"}]}'
    response = tenant_client.http.post("/v1/tickets/batch", content=huge,
                                       headers={"Content-Type": "application/json"})
    assert response.status_code == 413 and response.json()["error"] == "too_large"


def test_batch_limits_and_atomicity(platform: Platform, tenant_client: TenantClient) -> None:
    too_many = {"tickets": [{"bot": "echo", "input": 1}] * 1001}
    refused = tenant_client.http.post("/v1/tickets/batch", json=too_many)
    assert refused.status_code == 413 and "the limit is 1000" in refused.json()["message"]
    assert tenant_client.http.post("/v1/tickets/batch", json={"tickets": []}).status_code == 422
    mixed = {"tickets": [{"bot": "echo", "input": 1}, {"bot": "nobody", "input": 2}]}
    response = tenant_client.http.post("/v1/tickets/batch", json=mixed)
    assert response.status_code == 422 and "nobody" in response.json()["message"]
    assert tenant_client.http.get("/v1/tickets").json()["items"] == []  # nothing half-created


def test_unknown_and_malformed_ticket_ids(platform: Platform, tenant_client: TenantClient) -> None:
    missing = tenant_client.http.get(f"/v1/tickets/{uuid.uuid4()}")
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
    assert tenant_client.http.get("/v1/tickets/not-a-uuid").status_code == 422
    assert tenant_client.http.get("/v1/tickets", params={"status": "weird"}).status_code == 422
    assert tenant_client.http.get("/v1/tickets", params={"limit": 0}).status_code == 422
    assert tenant_client.http.get(f"/v1/tickets/{uuid.uuid4()}", params={"wait": -1}).status_code == 422
    assert tenant_client.http.post(f"/v1/tickets/{uuid.uuid4()}/cancel").status_code == 404
    assert tenant_client.http.get("/v1/nothing-here").status_code == 404
    assert tenant_client.http.delete("/v1/tickets").status_code == 405
