"""The token broker against the real database: single use, expiry, binding, policy and approvals."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from conftest import Platform, make_tenant
from oshal.connectors.broker import ApprovalRequired, Broker, GrantRequest
from oshal.connectors.manifest import AuthScheme, ConnectorManifest, Operation
from oshal.errors import Forbidden
from oshal.store import connectors as repo
from oshal.store.db import Database

KEY = b"test-broker-key-0123456789abcdef"


def shop_manifest(*, enabled: bool = True) -> ConnectorManifest:
    return ConnectorManifest(
        id="shop", version="1", publisher="acme", category="commerce", base_url="http://127.0.0.1:1",
        auth=(AuthScheme(kind="api_key", name="X-Auth-Token"),),
        operations=(Operation(name="listProducts", method="GET", path="/products", enabled=enabled),
                    Operation(name="createOrder", method="POST", path="/orders", effects=("order",),
                              enabled=enabled),
                    Operation(name="hidden", method="GET", path="/hidden", enabled=False)),
    )


@pytest.fixture
async def db(platform: Platform) -> AsyncIterator[Database]:
    database = Database(platform.engines.api_url, min_size=1, max_size=4)
    await database.open()
    yield database
    await database.close()


async def _setup(db: Database, tenant: uuid.UUID, *, state: str = "enabled",
                 modes: dict[str, str] | None = None) -> None:
    manifest = shop_manifest()
    async with db.tenant(tenant) as conn:
        await repo.upsert_connector(conn, connector_id="shop", version="1", publisher="acme", category="commerce",
                                    title="Shop", manifest=manifest.model_dump(mode="json", by_alias=True),
                                    digest=manifest.digest(), state=state, signature=None,
                                    quarantine_reason="manifest changed" if state == "quarantined" else None)
        for op, mode in (modes or {}).items():
            await repo.set_policy(conn, tenant, "echo", "shop", op, mode, None)


def _request(tenant: uuid.UUID, ticket: uuid.UUID, op: str = "listProducts", **arguments: Any) -> GrantRequest:
    return GrantRequest(tenant, "echo", ticket, "shop", op, arguments)


async def test_a_grant_is_single_use_and_recorded(platform: Platform, db: Database) -> None:
    tenant = uuid.UUID(make_tenant(platform, "t1").tenant_id)
    await _setup(db, tenant, modes={"listProducts": "auto"})
    broker = Broker(db, KEY)
    request = _request(tenant, uuid.uuid4(), limit=5)
    grant = await broker.issue(request)
    assert await broker.redeem(grant.token, request) == grant.id
    with pytest.raises(Forbidden, match="already used"):
        await broker.redeem(grant.token, request)
    await broker.record_outcome(tenant, grant.id, "200")
    async with db.tenant(tenant) as conn:
        [row] = await repo.grants(conn, request.ticket_id)
    assert row["redeemed_at"] is not None and row["outcome"] == "200" and row["bot"] == "echo"
    assert (row["expires_at"] - row["issued_at"]).total_seconds() == pytest.approx(60, abs=1)


async def test_expired_and_mismatched_grants_are_refused(platform: Platform, db: Database) -> None:
    tenant = uuid.UUID(make_tenant(platform, "t1").tenant_id)
    other = uuid.UUID(make_tenant(platform, "t2").tenant_id)
    await _setup(db, tenant, modes={"listProducts": "auto", "createOrder": "auto"})
    broker = Broker(db, KEY)
    ticket = uuid.uuid4()
    request = _request(tenant, ticket, limit=5)
    grant = await broker.issue(request)
    mismatches = [
        _request(tenant, ticket, "createOrder", limit=5),                    # another operation
        _request(tenant, ticket, limit=6),                                   # other arguments
        _request(tenant, uuid.uuid4(), limit=5),                             # another ticket
        _request(other, ticket, limit=5),                                    # another tenant
        GrantRequest(tenant, "summarizer", ticket, "shop", "listProducts", {"limit": 5}),  # another bot
    ]
    for wrong in mismatches:
        with pytest.raises(Forbidden, match="does not match"):
            await broker.redeem(grant.token, wrong)
    forged = grant.token.rsplit(".", 1)[0] + "." + "0" * 64
    with pytest.raises(Forbidden, match="does not match"):
        await broker.redeem(forged, request)
    with pytest.raises(Forbidden, match="malformed"):
        await broker.redeem("nonsense", request)
    assert await broker.redeem(grant.token, request) == grant.id  # the right call still works once

    short = Broker(db, KEY, ttl_s=0.05)
    late = await short.issue(request)
    await asyncio.sleep(1.1)  # expiry has second resolution in the token
    with pytest.raises(Forbidden, match="expired"):
        await short.redeem(late.token, request)


async def test_policy_off_by_default_and_closed_connectors_refuse(platform: Platform, db: Database) -> None:
    tenant = uuid.UUID(make_tenant(platform, "t1").tenant_id)
    broker = Broker(db, KEY)
    await _setup(db, tenant)
    with pytest.raises(Forbidden, match="tool policy off"):
        await broker.issue(_request(tenant, uuid.uuid4()))
    await _setup(db, tenant, modes={"hidden": "auto"})
    with pytest.raises(Forbidden, match="'hidden' of 'shop' is not enabled"):
        await broker.issue(_request(tenant, uuid.uuid4(), "hidden"))
    await _setup(db, tenant, state="quarantined", modes={"listProducts": "auto"})
    with pytest.raises(Forbidden, match="quarantined: manifest changed"):
        await broker.issue(_request(tenant, uuid.uuid4()))


async def test_ask_needs_an_approval_for_this_ticket_and_arguments(platform: Platform, db: Database) -> None:
    tenant = uuid.UUID(make_tenant(platform, "t1").tenant_id)
    await _setup(db, tenant, modes={"createOrder": "ask"})
    broker = Broker(db, KEY)
    ticket = uuid.uuid4()
    request = _request(tenant, ticket, "createOrder", sku="A-1", qty=2)
    with pytest.raises(ApprovalRequired) as first:
        await broker.issue(request)
    with pytest.raises(ApprovalRequired) as again:
        await broker.issue(request)
    assert first.value.approval_id == again.value.approval_id  # one pending approval, not one per attempt
    async with db.tenant(tenant) as conn:
        [pending] = await repo.approvals(conn, "pending")
        assert pending["arguments"] == {"sku": "A-1", "qty": 2} and pending["bot"] == "echo"
        assert await repo.decide(conn, pending["id"], "approved", uuid.uuid4(), None) is not None
    grant = await broker.issue(request)
    assert await broker.redeem(grant.token, request) == grant.id
    with pytest.raises(ApprovalRequired):  # the approval covers these arguments only
        await broker.issue(_request(tenant, ticket, "createOrder", sku="A-1", qty=200))
