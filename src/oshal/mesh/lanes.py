"""The control plane's side of the lanes: consumer groups, dispatch, dead letters and lane statistics."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from oshal.mesh.envelopes import FIELD, Envelope
from oshal.mesh.keys import (
    COLLECTOR_GROUP,
    KILL_SWITCHES,
    KILL_SWITCHES_LOADED,
    LANE_GROUP,
    dead_stream,
    heartbeat_pattern,
    lane_stream,
    out_stream,
)

DEAD_STREAM_MAXLEN = 10_000


@dataclass(frozen=True, slots=True)
class LaneStats:
    length: int
    pending: int
    lag: int
    replicas: int


async def _create_group(redis: Redis, stream: str, group: str) -> None:
    try:
        await redis.xgroup_create(stream, group, id="0", mkstream=True)
    except ResponseError as e:
        if "BUSYGROUP" not in str(e):
            raise


async def ensure_groups(redis: Redis, bots: Iterable[str]) -> None:
    """Create each bot's lane group and the collector's group on each output stream (idempotent)."""
    for bot in bots:
        await _create_group(redis, lane_stream(bot), LANE_GROUP)
        await _create_group(redis, out_stream(bot), COLLECTOR_GROUP)


# Appends each envelope to its lane unless a kill switch holds its bot; returns the 1-based positions held.
# Without the loaded marker (Redis lost its data, or the switches were never mirrored) everything is held:
# a kill switch the gate cannot see must not let work through.
_GATED_XADD = """
local held = {}
local everything = redis.call('EXISTS', KEYS[2]) == 0 or redis.call('HEXISTS', KEYS[1], 'global') == 1
local n = 0
for i = 1, #ARGV, 2 do
    n = n + 1
    local bot = ARGV[i]
    if everything or redis.call('HEXISTS', KEYS[1], 'bot:' .. bot) == 1 then
        held[#held + 1] = n
    else
        redis.call('XADD', 'oshal:lane:' .. bot, '*', 'e', ARGV[i + 1])
    end
end
return held
"""


async def dispatch(redis: Redis, envelopes: Sequence[Envelope]) -> list[Envelope]:
    """Append every envelope to its bot's lane in one atomic round trip; returns those a kill switch held."""
    if not envelopes:
        return []
    args: list[str | bytes] = []
    for env in envelopes:
        args += [env.bot, env.encode()[FIELD]]
    held = await redis.eval(_GATED_XADD, 2, KILL_SWITCHES, KILL_SWITCHES_LOADED, *args)
    return [envelopes[int(i) - 1] for i in held]


async def dead_letter(redis: Redis, envelope: Envelope, reason: str) -> None:
    fields = envelope.encode()
    fields[b"reason"] = reason.encode()
    await redis.xadd(dead_stream(envelope.bot), fields, maxlen=DEAD_STREAM_MAXLEN, approximate=True)  # type: ignore[arg-type]


async def lane_stats(redis: Redis, bot: str) -> LaneStats:
    """Bots delete what they acknowledge, so the lane holds exactly undelivered + pending entries."""
    stream = lane_stream(bot)
    length = int(await redis.xlen(stream))
    pending = 0
    try:
        summary = await redis.xpending(stream, LANE_GROUP)
        pending = int(summary["pending"])
    except ResponseError:
        pass
    replicas = 0
    async for _ in redis.scan_iter(match=heartbeat_pattern(bot), count=100):
        replicas += 1
    return LaneStats(length=length, pending=pending, lag=max(length - pending, 0), replicas=replicas)
