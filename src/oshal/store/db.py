"""The Postgres pool and the two kinds of transaction: tenant-scoped (RLS applies) and system."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from oshal.errors import Unavailable

Conn = psycopg.AsyncConnection[dict[str, Any]]
# A plain owner connection (tuple rows) for what start-up registers before the pool exists (bots, workflows).
OwnerConn = psycopg.Connection[tuple[Any, ...]]
Rows = list[dict[str, Any]]
Statement = tuple[str, Mapping[str, Any] | Sequence[Any]]
_SET_TENANT = "SELECT set_config('oshal.tenant_id', %s, true)"
# The platform's scope is the system tenant's (control/admin.py creates it, named 'system', on bootstrap).
_SET_PLATFORM = "SELECT set_config('oshal.tenant_id', id::text, true) FROM tenants WHERE name = 'system'"
SESSION_MIN_POOL = 3  # a held session leaves the rest of the pool at least two connections
_WAL = ("SELECT (pg_current_wal_insert_lsn() - '0/0'::pg_lsn)::int8 AS written, "
        "(pg_current_wal_flush_lsn() - '0/0'::pg_lsn)::int8 AS flushed")


@dataclass(frozen=True, slots=True)
class Wal:
    """Positions in the write-ahead log, as byte offsets: what was written (in memory) and flushed (on disk)."""

    written: int
    flushed: int

    @staticmethod
    def of(row: Mapping[str, Any] | None) -> Wal:
        assert row is not None
        return Wal(int(row["written"]), int(row["flushed"]))


class Database:
    """Owns one connection pool. Every tenant-data access goes through :meth:`tenant`."""

    def __init__(self, url: str, *, min_size: int = 2, max_size: int = 8, name: str = "oshal") -> None:
        self._pool: AsyncConnectionPool[Conn] = AsyncConnectionPool(
            url,
            min_size=min_size,
            max_size=max_size,
            open=False,
            name=name,
            # Autocommit: a single statement is its own transaction (one round trip); transaction() below
            # opens an explicit one when a unit of work needs several statements.
            kwargs={"row_factory": dict_row, "autocommit": True},
            connection_class=psycopg.AsyncConnection,
        )

    async def open(self, timeout_s: float = 15.0) -> None:
        try:
            await self._pool.open(wait=True, timeout=timeout_s)
        except Exception as e:
            raise Unavailable(
                f"cannot connect to Postgres: {e}",
                hint="check OSHAL_API_DATABASE_URL / OSHAL_DATABASE_URL and that the server is running",
            ) from e

    async def close(self) -> None:
        await self._pool.close()

    @asynccontextmanager
    async def tenant(self, tenant_id: UUID) -> AsyncIterator[Conn]:
        """A transaction whose rows are limited by RLS to ``tenant_id``.

        Pipeline mode sends BEGIN and the tenant setting together with the first statement, so setting the
        tenant costs no round trip of its own.
        """
        async with self._pool.connection() as conn, conn.pipeline(), conn.transaction():
            await conn.execute(_SET_TENANT, (str(tenant_id),))
            yield conn

    @asynccontextmanager
    async def platform(self) -> AsyncIterator[Conn]:
        """A transaction in the platform's scope (its tenant is the system tenant's): the only scope in which the
        definer functions that return rows of every tenant answer (the platform's loops, its Security Center)."""
        async with self._pool.connection() as conn, conn.pipeline(), conn.transaction():
            await conn.execute(_SET_PLATFORM)
            yield conn

    @asynccontextmanager
    async def system(self) -> AsyncIterator[Conn]:
        """A transaction with no tenant: tenant tables show no rows; used for registries and definer calls."""
        async with self._pool.connection() as conn, conn.pipeline(), conn.transaction():
            yield conn

    async def call(self, statement: Statement) -> Rows:
        """One statement in its own implicit transaction; for the hot-path functions that set the tenant."""
        sql, params = statement
        async with self._pool.connection() as conn:
            cur = await conn.execute(sql, params)
            return await cur.fetchall() if cur.description else []

    async def wal(self) -> Wal:
        """Where the WAL is now: written (at or past the end of every commit so far, including those that did not wait
        for the disk: synchronous_commit off) and flushed to disk (WAL is flushed in order)."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(_WAL)
            return Wal.of(await cur.fetchone())

    @asynccontextmanager
    async def session(self) -> AsyncIterator[Database | Session]:
        """One of the pool's connections, kept for a loop that sends statement after statement (the collector): each
        then skips the pool's checkout and return. A statement that fails on a broken connection raises as
        :meth:`call` does; the loop ends, the connection goes back (the pool drops a broken one) and a new session
        takes another. A pool too small to spare one (OSHAL_DB_POOL_SIZE below 3) is not held from the others: the
        statements go through it one by one, as :meth:`call` sends them."""
        if self._pool.max_size < SESSION_MIN_POOL:
            yield self
            return
        async with self._pool.connection() as conn:
            yield Session(conn)

    async def call_in_platform_scope(self, statement: Statement) -> Rows:
        """One statement in the platform's scope (see :meth:`platform`)."""
        sql, params = statement
        async with self.platform() as conn:
            cur = await conn.execute(sql, params)
            return await cur.fetchall()  # in pipeline mode the description is known only once results are read

    async def ping(self) -> None:
        async with self.system() as conn:
            await conn.execute("SELECT 1")

    async def server_started(self) -> datetime:
        """When the Postgres server started: a new value means it restarted (every old session is gone)."""
        rows = await self.call(("SELECT pg_postmaster_start_time() AS started", ()))
        started: datetime = rows[0]["started"]
        return started

    async def drop_broken(self) -> None:
        """Test the idle connections and replace those that broke (e.g. when the server restarted)."""
        await self._pool.check()


class Session:
    """:meth:`Database.call` and :meth:`Database.wal` on one held connection (see :meth:`Database.session`)."""

    def __init__(self, conn: Conn) -> None:
        self._conn = conn

    async def call(self, statement: Statement) -> Rows:
        sql, params = statement
        cur = await self._conn.execute(sql, params)
        return await cur.fetchall() if cur.description else []

    async def wal(self) -> Wal:
        cur = await self._conn.execute(_WAL)
        return Wal.of(await cur.fetchone())
