"""Kill switches: a global one and one per bot. Engaged, they stop new dispatch and tool calls at once.

Postgres holds the switches (the system of record, audited); Redis holds a mirror that the dispatch script
reads atomically with each append, so no replica can slip a message past a switch once ``engage`` returns.
The mirror carries a "loaded" marker: if Redis loses it, dispatch holds everything until the mirror is rebuilt.
Held work is not lost or failed: its phases go back to ``queued`` and are dispatched when the switch is released.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from redis.asyncio import Redis

from oshal.audit import trail
from oshal.errors import Conflict, Invalid, NotFound
from oshal.logs import get_logger
from oshal.mesh import lanes
from oshal.mesh.envelopes import Envelope
from oshal.mesh.redis_keys import KILL_CHANNEL, KILL_SWITCHES, KILL_SWITCHES_LOADED, KILL_SWITCHES_VERSION
from oshal.mesh.signing import DispatchSigner
from oshal.store import tickets as ticket_repo
from oshal.store.db import Database

log = get_logger(__name__)
GLOBAL = "global"
# Rebuild the mirror from ARGV (version read before Postgres, then scope/reason pairs), unless it changed since.
_REBUILD = """
if tonumber(redis.call('GET', KEYS[3]) or '0') ~= tonumber(ARGV[1]) then
    return 0
end
redis.call('DEL', KEYS[1])
if #ARGV > 1 then
    redis.call('HSET', KEYS[1], unpack(ARGV, 2))
