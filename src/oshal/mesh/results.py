"""The collector's side of the output streams: group reads across every bot's stream, claims of what a dead
collector left unacknowledged, and acknowledgements (with done markers) after the results are committed."""

from __future__ import annotations

import socket
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from oshal.mesh import lanes
from oshal.mesh.envelopes import Envelope
from oshal.mesh.redis_keys import COLLECTOR_GROUP, out_stream

Entry = tuple[str, bytes, dict[bytes, bytes] | None]  # (stream, message id, fields; None once deleted)


class ResultStreams:
    def __init__(self, redis: Redis, consumer: str | None = None) -> None:
        self.redis = redis
        self.consumer = consumer or f"collector-{socket.gethostname()}"  # one per host: a restart reclaims its own
        self._read_bots: frozenset[str] | None = None
        self._read_streams: tuple[bytes, ...] = ()  # the streams of _read_bots, sorted, as the command sends them
        self._stream_names: dict[bytes, str] = {}

    def _streams_of(self, bots: Iterable[str]) -> tuple[bytes, ...]:
        """The output streams of ``bots``, sorted; built again only when the set changes (the collector passes the
        registry's frozenset, the same object until the registry refreshes)."""
        if bots is not self._read_bots:
            streams = tuple(out_stream(bot).encode() for bot in sorted(bots))
            if streams != self._read_streams:
                self._read_streams = streams
                self._stream_names = {stream: stream.decode() for stream in streams}
            self._read_bots = bots if isinstance(bots, frozenset) else None  # a mutable set may change in place
        return self._read_streams

    async def ensure_groups(self, bots: Iterable[str]) -> None:
        await lanes.ensure_groups(self.redis, bots)

    async def read(self, bots: Iterable[str], count: int, block_ms: int | None, start: str = ">") -> list[Entry]:
        """Up to ``count`` entries from the bots' output streams in one XREADGROUP; ``start`` "0" re-reads what this
        consumer read and never acknowledged. Blocks up to ``block_ms`` when there are none (None: no blocking)."""
        streams = self._streams_of(bots)
        if not streams:
            raise ValueError("an XREADGROUP needs at least one bot's output stream; none was given")
        # The command as redis-py's xreadgroup() builds it (its reply is parsed the same way), without rebuilding the
        # stream list each read: over the demo fleet's 27 streams that is a fifth of an empty read's round trip.
        options = ("COUNT", count) if block_ms is None else ("COUNT", count, "BLOCK", block_ms)
        reply: Any = await self.redis.execute_command(  # type: ignore[no-untyped-call]
            "XREADGROUP", "GROUP", COLLECTOR_GROUP, self.consumer, *options, "STREAMS", *streams,
            *(start,) * len(streams))
        names = self._stream_names
        return [(names.get(stream) or stream.decode(), mid, fields)
                for stream, messages in reply or () for mid, fields in messages]

    async def claim(self, bot: str, min_idle_ms: int, count: int) -> list[Entry]:
        """Take over entries of ``bot``'s output stream that another collector read and left idle (it died)."""
        stream = out_stream(bot)
        reply: Any = await self.redis.xautoclaim(stream, COLLECTOR_GROUP, self.consumer, min_idle_ms,
                                                 start_id="0-0", count=count)
        return [(stream, mid, fields) for mid, fields in reply[1] if mid]

    async def acknowledge(self, entries: Iterable[Entry], done: Iterable[tuple[str, str]], done_ttl_s: int,
                          also: Callable[[Pipeline], object] | None = None) -> None:
        """After the commit, in one round trip: whatever ``also`` adds to the pipeline (first: the publication that
        wakes waiters elsewhere does not wait behind the rest), then set the done markers of (bot, phase), and
        acknowledge and delete the entries. Errors are ignored: the results are committed already, and a group Redis
        lost took its entries with it."""
        by_stream: dict[str, list[bytes]] = defaultdict(list)
        for stream, mid, _ in entries:
            by_stream[stream].append(mid)
        async with self.redis.pipeline(transaction=False) as pipe:
            if also is not None:
                also(pipe)
            lanes.queue_done_markers(pipe, done, done_ttl_s)  # before the ack: a retry re-sets them
            for stream, ids in by_stream.items():
                pipe.xack(stream, COLLECTOR_GROUP, *ids)
                pipe.xdel(stream, *ids)
            await pipe.execute(raise_on_error=False)

    async def dead_letter(self, envelope: Envelope, reason: str) -> None:
        await lanes.dead_letter(self.redis, envelope, reason)
