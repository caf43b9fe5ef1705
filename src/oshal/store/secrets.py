"""Credentials and the data keys that encrypt them (tenant transactions; RLS decides what is visible).

A data key row is (id, wrapped, kek_id): ``wrapped`` is empty once the key was retired. A credential row names
its data key; the secret store (``oshal.secrets.builtin``) does every wrapping and encryption.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from oshal.store.db import Conn

_ZERO = "'00000000-0000-0000-0000-000000000000'::uuid"
_SAME_USER = f"coalesce(user_id, {_ZERO}) = coalesce(%s::uuid, {_ZERO})"


# -- data keys --------------------------------------------------------------------------------------------------

async def lock_rotation(conn: Conn, tenant: UUID) -> None:
    """Rotations of one tenant's keys take this transaction lock first, so the row locks and reads that follow see
    whatever an earlier rotation committed (a second rotation then works on the first one's result)."""
    await conn.execute("SELECT pg_advisory_xact_lock(1869834100, hashtext(%s))", (str(tenant),))


async def active_key(conn: Conn, tenant: UUID) -> dict[str, Any] | None:
    """The tenant's active data key, share-locked until the transaction ends (a rotation waits for the writer)."""
    cur = await conn.execute(
        "SELECT id, wrapped, kek_id FROM data_keys WHERE tenant_id = %s AND active FOR SHARE", (tenant,))
    return await cur.fetchone()


async def insert_active_key(conn: Conn, key_id: UUID, tenant: UUID, wrapped: bytes, kek_id: str) -> bool:
    """Store a new active data key; False when the tenant has one already (another writer was first)."""
    cur = await conn.execute(
        "INSERT INTO data_keys (id, tenant_id, wrapped, kek_id) VALUES (%s, %s, %s, %s) "
        "ON CONFLICT (tenant_id) WHERE active DO NOTHING RETURNING id",
        (key_id, tenant, wrapped, kek_id))
    return await cur.fetchone() is not None


async def count_keys_wrapped_by(conn: Conn, tenant: UUID, kek_id: str) -> int:
    cur = await conn.execute(
        "SELECT count(*) AS n FROM data_keys WHERE tenant_id = %s AND kek_id = %s "
        "AND length(wrapped) > 0", (tenant, kek_id))
    count = await cur.fetchone()
    return int(count["n"]) if count else 0


async def lock_keys_not_wrapped_by(conn: Conn, tenant: UUID, kek_id: str) -> list[dict[str, Any]]:
    """The tenant's live data keys wrapped by any other KEK, locked for re-wrapping."""
    cur = await conn.execute(
        "SELECT id, wrapped, kek_id FROM data_keys WHERE tenant_id = %s AND kek_id <> %s "
        "AND length(wrapped) > 0 ORDER BY id FOR UPDATE", (tenant, kek_id))
    return await cur.fetchall()


async def rewrap_keys(conn: Conn, updates: Sequence[tuple[bytes, str, UUID]]) -> None:
    """(wrapped, kek_id, key id) for each re-wrapped data key."""
    await conn.cursor().executemany("UPDATE data_keys SET wrapped = %s, kek_id = %s WHERE id = %s", updates)


async def lock_live_keys(conn: Conn, tenant: UUID) -> list[dict[str, Any]]:
    """Every data key of the tenant not yet retired, locked."""
    cur = await conn.execute(
        "SELECT id, wrapped, kek_id FROM data_keys WHERE tenant_id = %s AND length(wrapped) > 0 "
        "ORDER BY id FOR UPDATE", (tenant,))
    return await cur.fetchall()


async def replace_active_key(conn: Conn, key_id: UUID, tenant: UUID, wrapped: bytes, kek_id: str) -> None:
    """The tenant's active data key becomes ``key_id`` (the previous one stays until it is retired)."""
    await conn.execute("UPDATE data_keys SET active = false WHERE tenant_id = %s AND active", (tenant,))
    await conn.execute(
        "INSERT INTO data_keys (id, tenant_id, wrapped, kek_id) VALUES (%s, %s, %s, %s)",
        (key_id, tenant, wrapped, kek_id))


async def retire_keys_except(conn: Conn, tenant: UUID, keep: UUID) -> None:
    """Erase the wrapped bytes of every other data key of the tenant (nothing references them any more)."""
    await conn.execute(
        "UPDATE data_keys SET wrapped = ''::bytea WHERE tenant_id = %s AND id <> %s AND length(wrapped) > 0",
        (tenant, keep))


# -- credentials ------------------------------------------------------------------------------------------------

async def upsert_credential(conn: Conn, tenant: UUID, name: str, user: UUID | None, ciphertext: bytes,
                            key_id: UUID) -> None:
    await conn.execute(
        "INSERT INTO credentials (tenant_id, name, user_id, ciphertext, data_key_id) "  # nosec B608 - only constant SQL fragments are interpolated
        "VALUES (%s, %s, %s, %s, %s) "
        f"ON CONFLICT (tenant_id, name, coalesce(user_id, {_ZERO})) DO UPDATE SET "
        "ciphertext = EXCLUDED.ciphertext, data_key_id = EXCLUDED.data_key_id, "
        "version = credentials.version + 1, updated_at = now()",
        (tenant, name, user, ciphertext, key_id))


async def credential(conn: Conn, tenant: UUID, name: str, user: UUID | None) -> dict[str, Any] | None:
    """The credential stored for exactly this scope (tenant-wide when ``user`` is None), with its data key."""
    cur = await conn.execute(
        "SELECT c.ciphertext, k.id, k.wrapped, k.kek_id FROM credentials c "  # nosec B608 - only constant SQL fragments are interpolated
        "JOIN data_keys k ON k.id = c.data_key_id "
        f"WHERE c.tenant_id = %s AND c.name = %s AND {_SAME_USER}",
        (tenant, name, user))
    return await cur.fetchone()


async def resolve_credential(conn: Conn, tenant: UUID, name: str, user: UUID | None) -> dict[str, Any] | None:
    """The user's credential if there is one, else the tenant-wide one, with its data key and ``user_id``."""
    cur = await conn.execute(  # one round trip for both scopes: the user's row sorts first
        "SELECT c.ciphertext, c.user_id, k.id, k.wrapped, k.kek_id FROM credentials c "
        "JOIN data_keys k ON k.id = c.data_key_id "
        "WHERE c.tenant_id = %s AND c.name = %s AND (c.user_id IS NULL OR c.user_id = %s::uuid) "
        "ORDER BY c.user_id NULLS LAST LIMIT 1",
        (tenant, name, user))
    return await cur.fetchone()


async def delete_credential(conn: Conn, tenant: UUID, name: str, user: UUID | None) -> bool:
    cur = await conn.execute(
        f"DELETE FROM credentials WHERE tenant_id = %s AND name = %s AND {_SAME_USER} RETURNING name",  # nosec B608 - only constant SQL fragments are interpolated
        (tenant, name, user))
    return bool(await cur.fetchall())


async def credential_names(conn: Conn, tenant: UUID, user: UUID | None) -> list[str]:
    cur = await conn.execute(
        f"SELECT name FROM credentials WHERE tenant_id = %s AND {_SAME_USER} ORDER BY name", (tenant, user))  # nosec B608 - only constant SQL fragments are interpolated
    return [row["name"] for row in await cur.fetchall()]


async def lock_credentials(conn: Conn, tenant: UUID) -> list[dict[str, Any]]:
    """Every credential of the tenant (name, user_id, ciphertext, data_key_id), locked for re-encryption."""
    cur = await conn.execute(
        "SELECT name, user_id, ciphertext, data_key_id FROM credentials WHERE tenant_id = %s "
        "ORDER BY name, user_id FOR UPDATE", (tenant,))
    return await cur.fetchall()


async def reencrypt_credentials(conn: Conn, updates: Sequence[tuple[bytes, UUID, UUID, str, UUID | None]]) -> None:
    """(ciphertext, data key id, tenant, name, user) for each re-encrypted credential."""
    await conn.cursor().executemany(
        "UPDATE credentials SET ciphertext = %s, data_key_id = %s "  # nosec B608 - only constant SQL fragments are interpolated
        f"WHERE tenant_id = %s AND name = %s AND {_SAME_USER}", updates)
