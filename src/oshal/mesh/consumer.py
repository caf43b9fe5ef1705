"""A bot's side of its lane: fenced reads, reclaiming from dead replicas, results out, acks, heartbeats.

Reads are fenced: an envelope whose phase already succeeded (its done marker exists, set by the collector for
phases sent more than once) is acknowledged and deleted unrun. Only copies that can have a twin are checked, a
re-sent envelope (attempt above 1) and one taken over from another replica, so a first delivery costs nothing
extra. The fence is plain commands in a pipeline: bots get no scripting (a script can block Redis for everyone).

Finished results can ride on the next read (:meth:`LaneConsumer.complete_and_read`): their XADDs, the XACK and XDEL,
then the blocking XREADGROUP go out as one pipeline, so a busy replica makes one round trip per batch, not two. Redis
runs a pipeline's commands in order, so each result is in the output stream before its lane entry is acknowledged.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import ResponseError

from oshal.logs import get_logger
from oshal.mesh.envelopes import Envelope
from oshal.mesh.redis import is_nogroup
from oshal.mesh.redis_keys import LANE_GROUP, done_marker, heartbeat_key, lane_stream, out_stream

log = get_logger(__name__)

Entry = tuple[bytes, dict[bytes, bytes] | None]


class ResultsNotWritten(Exception):
    """A result handed to :meth:`LaneConsumer.complete_and_read` was refused (its error is the ``__cause__``): write
    them again. What the read in the same round trip delivered stays pending in the lane and is reclaimed."""


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
        """New messages of this bot's lane, fenced; blocks up to ``block_ms`` when there are none (never polls)."""
        try:
            reply: Any = await self.redis.xreadgroup(
                LANE_GROUP, self.consumer, {self.lane: ">"}, count=count, block=block_ms
            )
        except ResponseError as e:
            if not is_nogroup(e):
                raise
            await self.ensure_group()
            return []
        return await self._delivered(reply)

    async def complete_and_read(self, done: Sequence[Entry], count: int, block_ms: int) -> list[Delivery]:
        """:meth:`complete` ``done``, then :meth:`read`, in one round trip. ResultsNotWritten when a result was
        refused; an error of the read itself is raised as :meth:`read` raises it (the results were written then)."""
        if not done:
            return await self.read(count, block_ms)
        async with self.redis.pipeline(transaction=False) as pipe:
            results = self._queue_complete(pipe, done)
            pipe.xreadgroup(LANE_GROUP, self.consumer, {self.lane: ">"}, count=count, block=block_ms)
            replies = await pipe.execute(raise_on_error=False)
        try:
            self._raise_unwritten(replies[:results])
        except Exception as e:
            raise ResultsNotWritten(str(e)) from e
        reply = replies[-1]
        if isinstance(reply, ResponseError) and is_nogroup(reply):
            await self.ensure_group()
            return []
        if isinstance(reply, Exception):
            raise reply
        return await self._delivered(reply)

    async def _delivered(self, reply: Any) -> list[Delivery]:
        entries: list[Entry] = list(reply[0][1]) if reply else []
        deliveries = [self._decode(mid, fields) for mid, fields in entries]
        return await self.fence(deliveries, resent_only=True)

    async def fence(self, deliveries: list[Delivery], *, resent_only: bool = False) -> list[Delivery]:
        """Acknowledge and delete (unrun) the deliveries whose phase already succeeded; returns the others.

        With ``resent_only``, only re-sent envelopes (attempt above 1) are checked: a first send has a twin only
        when the sweeper re-sent it, and a re-send's own copy carries the higher attempt.
        """
        checked = [d for d in deliveries if d.envelope is not None and (d.envelope.attempt > 1 or not resent_only)]
        if not checked:
            return deliveries
        async with self.redis.pipeline(transaction=False) as pipe:
            for d in checked:
                assert d.envelope is not None
                pipe.exists(done_marker(self.bot, d.envelope.phase_id))
            marked = await pipe.execute()
        skipped = {d.message_id for d, found in zip(checked, marked, strict=True) if found}
        if not skipped:
            return deliveries
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.xack(self.lane, LANE_GROUP, *skipped)
            pipe.xdel(self.lane, *skipped)
            await pipe.execute()
        self._count_fenced(len(skipped))
        return [d for d in deliveries if d.message_id not in skipped]

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
        kept = await self.fence([self._decode(mid, fields) for mid, fields in messages])
        if not kept:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for d in kept:
                pipe.xpending_range(self.lane, LANE_GROUP, min=d.message_id, max=d.message_id, count=1)
            pending = await pipe.execute()
        return [Delivery(d.message_id, d.envelope, int(p[0]["times_delivered"]) if p else 1)
                for d, p in zip(kept, pending, strict=True)]

    async def complete(self, done: Sequence[Entry]) -> None:
        """Publish encoded results, then acknowledge and delete the lane entries, in one round trip."""
        if not done:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            results = self._queue_complete(pipe, done)
            replies = await pipe.execute(raise_on_error=False)
        self._raise_unwritten(replies[:results])

    def _queue_complete(self, pipe: Pipeline, done: Sequence[Entry]) -> int:
        """Queue the results' XADDs, then the entries' XACK and XDEL, on ``pipe``; returns how many XADDs."""
        results = 0
        for _, fields in done:
            if fields is not None:
                pipe.xadd(self.out, fields)  # type: ignore[arg-type]
                results += 1
        ids = [mid for mid, _ in done]
        pipe.xack(self.lane, LANE_GROUP, *ids)
        pipe.xdel(self.lane, *ids)
        return results

    @staticmethod
    def _raise_unwritten(replies: Sequence[Any]) -> None:
        # A failed XADD must be retried; a failed ack only means the lane lost its group (Redis lost its
        # data), and the entries it would acknowledge are gone with it.
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply

    async def touch(self, message_ids: Sequence[bytes]) -> None:
        """Reset the idle time of entries still running here, so no live replica reclaims them."""
        await self.redis.xclaim(self.lane, LANE_GROUP, self.consumer, 0,
                                list[bytes | str | int | memoryview](message_ids), justid=True)

    async def heartbeat(self, ttl_s: float, info: dict[str, object]) -> None:
        await self.redis.set(heartbeat_key(self.bot, self.consumer), json.dumps(info), px=int(ttl_s * 1000))

    async def clear_heartbeat(self) -> None:
        await self.redis.delete(heartbeat_key(self.bot, self.consumer))