end
redis.call('SET', KEYS[2], '1')
return 1
"""
_SCOPE = re.compile(r"^(global|bot:[a-z0-9][a-z0-9-]{0,62})$")


def scope_of(bot: str | None) -> str:
    return GLOBAL if bot is None else f"bot:{bot}"


class KillSwitches:
    def __init__(self, db: Database, redis: Redis, signer: DispatchSigner) -> None:
        self.db = db
        self.redis = redis
        self.signer = signer
        self.engaged: dict[str, dict[str, Any]] = {}

    # --- state -----------------------------------------------------------------------------------------------

    def blocks(self, bot: str) -> str | None:
        """The reason ``bot`` may not work right now, from this process's view (refreshed on every change)."""
        for scope in (GLOBAL, scope_of(bot)):
            row = self.engaged.get(scope)
            if row is not None:
                return f"kill switch {scope} is engaged by {row['engaged_by']}: {row['reason']}"
        return None

    async def refresh(self) -> dict[str, dict[str, Any]]:
        """Reload from Postgres and rebuild the Redis mirror (at start and by the sweeper).

        A change made meanwhile (by any replica) bumps the mirror's version after updating it; a rebuild from a
        read older than that change is dropped, so it can never undo a switch engaged or released after it.
        """
        version = await self.redis.get(KILL_SWITCHES_VERSION)
        rows = await self.load()
        args: list[str] = [str(int(version or 0))]
        for scope, row in rows.items():
            args += [scope, str(row["reason"])]
        await self.redis.eval(_REBUILD, 3, KILL_SWITCHES, KILL_SWITCHES_LOADED, KILL_SWITCHES_VERSION, *args)
        return rows

    async def load(self) -> dict[str, dict[str, Any]]:
        """The engaged switches from Postgres, also kept as this process's view (see :meth:`blocks`)."""
        async with self.db.system() as conn:
            cur = await conn.execute("SELECT scope, reason, engaged_by, engaged_at FROM kill_switches")
            self.engaged = {r["scope"]: r for r in await cur.fetchall()}
        return self.engaged

    async def engage(self, bot: str | None, *, reason: str, actor: str, tenant: UUID) -> dict[str, Any]:
        scope = _checked(scope_of(bot))
        if not reason.strip():
            raise Invalid("a kill switch needs a reason", hint="pass --reason 'what happened'")
        async with self.db.system() as conn:
            cur = await conn.execute(
                "INSERT INTO kill_switches (scope, reason, engaged_by) VALUES (%s, %s, %s) "
                "ON CONFLICT (scope) DO NOTHING RETURNING scope, reason, engaged_by, engaged_at",
                (scope, reason.strip()[:500], actor))
            row = await cur.fetchone()
            if row is None:
                raise Conflict(f"kill switch {scope} is already engaged", hint="release it first to change it")
            await trail.record(conn, trail.Entry(tenant, actor, "kill_switch.engage", scope, {"reason": reason}))
        await self._mirror_changed(scope, str(row["reason"]))
        log.warning("kill switch engaged", scope=scope, by=actor, reason=reason)
        return row

    async def release(self, bot: str | None, *, actor: str, tenant: UUID) -> int:
        """Release a switch and dispatch the work it held; returns how many phases were dispatched."""
        scope = _checked(scope_of(bot))
        async with self.db.system() as conn:
            cur = await conn.execute("DELETE FROM kill_switches WHERE scope = %s RETURNING scope", (scope,))
            if await cur.fetchone() is None:
                raise NotFound(f"kill switch {scope} is not engaged")
            await trail.record(conn, trail.Entry(tenant, actor, "kill_switch.release", scope, {}))
        await self._mirror_changed(scope, None)
        log.warning("kill switch released", scope=scope, by=actor)
        return await self.dispatch_held()

    async def _mirror_changed(self, scope: str, reason: str | None) -> None:
        """After the change commits: apply it to the mirror field by field, then bump the version."""
        async with self.redis.pipeline(transaction=True) as pipe:
            if reason is None:
                pipe.hdel(KILL_SWITCHES, scope)
            else:
                pipe.hset(KILL_SWITCHES, scope, reason)
            pipe.incr(KILL_SWITCHES_VERSION)
            await pipe.execute()
        await self.load()
        await self.redis.publish(KILL_CHANNEL, "changed")

    # --- dispatch ----------------------------------------------------------------------------------------------

    async def dispatch(self, envelopes: Sequence[Envelope]) -> int:
        """Append to lanes through the gate; envelopes a switch holds go back to queued. Returns how many held."""
        held = await lanes.dispatch(self.redis, envelopes)
        if held:
            await self._requeue(held)
            if not await self.redis.exists(KILL_SWITCHES_LOADED):
                await self.refresh()  # Redis lost the mirror: rebuild it; the sweeper re-drives what was held
        return len(held)

    async def _requeue(self, held: Sequence[Envelope]) -> None:
        by_tenant: dict[str, list[Envelope]] = defaultdict(list)
        for env in held:
            by_tenant[env.tenant_id].append(env)
        for tenant, envs in by_tenant.items():
            async with self.db.tenant(UUID(tenant)) as conn:
                await ticket_repo.undispatch(conn, [(UUID(e.phase_id), e.attempt) for e in envs])
        log.info("dispatch held by a kill switch", phases=len(held))

    async def dispatch_held(self, limit: int = 5000) -> int:
        """Dispatch queued phases of bots that no switch holds any longer."""
        async with self.db.platform() as conn:
            cur = await conn.execute("SELECT * FROM oshal_held_phases(%s)", (limit,))
            rows = [r for r in await cur.fetchall() if self.blocks(str(r["bot"])) is None]
        by_tenant: dict[UUID, list[UUID]] = defaultdict(list)
        for row in rows:
            by_tenant[row["tenant_id"]].append(row["phase_id"])
        envelopes: list[Envelope] = []
        for tenant, phases in by_tenant.items():
            async with self.db.tenant(tenant) as conn:
                for r in await ticket_repo.redispatch(conn, phases, from_status=["queued"]):
                    env = Envelope(str(r["ticket_id"]), str(r["phase_id"]), int(r["attempt"]), str(tenant),
                                   str(r["bot"]), r["input"])
                    envelopes.append(env.signed(self.signer.sign(env)))
        held = await self.dispatch(envelopes)
        return len(envelopes) - held


def _checked(scope: str) -> str:
    if not _SCOPE.match(scope):
        raise Invalid(f"{scope!r} is not a kill-switch scope", hint="use 'global' or a bot name")
    return scope
