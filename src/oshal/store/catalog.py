"""What the database says about itself: its size and how many tables force row-level security."""

from __future__ import annotations

from typing import Any

from oshal.store.db import Conn


async def facts(conn: Conn) -> dict[str, Any]:
    """``size_bytes`` of this database; ``tenant_tables`` (tables with a tenant_id column) and ``forced`` (those of
    them with RLS enabled and forced)."""
    cur = await conn.execute(
        "SELECT pg_database_size(current_database()) AS size_bytes, count(*) AS tenant_tables, "
        "count(*) FILTER (WHERE c.relrowsecurity AND c.relforcerowsecurity) AS forced "
        "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND EXISTS ("
        "SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped)")
    row = await cur.fetchone()
    assert row is not None
    return row
