"""Ticket artifacts (rendered frames, videos, files): bots write them through the gateway, users read them.

The object store's credentials stay in the control plane. A bot proves which ticket it works on with its bot
token and the signed envelope it was dispatched, exactly as for tool calls.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Awaitable, Callable
from typing import Any
from uuid import UUID

from oshal.errors import Forbidden, Invalid, NotFound, TooLarge
from oshal.mesh.envelopes import Envelope
from oshal.store import workflows as repo
from oshal.store.db import Database
from oshal.store.objects import ObjectStore
from oshal.types import new_id

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
Identify = Callable[[str | None, Envelope], Awaitable[tuple[str, UUID, UUID]]]


def _envelope(header: str | None) -> Envelope:
    if not header:
        raise Forbidden("missing X-Oshal-Envelope", hint="send the envelope you were dispatched")
    try:
        e = json.loads(header)
        return Envelope(str(e["t"]), str(e["p"]), int(e["a"]), str(e["n"]), str(e["b"]), None, str(e["g"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise Invalid("X-Oshal-Envelope is not a dispatch envelope", hint="send it as the node received it") from exc


def _check_name(name: str) -> None:
    if not NAME.match(name):
        raise Invalid(f"artifact name {name!r} is not allowed",
                      hint="letters, digits, '.', '_' and '-', starting with a letter or digit, at most 100")


class ArtifactService:
    def __init__(self, db: Database, store: ObjectStore, identify: Identify, *, max_bytes: int) -> None:
        self.db = db
        self.store = store
        self.identify = identify
        self.max_bytes = max_bytes

    async def put_from_bot(self, bot_token: str | None, envelope_header: str | None, name: str, data: bytes,
                           content_type: str) -> dict[str, Any]:
        bot, tenant, ticket = await self.identify(bot_token, _envelope(envelope_header))
        _check_name(name)
        if len(data) > self.max_bytes:
            raise TooLarge(f"artifact {name} is {len(data)} bytes; the limit is {self.max_bytes}",
                           hint="raise OSHAL_MAX_ARTIFACT_BYTES")
        digest = hashlib.sha256(data).hexdigest()
        key = f"{tenant}/{ticket}/{digest[:16]}-{name}"
        stored = await self.store.put(key, data, content_type or "application/octet-stream")
        async with self.db.tenant(tenant) as conn:
            row = await repo.insert_artifact(conn, tenant, new_id(), ticket, name, key, stored.size, stored.sha256,
                                             stored.content_type, f"bot:{bot}")
        return {"name": name, "size": stored.size, "sha256": stored.sha256, "created": bool(row)}

    async def get_for_bot(self, bot_token: str | None, envelope_header: str | None, name: str) -> bytes:
        _, tenant, ticket = await self.identify(bot_token, _envelope(envelope_header))
        data, _ = await self.read(tenant, ticket, name)
        return data

    async def list(self, tenant: UUID, ticket: UUID) -> list[dict[str, Any]]:
        async with self.db.tenant(tenant) as conn:
            rows = await repo.artifacts(conn, ticket)
        return [{k: v for k, v in row.items() if k != "object_key"} for row in rows]

    async def read(self, tenant: UUID, ticket: UUID, name: str) -> tuple[bytes, str]:
        _check_name(name)
        async with self.db.tenant(tenant) as conn:
            rows = [r for r in await repo.artifacts(conn, ticket) if r["name"] == name]
        if not rows:
            raise NotFound(f"ticket {ticket} has no artifact {name!r}",
                           hint="GET /v1/tickets/{id}/artifacts lists them")
        return await self.store.get(str(rows[0]["object_key"])), str(rows[0]["content_type"])
