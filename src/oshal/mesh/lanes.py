"""The control plane's side of the lanes: consumer groups, what is in flight, done markers, dead letters and lane
statistics. Appending to lanes is the dispatcher's (:mod:`oshal.mesh.dispatcher`)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import ResponseError

from oshal.mesh.envelopes import Envelope, phase_of
from oshal.mesh.redis_keys import (
    COLLECTOR_GROUP,
    LANE_GROUP,
    dead_stream,
    done_marker,
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


_SCAN_CHUNK = 1000


async def phases_in_flight(redis: Redis, bot: str) -> set[str]:
    """Phases of ``bot`` whose envelope is still in its lane, or whose result still waits in its output stream.

    In the lane: unread by the bots' group, or delivered and pending (not acknowledged). In the output stream:
    unread by the collector, or read and not yet committed. A phase in neither has no copy anywhere a bot or
    the collector will find it, so re-sending it races nothing. The lane is read before the output stream:
    a bot appends its result before it acknowledges its envelope, so a phase moving from one to the other while
    they are read is seen in at least one of them (or it is committed, which the re-send's own update sees).
    """
    phases = await _live_phases(redis, lane_stream(bot), LANE_GROUP)
    return phases | await _live_phases(redis, out_stream(bot), COLLECTOR_GROUP)


def _stream_id(value: bytes | str) -> tuple[int, int]:
    text = value.decode() if isinstance(value, bytes) else value
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


async def _live_phases(redis: Redis, stream: str, group: str) -> set[str]:
    """Phases of the entries of ``stream`` that ``group`` has not read yet, or has read and not acknowledged.

    Bots and the collector delete what they acknowledge, so a stream is short unless work is queued on it. It
    is read in chunks, each entry's phase taken from its own field (no JSON decoding).
    """
    try:
        groups: Any = await redis.xinfo_groups(stream)
    except ResponseError as e:
        if "no such key" not in str(e).lower():
            raise  # BUSY, OOM, NOPERM: not knowing what is in flight must not read as "nothing is" (re-sends)
        return set()  # no such stream: nothing is in flight on it
    info = next((g for g in groups if g["name"] in (group, group.encode())), None)
    last_read = _stream_id(info["last-delivered-id"]) if info else (0, 0)  # no group yet: nothing was read
    pending: set[bytes] = set()
    if info and int(info["pending"]):
        cursor = "-"
        while True:
            page: Any = await redis.xpending_range(stream, group, min=cursor, max="+", count=_SCAN_CHUNK)
            pending.update(p["message_id"] for p in page)
            if len(page) < _SCAN_CHUNK:
                break
            cursor = "(" + page[-1]["message_id"].decode()
    phases: set[str] = set()
    cursor = "-"
    while True:
        chunk: Any = await redis.xrange(stream, min=cursor, count=_SCAN_CHUNK)
        for mid, fields in chunk:
            if fields and (mid in pending or _stream_id(mid) > last_read):
                phase = phase_of(fields)
                if phase is not None:
                    phases.add(phase)
        if len(chunk) < _SCAN_CHUNK:
            return phases
        cursor = "(" + chunk[-1][0].decode()


def queue_done_markers(pipe: Pipeline, done: Iterable[tuple[str, str]], ttl_s: int) -> None:
    """Add to ``pipe`` the done marker of each (bot, phase): workers then skip any copy still in the lane."""
    for bot, phase in done:
        pipe.set(done_marker(bot, phase), 1, ex=ttl_s)


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


async def fleet_stats(redis: Redis, bots: Sequence[str]) -> dict[str, LaneStats]:
    """:func:`lane_stats` of every bot in two round trips whatever the fleet's size: the lanes' lengths and pending
    counts in one pipeline, then one scan of the keyspace for heartbeats (not a scan per bot)."""
    async with redis.pipeline(transaction=False) as pipe:
        for bot in bots:
            pipe.xlen(lane_stream(bot))
            pipe.xpending(lane_stream(bot), LANE_GROUP)
        answers = await pipe.execute(raise_on_error=False)
    live = await live_replicas(redis)
    stats = {}
    for bot, length, summary in zip(bots, answers[::2], answers[1::2], strict=True):
        if isinstance(length, Exception):
            raise length
        if isinstance(summary, Exception) and not isinstance(summary, ResponseError):
            raise summary
        pending = 0 if isinstance(summary, ResponseError) else int(summary["pending"])  # no group yet
        stats[bot] = LaneStats(length=int(length), pending=pending, lag=max(int(length) - pending, 0),
                               replicas=live.get(bot, 0))
    return stats


async def live_replicas(redis: Redis) -> dict[str, int]:
    """Replicas with a live heartbeat, per bot, for every bot that beats (declared or not)."""
    found: dict[str, int] = {}
    async for key in redis.scan_iter(match=heartbeat_pattern("*"), count=1000):
        bot = (key.decode() if isinstance(key, bytes) else str(key)).split(":")[2]
        found[bot] = found.get(bot, 0) + 1
    return found


async def consumed(redis: Redis, bots: Iterable[str]) -> set[str]:
    """The bots whose lane has the bots' consumer group (a lane without it is read by nobody)."""
    found = set()
    for bot in bots:
        try:
            groups = await redis.xinfo_groups(lane_stream(bot))
        except ResponseError:  # no such stream yet
            continue
        if any(g["name"] in (LANE_GROUP, LANE_GROUP.encode()) for g in groups):
            found.add(bot)
    return found


@dataclass(frozen=True, slots=True)
class Drift:
    """One difference between the declared fleet and the live one."""

    kind: str  # "absent": declared, none running; "undeclared": runs without a manifest; "unconsumed": no group
    bot: str
    text: str


def fleet_drift(declared: dict[str, int], live: dict[str, int], consumed: set[str]) -> list[Drift]:
    """Declared bots (name -> desired replicas) against live ones (name -> replicas with a heartbeat) and the lanes
    that have the bots' consumer group: every difference, sorted."""
    found = [Drift("absent", name, f"bot {name} is declared with {desired} replica(s) but none is running")
             for name, desired in sorted(declared.items()) if desired and not live.get(name)]
    found += [Drift("undeclared", name, f"bot {name} runs but is not declared in the fleet")
              for name in sorted(set(live) - set(declared)) if live[name]]
    found += [Drift("unconsumed", name, f"lane of bot {name} has no consumer group")
              for name in sorted(set(declared) - consumed)]
    return found
