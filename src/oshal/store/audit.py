"""The audit log's chain, its anchors and its retention, through the definer functions that guard them.

Appending needs no transaction of its own: ``append`` joins the caller's, so the action and its entry commit
together. Reads of every tenant's entries need the platform's scope (``Database.platform``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from oshal.store.db import Conn


async def append(conn: Conn, tenants: Sequence[UUID | None], actors: Sequence[str], actions: Sequence[str],
                 targets: Sequence[str], details_json: Sequence[str]) -> None:
    """Append entries (parallel lists, one item per entry) in the caller's transaction."""
    cur = await conn.execute("SELECT oshal_audit(%s::uuid[], %s::text[], %s::text[], %s::text[], %s::jsonb[])",
                             (list(tenants), list(actors), list(actions), list(targets), list(details_json)))
    await cur.fetchone()  # in pipeline mode this waits for the append, so a refusal surfaces here


async def head(conn: Conn) -> dict[str, Any] | None:
    """The chain's head: seq, hash, the seq retention pruned through (pruned_seq) and the count of entries."""
    cur = await conn.execute("SELECT seq, hash, pruned_seq, entries FROM oshal_audit_head()")
    return await cur.fetchone()


async def insert_anchor(conn: Conn, seq: int, digest: bytes, mac: bytes) -> None:
    await conn.execute("SELECT oshal_audit_anchor(%s, %s, %s)", (seq, digest, mac))


async def anchors(conn: Conn) -> list[dict[str, Any]]:
    """The anchors stored in the database (seq, hash, mac)."""
    cur = await conn.execute("SELECT seq, hash, mac FROM oshal_audit_anchors()")
    return await cur.fetchall()


async def chain_problems(conn: Conn) -> list[dict[str, Any]]:
    """Every broken link of the chain (seq, problem), found in the database."""
    cur = await conn.execute("SELECT seq, problem FROM oshal_audit_verify()")
    return await cur.fetchall()


async def hashes(conn: Conn, seqs: Sequence[int]) -> dict[int, bytes]:
    """The stored hash of each entry in ``seqs`` that still exists."""
    cur = await conn.execute("SELECT seq, hash FROM oshal_audit_hashes(%s)", (list(seqs),))
    return {int(r["seq"]): bytes(r["hash"]) for r in await cur.fetchall()}


async def entries_of_all(conn: Conn, after: int, limit: int) -> list[dict[str, Any]]:
    """Every tenant's entries after ``after``, in order (platform scope)."""
    cur = await conn.execute("SELECT * FROM oshal_audit_entries(NULL, %s, %s)", (after, limit))
    return await cur.fetchall()


async def last_seq_before(conn: Conn, at: dt.datetime) -> int:
    """The last sequence number (of the entries this transaction may read) written before ``at``; 0 if none."""
    cur = await conn.execute("SELECT coalesce(max(seq), 0) AS seq FROM audit_log WHERE at < %s", (at,))
    row = await cur.fetchone()
    return int(row["seq"]) if row else 0


async def entries(conn: Conn, after: int, limit: int) -> list[dict[str, Any]]:
    """The transaction's tenant's entries after ``after``, in order (RLS decides)."""
    cur = await conn.execute("SELECT * FROM audit_log WHERE seq > %s ORDER BY seq LIMIT %s", (after, limit))
    return await cur.fetchall()


async def action_counts(conn: Conn, since: dt.datetime) -> list[dict[str, Any]]:
    """Entries per (action, actor) since ``since``, across tenants (platform scope): the runtime scan's input."""
    cur = await conn.execute("SELECT action, actor, n FROM oshal_audit_counts(%s)", (since,))
    return await cur.fetchall()


async def prune_point(conn: Conn, before: Any) -> int | None:
    """The last seq retention would remove for entries older than ``before`` (None or 0: nothing)."""
    cur = await conn.execute("SELECT oshal_audit_prune_point(%s) AS seq", (before,))
    point = await cur.fetchone()
    return int(point["seq"]) if point and point["seq"] else None


async def prune(conn: Conn, before: Any) -> int:
    """Remove entries older than ``before``; returns how many."""
    cur = await conn.execute("SELECT oshal_audit_prune(%s) AS n", (before,))
    row = await cur.fetchone()
    return int(row["n"]) if row else 0
