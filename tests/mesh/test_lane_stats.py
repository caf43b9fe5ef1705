"""The fleet's lane state read in one go (the console's overview and /v1/bots) agrees with each lane's own reading:
length, entries delivered but not acknowledged, lag, and live replicas by heartbeat, on real Redis."""

from __future__ import annotations

import pytest
from redis.exceptions import ResponseError

from conftest import Core
from oshal.mesh import lanes
from oshal.mesh.redis_keys import LANE_GROUP, heartbeat_key, lane_stream


async def test_the_fleets_stats_agree_with_each_lanes_own(core: Core) -> None:
    for n in range(3):
        await core.redis.xadd(lane_stream("unit-a"), {"n": str(n)})
    await core.redis.xreadgroup(LANE_GROUP, "unit-a-0", {lane_stream("unit-a"): ">"}, count=1)
    for bot, replica in (("unit-a", "unit-a-0"), ("unit-a", "unit-a-1"), ("unit-b", "unit-b-0"),
                         ("unit-ab", "unit-ab-0")):  # a name that unit-a's is the start of counts apart
        await core.redis.set(heartbeat_key(bot, replica), "1", ex=30)
    bots = ["unit-a", "unit-b", "never-ran"]  # the last has neither a lane nor its group

    every = await lanes.fleet_stats(core.redis, bots)

    assert every == {bot: await lanes.lane_stats(core.redis, bot) for bot in bots}
    assert every["unit-a"] == lanes.LaneStats(length=3, pending=1, lag=2, replicas=2)
    assert every["unit-b"] == lanes.LaneStats(length=0, pending=0, lag=0, replicas=1)
    assert every["never-ran"] == lanes.LaneStats(length=0, pending=0, lag=0, replicas=0)


async def test_a_key_that_is_not_a_lane_is_an_error_not_an_empty_lane(core: Core) -> None:
    await core.redis.set(lane_stream("unit-b"), "not a stream")

    with pytest.raises(ResponseError, match="WRONGTYPE"):
        await lanes.fleet_stats(core.redis, ["unit-a", "unit-b"])
