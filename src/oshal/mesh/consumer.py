"""A bot's side of its lane: fenced reads, reclaiming from dead replicas, results out, acks, heartbeats.

Every read is fenced: an envelope whose phase already succeeded (its done marker exists, set by the collector
for phases sent more than once) is acknowledged and deleted unread, so a re-sent copy never runs twice.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from oshal.logs import get_logger
from oshal.mesh.envelopes import Envelope, phase_of
from oshal.mesh.keys import LANE_GROUP, done_marker_prefix, heartbeat_key, lane_stream, out_stream
from oshal.mesh.redis import is_nogroup, run_script

log = get_logger(__name__)

# Reads up to ARGV[3] new entries for consumer ARGV[2] of group ARGV[1]; those whose phase has a done marker
# (ARGV[4] .. phase) are acknowledged and deleted at once. Returns {kept entries, how many were skipped}.
_FENCED_READ = """
local reply = redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', ARGV[3], 'STREAMS', KEYS[1], '>')
if not reply then return {{}, 0} end
local kept, skipped = {}, {}
for _, entry in ipairs(reply[1][2]) do
    local fields, phase = entry[2], nil
    for j = 1, #fields, 2 do
        if fields[j] == 'p' then phase = fields[j + 1] end
    end
    if phase and redis.call('EXISTS', ARGV[4] .. phase) == 1 then
        skipped[#skipped + 1] = entry[1]
    else
        kept[#kept + 1] = entry
    end
end
if #skipped > 0 then
    redis.call('XACK', KEYS[1], ARGV[1], unpack(skipped))
    redis.call('XDEL', KEYS[1], unpack(skipped))
end
return {kept, #skipped}
"""

# The same fence for entries already read (a blocking read, a reclaim): ARGV[3..] are (entry id, phase) pairs;
# acknowledges and deletes those whose phase has a done marker and returns their ids.
_FENCE = """
local skipped = {}
for i = 3, #ARGV, 2 do
    if redis.call('EXISTS', ARGV[2] .. ARGV[i + 1]) == 1 then skipped[#skipped + 1] = ARGV[i] end
end
if #skipped > 0 then
    redis.call('XACK', KEYS[1], ARGV[1], unpack(skipped))
    redis.call('XDEL', KEYS[1], unpack(skipped))
end
return skipped
"""

Entry = tuple[bytes, dict[bytes, bytes] | None]


@dataclass(frozen=True, slots=True)
class Delivery:
    message_id: bytes
    envelope: Envelope | None
    deliveries: int = 1


class LaneConsumer:
    def __init__(self, redis: Redis, bot: str, consumer: str) -> None:
        self.redis = redis
        self.bot = bot
        self.consumer = consumer
        self.lane = lane_stream(bot)
        self.out = out_stream(bot)
        self.fenced = 0  # envelopes skipped because their phase had already succeeded
        self._backlog = False  # the last read filled its batch: more is probably waiting

    async def ensure_group(self) -> None:
        try:
            await self.redis.xgroup_create(self.lane, LANE_GROUP, id="0", mkstream=True)
        except ResponseError as e:
            if "BUSYGROUP" not in str(e):
                raise

    @staticmethod
    def _decode(message_id: bytes, fields: dict[bytes, bytes] | None, deliveries: int = 1) -> Delivery:
        if not fields:
            return Delivery(message_id, None, deliveries)
        try:
            return Delivery(message_id, Envelope.decode(fields), deliveries)
        except (KeyError, ValueError, TypeError):
            log.warning("undecodable lane message", message_id=message_id.decode())
            return Delivery(message_id, None, deliveries)

    async def read(self, count: int, block_ms: int) -> list[Delivery]:
        """New messages of this bot's lane, fenced; blocks up to ``block_ms`` when there are none (never polls).

        While the lane has a backlog, one script reads and fences a batch in a single round trip. An idle lane
        is waited on with a blocking XREADGROUP (a script cannot block), and what it returns is fenced after.
        """
        try:
            if self._backlog:
                kept, skipped = await self._fenced_read(count)
                self._backlog = len(kept) + skipped >= count
                if kept or skipped:
                    return [self._decode(mid, fields) for mid, fields in kept]
            reply: Any = await self.redis.xreadgroup(
                LANE_GROUP, self.consumer, {self.lane: ">"}, count=count, block=block_ms
            )
            entries: list[Entry] = list(reply[0][1]) if reply else []
            self._backlog = len(entries) >= count
            entries = await self.fence(entries)
        except ResponseError as e:
            if not is_nogroup(e):
                raise
            await self.ensure_group()
            return []
        return [self._decode(mid, fields) for mid, fields in entries]

    async def _fenced_read(self, count: int) -> tuple[list[Entry], int]:
        reply: Any = await run_script(self.redis, _FENCED_READ, [self.lane],
                                      [LANE_GROUP, self.consumer, count, done_marker_prefix(self.bot)])
        kept: list[Entry] = [(mid, _pairs(flat)) for mid, flat in reply[0]]
        skipped = int(reply[1])
        self._count_fenced(skipped)
        return kept, skipped

    async def fence(self, entries: list[Entry]) -> list[Entry]:
        """Acknowledge (unrun) the entries whose phase already succeeded; returns the others."""
        args: list[str | bytes | int] = [LANE_GROUP, done_marker_prefix(self.bot)]
        for mid, fields in entries:
            phase = phase_of(fields) if fields else None
            if phase is not None:
                args += [mid, phase]
        if len(args) == 2:
            return entries
        skipped = set(await run_script(self.redis, _FENCE, [self.lane], args))
        self._count_fenced(len(skipped))
        return [(mid, fields) for mid, fields in entries if mid not in skipped] if skipped else entries

    def _count_fenced(self, n: int) -> None:
        if n:
            self.fenced += n
            log.info("skipped envelopes whose phase already succeeded", skipped=n, total=self.fenced)

    async def claim(self, min_idle_ms: int, count: int, max_scans: int = 64) -> list[Delivery]:
        """Take over messages another replica received but never acknowledged (it died).

        Walks the whole pending list with XAUTOCLAIM's cursor, so idle entries behind busy ones are found.
        """
        messages: list[Entry] = []
        cursor: Any = "0-0"
        for _ in range(max_scans):
            try:
                reply: Any = await self.redis.xautoclaim(
                    self.lane, LANE_GROUP, self.consumer, min_idle_ms, start_id=cursor, count=count - len(messages)
                )
            except ResponseError as e:
                if not is_nogroup(e):
                    raise
                await self.ensure_group()
                return []
            messages.extend((mid, fields) for mid, fields in reply[1] if mid)
            cursor = reply[0]
            if cursor in (b"0-0", "0-0") or len(messages) >= count:
                break
        messages = await self.fence(messages)
        if not messages:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for mid, _ in messages:
                pipe.xpending_range(self.lane, LANE_GROUP, min=mid, max=mid, count=1)
            pending = await pipe.execute()
        counts = [int(p[0]["times_delivered"]) if p else 1 for p in pending]
        return [self._decode(mid, fields, n) for (mid, fields), n in zip(messages, counts, strict=True)]

    async def complete(self, done: Sequence[tuple[bytes, dict[bytes, bytes] | None]]) -> None:
        """Publish encoded results, then acknowledge and delete the lane entries, in one round trip."""
        if not done:
            return
        results = [fields for _, fields in done if fields is not None]
        async with self.redis.pipeline(transaction=False) as pipe:
            for fields in results:
                pipe.xadd(self.out, fields)  # type: ignore[arg-type]
            ids = [mid for mid, _ in done]
            pipe.xack(self.lane, LANE_GROUP, *ids)
            pipe.xdel(self.lane, *ids)
            replies = await pipe.execute(raise_on_error=False)
        # A failed XADD must be retried; a failed ack only means the lane lost its group (Redis lost its
        # data), and the entries it would acknowledge are gone with it.
        for reply in replies[: len(results)]:
            if isinstance(reply, Exception):
                raise reply

    async def heartbeat(self, ttl_s: float, info: dict[str, object]) -> None:
        await self.redis.set(heartbeat_key(self.bot, self.consumer), json.dumps(info), px=int(ttl_s * 1000))

    async def clear_heartbeat(self) -> None:
        await self.redis.delete(heartbeat_key(self.bot, self.consumer))


def _pairs(flat: list[bytes]) -> dict[bytes, bytes]:
    """A script returns an entry's fields as a flat [name, value, ...] list."""
    return dict(zip(flat[::2], flat[1::2], strict=True))
