"""Tenants, API keys and the bot registry."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from oshal.store.db import Conn, OwnerConn


async def create_tenant(conn: Conn, tenant_id: UUID, name: str) -> dict[str, Any] | None:
    cur = await conn.execute(
        "INSERT INTO tenants (id, name) VALUES (%s, %s) ON CONFLICT (name) DO NOTHING RETURNING *",
        (tenant_id, name))
    return await cur.fetchone()


async def tenant_by_name(conn: Conn, name: str) -> dict[str, Any] | None:
    cur = await conn.execute("SELECT * FROM tenants WHERE name = %s", (name,))
    return await cur.fetchone()


async def tenant_by_id(conn: Conn, tenant_id: UUID) -> dict[str, Any] | None:
    cur = await conn.execute("SELECT * FROM tenants WHERE id = %s", (tenant_id,))
    return await cur.fetchone()


async def list_tenants(conn: Conn) -> list[dict[str, Any]]:
    cur = await conn.execute("SELECT * FROM tenants ORDER BY created_at")
    return await cur.fetchall()


async def tenant_ids(conn: Conn) -> list[UUID]:
    """Every tenant's id, oldest first (the API role may read ``tenants``)."""
    cur = await conn.execute("SELECT id FROM tenants ORDER BY created_at, id")
    return [row["id"] for row in await cur.fetchall()]


async def insert_key(conn: Conn, *, key_id: UUID, tenant_id: UUID, prefix: str, digest: bytes, role: str,
                     name: str, expires_at: datetime | None) -> dict[str, Any]:
    cur = await conn.execute(
        "INSERT INTO api_keys (id, tenant_id, prefix, hash, role, name, expires_at) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s) "
        "RETURNING id, tenant_id, prefix, role, name, created_at, expires_at, revoked_at",
        (key_id, tenant_id, prefix, digest, role, name, expires_at))
    row = await cur.fetchone()
    assert row is not None
    return row


async def key_check(conn: Conn, prefix: str, digest: bytes) -> dict[str, Any] | None:
    """The key with ``prefix`` whose stored hash is ``digest`` (its id, tenant, role and validity), or None."""
    cur = await conn.execute("SELECT * FROM oshal_key_check(%s, %s)", (prefix, digest))
    return await cur.fetchone()


async def mark_keys_used(conn: Conn, key_ids: Sequence[UUID]) -> None:
    """Record that these keys (of any tenant) authenticated just now."""
    await conn.execute("SELECT oshal_keys_used(%s)", (list(key_ids),))


async def live_key_inventory(conn: Conn) -> list[dict[str, Any]]:
    """Every tenant's unrevoked keys with their use (platform scope): what the access scan reviews."""
    cur = await conn.execute("SELECT * FROM oshal_key_inventory(NULL) WHERE revoked_at IS NULL")
    return await cur.fetchall()


async def list_keys(conn: Conn) -> list[dict[str, Any]]:
    cur = await conn.execute(
        "SELECT id, tenant_id, prefix, role, name, created_at, expires_at, revoked_at FROM api_keys "
        "ORDER BY created_at")
    return await cur.fetchall()


async def revoke_key(conn: Conn, key_id: UUID) -> dict[str, Any] | None:
    cur = await conn.execute(
        "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE id = %s "
        "RETURNING id, tenant_id, prefix, role, name, created_at, expires_at, revoked_at", (key_id,))
    return await cur.fetchone()


async def bots(conn: Conn) -> list[dict[str, Any]]:
    cur = await conn.execute("SELECT * FROM bots ORDER BY name")
    return await cur.fetchall()


async def stalled_runs(conn: Conn, older_than_s: float, limit: int) -> list[dict[str, Any]]:
    cur = await conn.execute("SELECT * FROM oshal_stalled_runs(make_interval(secs => %s), %s)",
                             (older_than_s, limit))
    return await cur.fetchall()


async def stale_dispatches(conn: Conn, older_than_s: float, after: tuple[datetime, UUID],
                           limit: int) -> list[dict[str, Any]]:
    """Dispatched phases without progress for ``older_than_s``, oldest first, after ``after`` (updated_at, id)."""
    cur = await conn.execute("SELECT * FROM oshal_stale_dispatches(make_interval(secs => %s), %s, %s, %s)",
                             (older_than_s, after[0], after[1], limit))
    return await cur.fetchall()


def register_bots(conn: OwnerConn, manifests: Iterable[dict[str, Any]]) -> None:
    """Upsert bots from their manifests (as JSON values) on an owner connection: the API role can only read
    ``bots``."""
    rows = [
        (m["name"], m.get("description", ""), m["harness"], m["provider"], m["model"], m["replicas"],
         m["concurrency"], json.dumps(m))
        for m in manifests
    ]
    conn.cursor().executemany(
        "INSERT INTO bots (name, description, harness, provider, model, replicas, concurrency, manifest, "
        "updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, now()) ON CONFLICT (name) DO UPDATE SET "
        "description = EXCLUDED.description, harness = EXCLUDED.harness, provider = EXCLUDED.provider, "
        "model = EXCLUDED.model, replicas = EXCLUDED.replicas, concurrency = EXCLUDED.concurrency, "
        "manifest = EXCLUDED.manifest, updated_at = now()", rows)
