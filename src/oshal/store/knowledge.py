"""Knowledge-document SQL: runbooks, incident reports and other markdown documents of a tenant.

Every function runs inside a tenant transaction (RLS applies). A document is named by (collection, slug) within its
tenant. :func:`search` is Postgres full text only (``websearch_to_tsquery`` over the generated, weighted ``search``
column: title A, tags B, body C); it is the one place ranking happens, so a ranker over embeddings would join there.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from oshal.store.db import Conn
from oshal.types import new_id

SUMMARY_COLUMNS = ("id", "collection", "slug", "title", "tags", "source", "created_by", "updated_by", "created_at",
                   "updated_at")
_SUMMARY = ", ".join(SUMMARY_COLUMNS)
_DOCUMENT = f"{_SUMMARY}, body"
# ts_rank_cd's default weights for D, C, B, A; normalization 1 divides by 1 + log(length), so a long document does
# not outrank a short one by its length alone.
_WEIGHTS = "{0.1, 0.2, 0.4, 1.0}"
_NORMALIZATION = 1
# The snippet: the body's best fragments, the matched words in markdown bold (the body is markdown).
_HEADLINE = "StartSel=**, StopSel=**, MaxWords=30, MinWords=12, MaxFragments=2, FragmentDelimiter=\" … \""


async def upsert(conn: Conn, *, tenant_id: UUID, collection: str, slug: str, title: str, body: str,
                 tags: Sequence[str], source: str, by: UUID | None) -> tuple[dict[str, Any], bool]:
    """Create the document (collection, slug) or replace its content: the row, and whether it was created."""
    cur = await conn.execute(
        "INSERT INTO knowledge_documents (id, tenant_id, collection, slug, title, body, tags, source, created_by, "
        "updated_by) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
        "ON CONFLICT (tenant_id, collection, slug) DO UPDATE SET title = EXCLUDED.title, body = EXCLUDED.body, "
        "tags = EXCLUDED.tags, source = EXCLUDED.source, updated_by = EXCLUDED.updated_by, updated_at = now() "
        # xmax is 0 only on a row this statement inserted (an updated row carries the updating transaction's id)
        f"RETURNING {_DOCUMENT}, (xmax = 0) AS created",  # nosec B608 - only constant SQL fragments are interpolated
        (new_id(), tenant_id, collection, slug, title, body, list(tags), source, by, by))
    row = await cur.fetchone()
    assert row is not None  # INSERT .. ON CONFLICT DO UPDATE always returns the row
    created = bool(row.pop("created"))
    return row, created


async def get(conn: Conn, collection: str, slug: str) -> dict[str, Any] | None:
    cur = await conn.execute(
        f"SELECT {_DOCUMENT} FROM knowledge_documents WHERE collection = %s AND slug = %s",  # nosec B608 - only constant SQL fragments are interpolated
        (collection, slug))
    return await cur.fetchone()


async def listing(conn: Conn, collection: str, *, after: str | None, limit: int) -> list[dict[str, Any]]:
    """Summaries (no body) of a collection's documents by slug, those after ``after`` (a slug), at most ``limit``."""
    cur = await conn.execute(
        f"SELECT {_SUMMARY} FROM knowledge_documents WHERE collection = %s AND (%s::text IS NULL OR slug > %s) "  # nosec B608 - only constant SQL fragments are interpolated
        "ORDER BY slug LIMIT %s", (collection, after, after, limit))
    return await cur.fetchall()


async def delete(conn: Conn, collection: str, slug: str) -> bool:
    cur = await conn.execute("DELETE FROM knowledge_documents WHERE collection = %s AND slug = %s RETURNING id",
                             (collection, slug))
    return await cur.fetchone() is not None  # in pipeline mode rowcount is known only once results are read


async def search(conn: Conn, query: str, *, collection: str | None, limit: int) -> list[dict[str, Any]]:
    """The best ``limit`` matches of a web-search style query (words, "a phrase", or, -word), best first: each a
    summary with its ``rank`` and a ``snippet`` of its body. A query of stop words only matches nothing."""
    cur = await conn.execute(
        f"WITH q AS (SELECT websearch_to_tsquery('english', %(query)s) AS query), "  # nosec B608 - only constant SQL fragments are interpolated
        f"best AS (SELECT d.id, ts_rank_cd(%(weights)s::float4[], d.search, q.query, %(normalization)s) AS rank "
        "          FROM knowledge_documents d, q "
        "         WHERE d.search @@ q.query AND (%(collection)s::text IS NULL OR d.collection = %(collection)s) "
        "         ORDER BY rank DESC, d.updated_at DESC, d.id LIMIT %(limit)s) "
        # the snippet is computed for the rows returned only: ts_headline re-parses the whole body
        f"SELECT {', '.join(f'd.{c}' for c in SUMMARY_COLUMNS)}, best.rank, "
        "       ts_headline('english', d.body, q.query, %(headline)s) AS snippet "
        "  FROM best JOIN knowledge_documents d USING (id), q "
        " ORDER BY best.rank DESC, d.updated_at DESC, d.id",
        {"query": query, "weights": _WEIGHTS, "normalization": _NORMALIZATION, "collection": collection,
         "limit": limit, "headline": _HEADLINE})
    return await cur.fetchall()
