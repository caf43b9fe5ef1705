"""A signed, enabled demo-shop connector, the way an operator sets one up (shared by the connector and security
tests)."""

from __future__ import annotations

from typing import Any

from conftest import Platform
from external.fake_shop import FakeShop
from oshal.connectors.manifest import ConnectorManifest
from oshal.connectors.publisher_keys import generate_keypair, private_key_pem, public_key_text
from oshal.connectors.signing import sign_manifest
from oshal.connectors.trust import TrustStore

SHOP_SPEC: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {"title": "Demo Shop", "version": "3.0"},
    "servers": [{"url": "https://shop.example.com/v3"}],
    "components": {"securitySchemes": {"token": {"type": "apiKey", "in": "header", "name": "X-Auth-Token"}}},
    "security": [{"token": []}],
    "paths": {
        "/catalog/products": {"get": {
            "operationId": "listProducts", "summary": "List products",
            "parameters": [{"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1}}],
            "responses": {"200": {"description": "ok"}}}},
        "/orders": {"post": {
            "operationId": "createOrder", "summary": "Create an order",
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "type": "object", "required": ["sku"], "properties": {"sku": {"type": "string"}}}}}},
            "responses": {"201": {"description": "created"}}}},
    },
}


ACCOUNT_PATH: dict[str, Any] = {"/account": {"get": {
    "operationId": "getAccount", "summary": "The account, with a debug dump",
    "responses": {"200": {"description": "ok"}}}}}


def enable_shop(platform: Platform, shop: FakeShop, ops: list[str], *, spec: dict[str, Any] = SHOP_SPEC) -> None:
    """The operator's path: import, point at the server, enable operations, sign, trust, enable, connect."""
    admin = platform.client()
    imported = admin.post("/v1/connectors/import", json={"document": spec, "id": "shop", "publisher": "acme",
                                                          "category": "commerce", "origin": "test"})
    assert imported.status_code == 201, imported.text
    operations = sum(len(methods) for methods in spec["paths"].values())
    assert imported.json()["operations"] == operations and imported.json()["state"] == "draft"
    assert admin.patch("/v1/connectors/shop", json={"base_url": f"{shop.root}/v3",
                                                    "allow_private_network": True}).status_code == 200
    risky = admin.post("/v1/connectors/shop/operations", json={"enable": ops})
    if "createOrder" in ops:
        assert risky.status_code == 403 and "allow_risky" in risky.json()["hint"]
        risky = admin.post("/v1/connectors/shop/operations", json={"enable": ops, "allow_risky": True})
    assert risky.status_code == 200 and risky.json()["enabled_operations"] == len(ops)
    manifest = ConnectorManifest.model_validate(admin.get("/v1/connectors/shop").json()["manifest"])
    private, public = generate_keypair()
    TrustStore.in_home(platform.home).trust("acme", public_key_text(public))
    signature = sign_manifest(manifest, private_key_pem(private), "acme")
    enabled = admin.post("/v1/connectors/shop/signature", json={"signature": signature.to_dict()})
    assert enabled.status_code == 200 and enabled.json()["state"] == "enabled", enabled.text
