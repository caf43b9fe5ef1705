"""The same no-op task in each peer task queue (dramatiq, celery, arq), for bench/peers.py.

Their worker processes import this module by name (``dramatiq peer_apps``, ``celery -A peer_apps``,
``arq peer_apps.ArqSettings``); the Redis they use is given by BENCH_PEER_REDIS_SOCKET (a unix socket) or
BENCH_PEER_REDIS_PORT (TCP on loopback), set by bench/peers.py before it starts them.
"""

from __future__ import annotations

import os
from typing import Any

SOCKET = os.environ.get("BENCH_PEER_REDIS_SOCKET", "")
PORT = int(os.environ.get("BENCH_PEER_REDIS_PORT", "0"))
POLL_S = 0.001  # arq polls its queue and its results; 1 ms, its fastest sensible setting


def redis_url(db: int) -> str:
    return f"unix://{SOCKET}?db={db}" if SOCKET else f"redis://127.0.0.1:{PORT}/{db}"


def celery_url(db: int) -> str:
    return f"redis+socket://{SOCKET}?virtual_host={db}" if SOCKET else f"redis://127.0.0.1:{PORT}/{db}"


# -- dramatiq: a broker set at import, as its worker CLI expects --------------------------------------------
import dramatiq  # noqa: E402
from dramatiq.brokers.redis import RedisBroker  # noqa: E402

dramatiq_broker = (RedisBroker(unix_socket_path=SOCKET, db=1) if SOCKET
                   else RedisBroker(host="127.0.0.1", port=PORT, db=1))
dramatiq.set_broker(dramatiq_broker)


@dramatiq.actor(queue_name="noop", max_retries=0)
def dramatiq_noop(n: int) -> None:
    return None


# -- celery: solo pool, results in Redis (a round trip needs them) ------------------------------------------
from celery import Celery  # noqa: E402

celery_app = Celery("peer_apps", broker=celery_url(2), backend=celery_url(3))
celery_app.conf.update(task_serializer="json", result_serializer="json", accept_content=["json"],
                       worker_prefetch_multiplier=1, broker_connection_retry_on_startup=True,
                       worker_hijack_root_logger=False, result_expires=600)


@celery_app.task(name="noop")
def celery_noop(n: int) -> int:
    return n


# -- arq ------------------------------------------------------------------------------------------------
from arq.connections import RedisSettings  # noqa: E402


def arq_redis() -> RedisSettings:
    if SOCKET:
        return RedisSettings(unix_socket_path=SOCKET, database=4)
    return RedisSettings(host="127.0.0.1", port=PORT, database=4)


async def arq_noop(ctx: dict[str, Any], n: int) -> int:
    return n


class ArqSettings:
    functions = [arq_noop]
    redis_settings = arq_redis()
    poll_delay = POLL_S
    max_jobs = 10
    keep_result = 600
