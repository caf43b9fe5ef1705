"""Writes that need not hold up the caller: gathered while they come in, written many per transaction, per tenant,
and drained on shutdown. A batch that cannot be written is logged (it records what already happened)."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar
from uuid import UUID

from oshal.logs import get_logger
from oshal.store.db import Conn, Database

log = get_logger(__name__)
T = TypeVar("T")


class TenantBatches(Generic[T]):
    """``write(conn, items)`` runs once per tenant per batch, inside that tenant's transaction."""

    def __init__(self, db: Database, tenant_of: Callable[[T], UUID],
                 write: Callable[[Conn, Sequence[T]], Awaitable[None]], *, what: str, linger_s: float) -> None:
        self._db = db
        self._tenant_of = tenant_of
        self._write = write
        self._what = what
        self._linger_s = linger_s
        self._pending: list[T] = []
        self._flusher: asyncio.Task[None] | None = None

    def add(self, item: T) -> None:
        self._pending.append(item)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())

    async def _flush(self) -> None:
        await asyncio.sleep(self._linger_s)  # what arrives meanwhile joins this batch
        while self._pending:
            batch, self._pending = self._pending, []
            by_tenant: dict[UUID, list[T]] = defaultdict(list)
            for item in batch:
                by_tenant[self._tenant_of(item)].append(item)
            for tenant, items in by_tenant.items():
                try:
                    async with self._db.tenant(tenant) as conn:
                        await self._write(conn, items)
                except Exception as e:
                    log.warning(f"{self._what} not recorded", items=len(items), error=str(e))

    async def drain(self) -> None:
        if self._flusher is not None:
            await asyncio.gather(self._flusher, return_exceptions=True)
