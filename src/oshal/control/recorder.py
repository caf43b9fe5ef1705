"""Writes recordings of tool calls off the call's path, many per transaction (drained on shutdown)."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from uuid import UUID

from oshal.logs import get_logger
from oshal.store import recordings as repo
from oshal.store.db import Database

log = get_logger(__name__)


class RecordingWriter:
    def __init__(self, db: Database, *, linger_s: float = 0.05) -> None:
        self._db = db
        self._linger_s = linger_s
        self._pending: list[repo.Recording] = []
        self._flusher: asyncio.Task[None] | None = None

    def add(self, recording: repo.Recording) -> None:
        self._pending.append(recording)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())

    async def _flush(self) -> None:
        await asyncio.sleep(self._linger_s)  # calls finishing meanwhile join this batch
        while self._pending:
            batch, self._pending = self._pending, []
            by_tenant: dict[UUID, list[repo.Recording]] = defaultdict(list)
            for recording in batch:
                by_tenant[recording.tenant_id].append(recording)
            for tenant, rows in by_tenant.items():
                try:
                    async with self._db.tenant(tenant) as conn:
                        await repo.save(conn, rows)
                except Exception as e:
                    log.warning("tool call recordings not stored", calls=len(rows), error=str(e))

    async def drain(self) -> None:
        if self._flusher is not None:
            await asyncio.gather(self._flusher, return_exceptions=True)
