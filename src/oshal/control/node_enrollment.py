"""Remote nodes: enroll (a short-lived, single-use code), join (the code for a bot's identity), list and revoke.

A platform operator mints a code for one bot; only its SHA-256 digest is kept. A node on another machine redeems it
once, over HTTPS, for an identity of its own: a Redis ACL user with exactly its bot's permissions (its lane, its
output stream, its heartbeat and done-marker keys) and a tool-gateway token. Revoking a node disables its Redis user
and closes its connections (``CLIENT KILL USER``) at once, and the gateway refuses its token from the next call on
this replica, within a second on the others: well inside one heartbeat TTL. What it had taken from its lane stays
pending there, and the bot's other replicas take it over after the claim idle time; nothing is lost.

Every enrollment, join (and refused join) and revocation is in the audit log.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from redis.asyncio import Redis

from oshal.audit import trail
from oshal.control.bot_registry import BotRegistry
from oshal.control.node_tokens import NodeTokens
from oshal.control.node_tokens import issue as issue_token
from oshal.errors import Forbidden, Invalid, NotFound, Unauthorized
from oshal.logs import get_logger
from oshal.mesh.acl import cut_off_user, node_password, provision_node_user, save_users, user_url
from oshal.mesh.redis_keys import heartbeat_key, node_acl_user, node_consumer_prefix, node_heartbeat_pattern
from oshal.settings import Settings
from oshal.store import access
from oshal.store import nodes as repo
from oshal.store.db import Database
from oshal.types import new_id

log = get_logger(__name__)

CODE_PREFIX = "onj_"
MIN_TTL_S = 1
MAX_TTL_S = 24 * 3600  # a code is a credential in transit: it should not outlive the operator's working day
_LIST_LIMIT = 1000


def _digest(code: str) -> bytes:
    return hashlib.sha256(code.encode()).digest()


@dataclass(frozen=True, slots=True)
class JoinRequest:
    code: str
    bot: str | None  # the bot the node expects to serve; a code for another bot is refused, and stays unredeemed
    hostname: str
    source: str  # the client's address, as the API saw it


class NodeEnrollment:
    def __init__(self, db: Database, redis: Redis, redis_url: str, dispatch_key: bytes, registry: BotRegistry,
                 tokens: NodeTokens, settings: Settings, refusals: trail.AuditBuffer) -> None:
        self._db = db
        self._refusals = refusals  # refused joins are audited in batches, like refused keys: they come in bursts
        self._redis = redis  # the control plane's own (admin) connection: it creates and disables ACL users
        self._redis_url = redis_url
        self._dispatch_key = dispatch_key
        self._registry = registry
        self._tokens = tokens
        self._settings = settings

    # -- enroll ---------------------------------------------------------------------------------------------------
    async def enroll(self, bot: str, ttl_s: int, label: str, actor: str) -> dict[str, Any]:
        """A new node awaiting its join, and its code (returned here once, never stored)."""
        if not MIN_TTL_S <= ttl_s <= MAX_TTL_S:
            raise Invalid(f"an enrollment code lives between {MIN_TTL_S} s and {MAX_TTL_S // 3600} h, not {ttl_s} s",
                          hint="e.g. --ttl 10m; join the node soon after enrolling it")
        await self._registry.require({bot})
        code = CODE_PREFIX + secrets.token_urlsafe(32)
        node_id = new_id()
        expires = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=ttl_s)
        async with self._db.platform() as conn:
            row = await repo.insert_enrollment(conn, node_id=node_id, bot=bot, label=label, code_digest=_digest(code),
                                               expires_at=expires, created_by=actor)
            await trail.record(conn, trail.Entry(row["tenant_id"], actor, "node.enroll", str(node_id),
                                                 {"bot": bot, "ttl_s": ttl_s, "label": label}))
        return {"node_id": node_id, "bot": bot, "label": label, "code": code, "expires_at": row["code_expires_at"]}

    # -- join -----------------------------------------------------------------------------------------------------
    async def join(self, request: JoinRequest) -> dict[str, Any]:
        """Redeem a code: the node's Redis URL (its own user), gateway token, bot manifest and worker settings.

        The code's row is locked while its Redis user is made, so a second redeemer waits and is then refused; a
        failure before the commit (Redis down) leaves the code unredeemed, to be tried again.
        """
        try:
            return await self._join(request)
        except (Unauthorized, Forbidden) as refused:
            self._refusals.add(trail.Entry(
                None, "anonymous", "node.join_refused", request.code[:len(CODE_PREFIX) + 4] + "...",
                {"reason": refused.message, "source": request.source, "hostname": request.hostname}))
            raise

    async def _join(self, request: JoinRequest) -> dict[str, Any]:
        if not request.code.startswith(CODE_PREFIX):
            raise Unauthorized("malformed enrollment code", hint="codes look like onj_...; get one from "
                                                                 "`oshal node enroll` on the control plane")
        async with self._db.platform() as conn:
            row = await repo.by_code_for_update(conn, _digest(request.code))
            self._check_redeemable(row, request)
            assert row is not None
            node_id: UUID = row["id"]
            bot = str(row["bot"])
            manifest = next((r["manifest"] for r in await access.bots(conn) if r["name"] == bot), None)
            if manifest is None:
                raise NotFound(f"bot {bot!r} is no longer registered", hint="enroll the node for a registered bot")
            token, token_digest = issue_token(node_id)
            joined = await repo.mark_joined(conn, node_id, token_digest=token_digest, joined_from=request.source,
                                            hostname=request.hostname)
            password = node_password(self._dispatch_key, self._redis_url, node_id)
            user = await provision_node_user(self._redis, bot, node_id, password)
            await save_users(self._redis)
            await trail.record(conn, trail.Entry(joined["tenant_id"], f"node:{node_id}", "node.join", str(node_id),
                                                 {"bot": bot, "source": request.source,
                                                  "hostname": request.hostname, "redis_user": user}))
        log.info("node joined", node=str(node_id), bot=bot, source=request.source)
        s = self._settings
        return {
            "node_id": node_id, "bot": bot, "redis_url": user_url(s.node_redis_url or self._redis_url, user, password),
            "gateway_token": token, "manifest": manifest, "consumer_prefix": node_consumer_prefix(node_id),
            "worker": {"heartbeat_ttl_s": s.heartbeat_ttl_s, "claim_idle_ms": s.claim_idle_ms,
                       "max_deliveries": s.max_deliveries, "drain_timeout_s": s.drain_timeout_s},
        }

    @staticmethod
    def _check_redeemable(row: dict[str, Any] | None, request: JoinRequest) -> None:
        if row is None:
            raise Unauthorized("unknown enrollment code", hint="check the code, or mint a new one with "
                                                               "`oshal node enroll`")
        enroll_again = f"mint a new code: `oshal node enroll --bot {row['bot']}`"
        if row["revoked_at"] is not None:
            raise Unauthorized(f"node {row['id']} was revoked; its code is void", hint=enroll_again)
        if row["joined_at"] is not None:
            raise Unauthorized(f"this enrollment code was already redeemed (node {row['id']} joined at "
                               f"{row['joined_at']:%Y-%m-%d %H:%M:%S} UTC); a code works once",
                               hint=f"if that was not you, revoke it: `oshal node revoke {row['id']}`; then "
                                    f"{enroll_again}")
        if row["code_expires_at"] <= row["now"]:
            raise Unauthorized(f"this enrollment code expired at {row['code_expires_at']:%Y-%m-%d %H:%M:%S} UTC",
                               hint=enroll_again)
        if request.bot is not None and request.bot != row["bot"]:
            raise Forbidden(f"this code enrolls a node for bot {row['bot']!r}, not {request.bot!r}; it was not "
                            "redeemed", hint=f"join with --bot {row['bot']}, or ask for a code for {request.bot!r}")

    # -- list -----------------------------------------------------------------------------------------------------
    async def nodes(self) -> list[dict[str, Any]]:
        """Every node, newest first: its state (pending, expired, online, offline, revoked) and last heartbeat."""
        async with self._db.platform() as conn:
            rows = await repo.listing(conn, limit=_LIST_LIMIT)
        beats = await self._heartbeats()
        seen = [(node, at) for node, (at, _) in beats.items()]
        if seen:
            async with self._db.platform() as conn:
                await repo.mark_seen(conn, seen)
        out = []
        for row in rows:
            last, replicas = beats.get(row["id"], (None, 0))
            out.append({**row, "state": _state(row, replicas), "replicas": replicas,
                        "last_heartbeat": last or row["last_seen_at"]})
        return out

    async def _heartbeats(self) -> dict[UUID, tuple[dt.datetime, int]]:
        """Node id -> (its latest heartbeat, live replicas), from the heartbeat keys of remote nodes' workers."""
        pattern = heartbeat_key("*", node_consumer_prefix("") + "*")  # oshal:hb:*:node-*
        keys = [key async for key in self._redis.scan_iter(match=pattern, count=1000)]
        if not keys:
            return {}
        async with self._redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.pttl(key)
            remaining = await pipe.execute()
        now = dt.datetime.now(dt.UTC)
        ttl_ms = self._settings.heartbeat_ttl_s * 1000
        found: dict[UUID, tuple[dt.datetime, int]] = {}
        for key, left in zip(keys, remaining, strict=True):
            node = _node_of_heartbeat(key.decode() if isinstance(key, bytes) else str(key))
            if node is None or int(left) < 0:
                continue
            at = now - dt.timedelta(milliseconds=max(ttl_ms - int(left), 0))
            latest, count = found.get(node, (at, 0))
            found[node] = (max(latest, at), count + 1)
        return found

    # -- revoke ---------------------------------------------------------------------------------------------------
    async def revoke(self, node_id: UUID, actor: str) -> dict[str, Any]:
        """Cut a node off: its gateway token refused, its Redis user disabled and its connections closed, its
        heartbeats removed. A pending code is voided. Revoking again repeats the Redis side (safe to retry)."""
        async with self._db.platform() as conn:
            row = await repo.by_id_for_update(conn, node_id)
            if row is None:
                raise NotFound(f"no node {node_id}", hint="`oshal node list` shows the nodes")
            revoked = await repo.mark_revoked(conn, node_id, actor)
            await trail.record(conn, trail.Entry(revoked["tenant_id"], actor, "node.revoke", str(node_id),
                                                 {"bot": row["bot"], "again": row["revoked_at"] is not None}))
        self._tokens.forget(node_id)
        killed = 0
        if row["joined_at"] is not None:
            killed = await cut_off_user(self._redis, node_acl_user(node_id))
            beats = [key async for key in self._redis.scan_iter(match=node_heartbeat_pattern(row["bot"], node_id))]
            if beats:
                await self._redis.delete(*beats)
        log.info("node revoked", node=str(node_id), bot=row["bot"], connections_closed=killed)
        return {**revoked, "state": "revoked", "replicas": 0, "last_heartbeat": revoked["last_seen_at"],
                "connections_closed": killed}

    # -- after Redis lost its users -------------------------------------------------------------------------------
    async def restore_users(self) -> list[UUID]:
        """Give a Redis server that lost its users (restart without its ACL file, failover) back the users of the
        nodes that joined and were not revoked; returns those that were missing."""
        async with self._db.platform() as conn:
            rows = await repo.active(conn)
        existing = {n.decode() if isinstance(n, bytes) else str(n) for n in await self._redis.acl_users()}
        missing = [row for row in rows if node_acl_user(row["id"]) not in existing]
        for row in missing:
            await provision_node_user(self._redis, str(row["bot"]), row["id"],
                                      node_password(self._dispatch_key, self._redis_url, row["id"]))
        if missing:
            await save_users(self._redis)
        return [row["id"] for row in missing]


def _node_of_heartbeat(key: str) -> UUID | None:
    """``oshal:hb:<bot>:node-<uuid>-<pid>-<replica>`` -> the node's id."""
    consumer = key.split(":", 3)[-1]
    prefix = node_consumer_prefix("")
    if not consumer.startswith(prefix):
        return None
    try:
        return UUID(consumer[len(prefix):len(prefix) + 36])
    except ValueError:
        return None


def _state(row: dict[str, Any], replicas: int) -> str:
    if row["revoked_at"] is not None:
        return "revoked"
    if row["joined_at"] is None:
        return "expired" if row["code_expires_at"] <= row["now"] else "pending"
    return "online" if replicas else "offline"
