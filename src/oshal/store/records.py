"""Application-record SQL: immutable JSON records an application keeps per tenant, named (app, collection, key).

Every function runs inside a tenant transaction (RLS applies). A record is created once and never changed: a second
create with an equal body (JSON equality) returns the stored record, one with a different body is a conflict the
caller reports. Listing follows the order records were written in, ``(created_at, key)``.
"""

from __future__ import annotations

from typing import Any, Literal
from uuid import UUID

from psycopg.types.json import Jsonb

from oshal.store.db import Conn

_COLUMNS = "app, collection, key, body, created_by, created_at"


async def create(conn: Conn, *, tenant_id: UUID, app: str, collection: str, key: str, body: Any,
                 by: UUID | None) -> tuple[dict[str, Any], Literal["created", "same", "different"]]:
    """Create the record unless its name is taken: the stored record, and whether it was created, already held
    this very body, or holds a different one."""
    cur = await conn.execute(
        "INSERT INTO app_records (tenant_id, app, collection, key, body, created_by) VALUES (%s, %s, %s, %s, %s, %s) "
        f"ON CONFLICT (tenant_id, app, collection, key) DO NOTHING RETURNING {_COLUMNS}",  # nosec B608 - constant columns
        (tenant_id, app, collection, key, Jsonb(body), by))
    row = await cur.fetchone()
    if row is not None:
        return row, "created"
    cur = await conn.execute(
        f"SELECT {_COLUMNS}, body = %s::jsonb AS same FROM app_records "  # nosec B608 - constant columns
        "WHERE app = %s AND collection = %s AND key = %s", (Jsonb(body), app, collection, key))
    existing = await cur.fetchone()
    assert existing is not None  # the insert conflicted on this name, and records are never deleted
    same = bool(existing.pop("same"))
    return existing, "same" if same else "different"


async def get(conn: Conn, app: str, collection: str, key: str) -> dict[str, Any] | None:
    cur = await conn.execute(
        f"SELECT {_COLUMNS} FROM app_records WHERE app = %s AND collection = %s AND key = %s",  # nosec B608 - constant columns
        (app, collection, key))
    return await cur.fetchone()


async def exists(conn: Conn, app: str, collection: str, key: str) -> bool:
    cur = await conn.execute("SELECT 1 FROM app_records WHERE app = %s AND collection = %s AND key = %s",
                             (app, collection, key))
    return await cur.fetchone() is not None


async def listing(conn: Conn, app: str, collection: str, *, after: str | None, limit: int,
                  newest_first: bool = False) -> list[dict[str, Any]]:
    """Records of a collection in write order (or newest first), those past the record ``after``, at most ``limit``."""
    direction, past = ("DESC", "<") if newest_first else ("ASC", ">")
    cursor = ""
    params: list[Any] = [app, collection]
    if after is not None:
        cursor = (f" AND (created_at, key) {past} (SELECT created_at, key FROM app_records "
                  "WHERE app = %s AND collection = %s AND key = %s)")
        params += [app, collection, after]
    cur = await conn.execute(
        f"SELECT {_COLUMNS} FROM app_records WHERE app = %s AND collection = %s{cursor} "  # nosec B608 - constant SQL fragments
        f"ORDER BY created_at {direction}, key {direction} LIMIT %s", (*params, limit))
    return await cur.fetchall()
