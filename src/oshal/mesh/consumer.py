"""A bot's side of its lane: blocking reads, reclaiming from dead replicas, results out, acks, heartbeats."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from oshal.logs import get_logger
from oshal.mesh.envelopes import Envelope
from oshal.mesh.keys import LANE_GROUP, heartbeat_key, lane_stream, out_stream
from oshal.mesh.redis import is_nogroup

log = get_logger(__name__)


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
        """Block until new messages arrive on this bot's lane (never polls)."""
        try:
            reply: Any = await self.redis.xreadgroup(
                LANE_GROUP, self.consumer, {self.lane: ">"}, count=count, block=block_ms
            )
        except ResponseError as e:
            if not is_nogroup(e):
                raise
            await self.ensure_group()
            return []
        if not reply:
            return []
        return [self._decode(mid, fields) for mid, fields in reply[0][1]]

    async def claim(self, min_idle_ms: int, count: int, max_scans: int = 64) -> list[Delivery]:
        """Take over messages another replica received but never acknowledged (it died).

        Walks the whole pending list with XAUTOCLAIM's cursor, so idle entries behind busy ones are found.
        """
        messages: list[tuple[bytes, dict[bytes, bytes] | None]] = []
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
