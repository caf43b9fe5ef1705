"""A waiter in a control-plane process without a collector (another replica) is handed its finished ticket by the
platform's collector over its own Redis channel, as the ticket reads; bots never see that channel."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from conftest import Platform
from oshal.control.plane import Components, ControlPlane
from oshal.control.tickets import TicketRequest
from oshal.mesh.redis_keys import waiter_channel


async def test_a_replica_without_a_collector_is_handed_the_row_its_waiter_waits_for(platform: Platform) -> None:
    replica = ControlPlane(platform.settings, platform.engines.api_url, platform.engines.redis_url,
                           platform.engines.dispatch_key, Components(collector=False, sweeper=False))
    await replica.start()
    listener = Redis.from_url(platform.engines.redis_url)
    pubsub = listener.pubsub()
    try:
        assert replica.events.token
        await pubsub.subscribe(waiter_channel(replica.events.token))
        who = await replica.auth.authenticate(platform.admin_key)
        for n in range(3):
            created, row = await replica.tickets.create_and_wait(who.tenant_id, who.key_id,
                                                                  TicketRequest("echo", {"n": n}), 30)
            assert row["status"] == "done" and row["id"] == created.id
            assert row == await replica.tickets.get(who.tenant_id, created.id)  # exactly what a read returns
            handed = await _next_message(pubsub)
            assert [[str(created.id), "done"]] == handed["c"] and list(handed["r"]) == [str(created.id)]
    finally:
        await pubsub.aclose()
        await listener.aclose()
        await replica.stop()


async def _next_message(pubsub: PubSub) -> dict[str, Any]:
    async def first() -> dict[str, Any]:
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
            if message is not None:
                return dict(json.loads(message["data"]))

    return await asyncio.wait_for(first(), 30)
