"""A bot's side of its lane, as the bot's own ACL user against a real Redis: finished results go out with the next
read, in one round trip, written before their entries are acknowledged; a refused result is reported as such, and
what the same round trip read stays pending for a reclaim."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from conftest import Core
from oshal.mesh.consumer import LaneConsumer, ResultsNotWritten
from oshal.mesh.envelopes import Envelope, Result
from oshal.mesh.redis import connect
from oshal.mesh.redis_keys import LANE_GROUP, lane_stream, out_stream

BOT = "unit-b"


def _envelope(n: int) -> Envelope:
    return Envelope(str(uuid.uuid4()), str(uuid.uuid4()), 1, str(uuid.uuid4()), BOT, {"n": n})


async def _pending(core: Core) -> list[dict[str, Any]]:
    return list(await core.redis.xpending_range(lane_stream(BOT), LANE_GROUP, "-", "+", 100))


async def test_finished_results_go_out_with_the_next_read(core: Core) -> None:
    first, second = _envelope(1), _envelope(2)
    await core.redis.xadd(lane_stream(BOT), first.encode())  # type: ignore[arg-type]
    redis = connect(core.bot_redis_url(BOT))
    try:
        lane = LaneConsumer(redis, BOT, "replica-1")
        [delivery] = await lane.read(10, 100)
        await core.redis.xadd(lane_stream(BOT), second.encode())  # type: ignore[arg-type]
        result = Result(first, "done", {"n": 1}, consumer="replica-1").encode()
        [following] = await lane.complete_and_read([(delivery.message_id, result)], 10, 100)
        # Nothing finished: a plain read, which blocks its time and finds nothing new.
        assert await lane.complete_and_read([], 10, 50) == []
    finally:
        await redis.aclose()
    assert following.envelope == second
    [(_, fields)] = await core.redis.xrange(out_stream(BOT))
    assert Result.decode(fields).envelope.phase_id == first.phase_id
    # The first entry is acknowledged and deleted; the second is delivered and pending, as a read leaves it.
    assert [mid for mid, _ in await core.redis.xrange(lane_stream(BOT))] == [following.message_id]
    assert [p["message_id"] for p in await _pending(core)] == [following.message_id]


async def test_an_undecodable_entry_is_acknowledged_without_a_result(core: Core) -> None:
    await core.redis.xadd(lane_stream(BOT), {b"junk": b"1"})
    redis = connect(core.bot_redis_url(BOT))
    try:
        lane = LaneConsumer(redis, BOT, "replica-1")
        [delivery] = await lane.read(10, 100)
        assert delivery.envelope is None
        assert await lane.complete_and_read([(delivery.message_id, None)], 10, 50) == []
    finally:
        await redis.aclose()
    assert await core.redis.xlen(lane_stream(BOT)) == 0
    assert await core.redis.xlen(out_stream(BOT)) == 0  # nothing was written for it


async def test_a_refused_result_is_reported_and_what_was_read_stays_pending(core: Core) -> None:
    first, second = _envelope(1), _envelope(2)
    await core.redis.xadd(lane_stream(BOT), first.encode())  # type: ignore[arg-type]
    redis = connect(core.bot_redis_url(BOT))
    try:
        lane = LaneConsumer(redis, BOT, "replica-1")
        [delivery] = await lane.read(10, 100)
        await core.redis.xadd(lane_stream(BOT), second.encode())  # type: ignore[arg-type]
        await core.redis.set(out_stream(BOT), "not a stream")  # every XADD to it is refused (WRONGTYPE)
        result = Result(first, "done", {"n": 1}, consumer="replica-1").encode()
        with pytest.raises(ResultsNotWritten, match="WRONGTYPE") as refused:
            await lane.complete_and_read([(delivery.message_id, result)], 10, 100)
    finally:
        await redis.aclose()
    assert "WRONGTYPE" in str(refused.value.__cause__)
    # The second entry was delivered by the same round trip: pending under this consumer, so a reclaim finds it.
    pending = await _pending(core)
    assert [(p["message_id"], p["consumer"]) for p in pending if p["message_id"] != delivery.message_id] == [
        (mid, b"replica-1") for mid, fields in await core.redis.xrange(lane_stream(BOT))
        if Envelope.decode(fields).phase_id == second.phase_id]
