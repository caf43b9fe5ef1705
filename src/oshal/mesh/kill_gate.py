"""The kill-switch gate on the lanes: a Redis mirror of the engaged switches, read by the append script.

Postgres holds the switches (the system of record); this mirror lets the script that appends to lanes check
them atomically with each append, so no replica can slip a message past a switch once it is engaged. The mirror
carries a "loaded" marker: without it (Redis lost its data, or the mirror was never built) everything is held.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis

from oshal.mesh.envelopes import FIELD, Envelope
from oshal.mesh.redis import run_script
from oshal.mesh.redis_keys import KILL_CHANNEL, KILL_SWITCHES, KILL_SWITCHES_LOADED, KILL_SWITCHES_VERSION
from oshal.store import killswitches as repo
from oshal.store.db import Database

# Appends each envelope (bot, body, phase) to its lane unless a kill switch holds its bot; returns the 1-based
# positions held. Without the loaded marker (Redis lost its data, or the switches were never mirrored) everything
# is held: a kill switch the gate cannot see must not let work through.
_GATED_XADD = """
local held = {}
local everything = redis.call('EXISTS', KEYS[2]) == 0 or redis.call('HEXISTS', KEYS[1], 'global') == 1
local n = 0
for i = 1, #ARGV, 3 do
    n = n + 1
    local bot = ARGV[i]
    if everything or redis.call('HEXISTS', KEYS[1], 'bot:' .. bot) == 1 then
        held[#held + 1] = n
    else
        redis.call('XADD', 'oshal:lane:' .. bot, '*', 'e', ARGV[i + 1], 'p', ARGV[i + 2])
    end
end
return held
"""

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


class KillGate:
    def __init__(self, db: Database, redis: Redis) -> None:
        self.db = db
        self.redis = redis

    async def append(self, envelopes: Sequence[Envelope]) -> list[Envelope]:
        """Append every envelope to its bot's lane in one atomic round trip; returns those a switch held."""
        if not envelopes:
            return []
        args: list[str | bytes] = []
        for env in envelopes:
            args += [env.bot, env.encode()[FIELD], env.phase_id]
        held = await run_script(self.redis, _GATED_XADD, [KILL_SWITCHES, KILL_SWITCHES_LOADED], args)
        return [envelopes[int(i) - 1] for i in held]

    async def loaded(self) -> bool:
        return bool(await self.redis.exists(KILL_SWITCHES_LOADED))

    async def rebuild(self) -> dict[str, dict[str, Any]]:
        """Rebuild the mirror from Postgres; returns the engaged switches read.

        A change made meanwhile (by any replica) bumps the mirror's version after updating it; a rebuild from a
        read older than that change is dropped, so it can never undo a switch engaged or released after it.
        """
        version = await self.redis.get(KILL_SWITCHES_VERSION)
        async with self.db.system() as conn:
            rows = await repo.engaged(conn)
        args: list[str] = [str(int(version or 0))]
        for scope, row in rows.items():
            args += [scope, str(row["reason"])]
        await self.redis.eval(_REBUILD, 3, KILL_SWITCHES, KILL_SWITCHES_LOADED, KILL_SWITCHES_VERSION, *args)
        return rows

    async def changed(self, scope: str, reason: str | None) -> None:
        """After a change commits in Postgres: apply it to the mirror (``reason`` None: released), bump the
        version, and announce it."""
        async with self.redis.pipeline(transaction=True) as pipe:
            if reason is None:
                pipe.hdel(KILL_SWITCHES, scope)
            else:
                pipe.hset(KILL_SWITCHES, scope, reason)
            pipe.incr(KILL_SWITCHES_VERSION)
            await pipe.execute()
        await self.redis.publish(KILL_CHANNEL, "changed")
