"""Secrets where they must not be: configuration, logs, streams, ticket results and bot manifests."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from oshal.mesh.redis_keys import PREFIX
from oshal.security.findings import Finding
from oshal.security.scans import ScanContext
from oshal.security.secretscan import Blob, scan_blobs
from oshal.security.secretsources import file_blobs, text_blob
from oshal.store import access
from oshal.store import findings as findings_repo

STREAM_TAIL = 500  # newest entries read from each stream
TICKETS_PER_TENANT = 2000  # newest tickets' inputs, results and errors read per tenant


async def scan(ctx: ScanContext) -> list[Finding]:
    blobs: list[Blob] = []
    blobs += await asyncio.to_thread(lambda: list(_files(ctx)))
    blobs += await _streams(ctx)
    blobs += await _tickets_and_manifests(ctx)
    return await asyncio.to_thread(scan_blobs, blobs)


def _files(ctx: ScanContext) -> Iterator[Blob]:
    s = ctx.settings
    config = [p for p in (s.fleet_dir, s.connectors_dir, s.workflows_dir, s.home / "config") if p.exists()]
    yield from file_blobs(config, "config", root=Path.cwd())
    logs = [p for p in (s.home / "logs", s.home / "pg" / "log", *s.log_paths) if p.exists()]
    yield from file_blobs(logs, "logs", root=s.home)


async def _streams(ctx: ScanContext) -> list[Blob]:
    blobs = []
    async for key in ctx.redis.scan_iter(match=f"{PREFIX}:*", count=500, _type="stream"):
        name = key.decode() if isinstance(key, bytes) else str(key)
        for entry_id, fields in await ctx.redis.xrevrange(name, count=STREAM_TAIL) or []:
            ident = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
            decoded = {_text(k): _text(v) for k, v in (fields or {}).items()}
            blobs.append(text_blob("streams", f"stream {name} {ident}", decoded))
    return blobs


async def _tickets_and_manifests(ctx: ScanContext) -> list[Blob]:
    blobs = []
    async with ctx.db.system() as conn:
        tenants = await access.list_tenants(conn)
        for bot in await access.bots(conn):
            blobs.append(text_blob("manifests", f"bot {bot['name']} manifest", bot["manifest"]))
    for tenant in tenants:
        async with ctx.db.tenant(tenant["id"]) as conn:
            for row in await findings_repo.recent_tickets(conn, TICKETS_PER_TENANT):
                blobs.append(text_blob("tickets", f"ticket {row['id']}", _ticket_text(row)))
    return blobs


def _ticket_text(row: dict[str, Any]) -> dict[str, Any]:
    return {"input": row["input"], "result": row["result"], "error": row["error"]}


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)
