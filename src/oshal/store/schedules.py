"""Schedule and schedule-fire SQL.

Every function runs inside a tenant transaction (RLS applies), except :func:`due`, which calls the
``oshal_due_schedules`` definer function in the platform's scope to see due schedules of every tenant.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg import sql

from oshal.store.db import Conn

COLUMNS = ("id", "tenant_id", "name", "cron", "timezone", "ticket_type", "bot", "input", "policy", "enabled",
           "last_tick", "next_tick", "created_by", "created_at")
_COLUMNS = ", ".join(COLUMNS)
_FIRE_COLUMNS = "tick, ticket_id, fired_by, fired_at"
# The API role may update these columns only; a schedule's name and target never change.
UPDATABLE = frozenset({"cron", "timezone", "input", "policy", "enabled", "last_tick", "next_tick"})


async def insert(conn: Conn, schedule: Mapping[str, Any]) -> dict[str, Any] | None:
    """Insert a schedule given as column -> value (every one of :data:`COLUMNS`): the new row, or None when the
    tenant already has a schedule of that name."""
    if set(schedule) != set(COLUMNS):
        raise ValueError(f"a new schedule needs exactly the columns {COLUMNS}, got {sorted(schedule)}")
    placeholders = ", ".join("%s::jsonb" if column == "input" else "%s" for column in COLUMNS)
    cur = await conn.execute(
        f"INSERT INTO schedules ({_COLUMNS}) VALUES ({placeholders}) "  # nosec B608 - only constant SQL fragments are interpolated
        f"ON CONFLICT (tenant_id, name) DO NOTHING RETURNING {_COLUMNS}",
        [json.dumps(schedule[column]) if column == "input" else schedule[column] for column in COLUMNS])
    return await cur.fetchone()


async def listing(conn: Conn) -> list[dict[str, Any]]:
    cur = await conn.execute(f"SELECT {_COLUMNS} FROM schedules ORDER BY name")  # nosec B608 - only constant SQL fragments are interpolated
    return await cur.fetchall()


async def by_name(conn: Conn, name: str, *, lock: bool = False) -> dict[str, Any] | None:
    """``lock`` waits for (and takes) the row lock, so an edit never interleaves with a firing scheduler."""
    cur = await conn.execute(f"SELECT {_COLUMNS} FROM schedules WHERE name = %s{' FOR UPDATE' if lock else ''}",  # nosec B608 - only constant SQL fragments are interpolated
                             (name,))
    return await cur.fetchone()


async def lock_due(conn: Conn, schedule_id: UUID) -> dict[str, Any] | None:
    """Lock the schedule for firing, or None when another scheduler holds it (or it is gone).

    The row comes with ``db_now``, the database's clock, so every replica computes ticks on the same clock.
    """
    cur = await conn.execute(
        f"SELECT {_COLUMNS}, clock_timestamp() AS db_now FROM schedules WHERE id = %s FOR UPDATE SKIP LOCKED",  # nosec B608 - only constant SQL fragments are interpolated
        (schedule_id,))
    return await cur.fetchone()


async def update(conn: Conn, schedule_id: UUID, changes: Mapping[str, Any]) -> dict[str, Any] | None:
    """Set the given columns (a subset of :data:`UPDATABLE`) and return the updated row."""
    unknown = set(changes) - UPDATABLE
    if unknown or not changes:
        raise ValueError(f"schedule columns {sorted(unknown) or 'none'} cannot be updated")
    assignments = sql.SQL(", ").join(
        sql.SQL("{} = %s::jsonb" if column == "input" else "{} = %s").format(sql.Identifier(column))
        for column in changes)
    values = [json.dumps(v) if column == "input" else v for column, v in changes.items()]
    query = sql.SQL("UPDATE schedules SET {} WHERE id = %s RETURNING {}").format(assignments, sql.SQL(_COLUMNS))
    cur = await conn.execute(query, [*values, schedule_id])
    return await cur.fetchone()


async def insert_fire(conn: Conn, *, schedule_id: UUID, tick: datetime, tenant_id: UUID, ticket_id: UUID,
                      fired_by: str) -> dict[str, Any] | None:
    """Record that ``tick`` fired as ``ticket_id``: the fire's row, or None when the tick was recorded already."""
    cur = await conn.execute(
        "INSERT INTO schedule_fires (schedule_id, tick, tenant_id, ticket_id, fired_by) VALUES (%s, %s, %s, %s, %s) "
        f"ON CONFLICT (schedule_id, tick) DO NOTHING RETURNING {_FIRE_COLUMNS}",  # nosec B608 - only constant SQL fragments are interpolated
        (schedule_id, tick, tenant_id, ticket_id, fired_by))
    return await cur.fetchone()


async def recent_fires(conn: Conn, schedule_id: UUID, limit: int) -> list[dict[str, Any]]:
    cur = await conn.execute(
        f"SELECT {_FIRE_COLUMNS} FROM schedule_fires WHERE schedule_id = %s "  # nosec B608 - only constant SQL fragments are interpolated
        "ORDER BY tick DESC LIMIT %s", (schedule_id, limit))
    return await cur.fetchall()


async def due(conn: Conn, limit: int) -> list[dict[str, Any]]:
    """(tenant_id, schedule_id) of enabled schedules whose next tick has come, across tenants, oldest first."""
    cur = await conn.execute("SELECT * FROM oshal_due_schedules(%s)", (limit,))
    return await cur.fetchall()
