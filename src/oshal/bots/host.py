"""The node host: runs one bot (one process per bot, as in production) or a whole fleet in one process.

Each bot connects with its own Redis ACL user, so even co-hosted bots cannot read each other's lanes.
SIGTERM/SIGINT stop reading, let in-flight jobs finish, flush their results and exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from redis.asyncio import Redis

from oshal.bots.harnesses import Harness, build_harness
from oshal.bots.manifest import BotManifest
from oshal.bots.tools import ToolClient
from oshal.bots.worker import BotWorker, WorkerOptions
from oshal.errors import ConfigError, Unavailable
from oshal.logs import get_logger
from oshal.mesh.redis import connect

log = get_logger(__name__)


def read_credentials(path: Path) -> dict[str, str]:
    """``{bot: redis_url}`` written by ``oshal up`` with mode 0600; each URL logs in as that bot's ACL user."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ConfigError(f"cannot read bot credentials {path}: {e}",
                          hint="start nodes through `oshal up`, or pass --credentials") from e
    if not isinstance(data, dict):
        raise ConfigError(f"bot credentials {path} must map bot names to Redis URLs")
    return {str(k): str(v) for k, v in data.items()}


def read_bot_tokens(path: Path) -> dict[str, str]:
    """``{bot: token}`` for the tool gateway, written by ``oshal up`` next to the Redis credentials."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ConfigError(f"cannot read bot tokens {path}: {e}", hint="start nodes through `oshal up`") from e
    return {str(k): str(v) for k, v in data.items()}


def read_node_credentials(path: Path) -> tuple[dict[str, str], dict[str, str]]:
    """The node's own file from ``oshal up``: ``{"redis": {bot: url}, "gateway_tokens": {bot: token}}``."""
    try:
        data = json.loads(path.read_text())
        redis, tokens = data["redis"], data["gateway_tokens"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ConfigError(f"cannot read the node's credentials {path}: {e}",
                          hint="start nodes through `oshal up`, which writes this file") from e
    if not isinstance(redis, dict) or not isinstance(tokens, dict):
        raise ConfigError(f"the node's credentials {path} must map bot names to Redis URLs and gateway tokens")
    return {str(k): str(v) for k, v in redis.items()}, {str(k): str(v) for k, v in tokens.items()}


class Liveness:
    """A file the node host rewrites while its event loop runs, for a container's liveness probe: a loop that is stuck
    (or a process that is gone) stops rewriting it. Redis being down does not stop it: a restart would not help."""

    def __init__(self, path: Path, interval_s: float) -> None:
        self.path = path
        self.interval_s = interval_s

    def write(self, bots: list[str], workers: int) -> None:
        scratch = self.path.with_name(f".{self.path.name}.{os.getpid()}")
        scratch.write_text(json.dumps({"pid": os.getpid(), "at": time.time(), "bots": bots, "workers": workers}))
        scratch.replace(self.path)  # whole or not at all: a probe never reads half a file

    async def run(self, bots: list[str], workers: int) -> None:
        try:
            while True:
                await asyncio.to_thread(self.write, bots, workers)
                await asyncio.sleep(self.interval_s)
        finally:
            with contextlib.suppress(OSError):
                self.path.unlink()

    @staticmethod
    def check(path: Path, max_age_s: float) -> NodeAlive:
        """What the node host last wrote, if it wrote it within ``max_age_s``; else Unavailable saying why."""
        try:
            state = json.loads(path.read_text())
            alive = NodeAlive(int(state["pid"]), [str(b) for b in state["bots"]], int(state["workers"]),
                              time.time() - float(state["at"]))
        except FileNotFoundError:
            raise Unavailable(f"no node host is alive here: {path} does not exist",
                              hint="the node has not started yet, or it stopped") from None
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise Unavailable(f"cannot read the node's liveness file {path}: {e}") from e
        if alive.age_s > max_age_s:
            raise Unavailable(f"the node host is stuck: its liveness file is {alive.age_s:.0f}s old (at most "
                              f"{max_age_s:.0f}s)", hint="its event loop stopped running; restart it")
        return alive


@dataclass(frozen=True, slots=True)
class NodeAlive:
    pid: int
    bots: list[str]
    workers: int
    age_s: float


class NodeHost:
    def __init__(self, fleet: dict[str, BotManifest], redis_urls: dict[str, str], options: WorkerOptions,
                 gateway_url: str | None = None, bot_tokens: dict[str, str] | None = None,
                 liveness: Liveness | None = None) -> None:
        missing = [name for name in fleet if name not in redis_urls]
        if missing:
            raise ConfigError(f"no Redis credentials for bot(s) {', '.join(missing)}",
                              hint="each bot needs its own ACL user; re-run `oshal up` to provision them")
        self.fleet = fleet
        self.redis_urls = redis_urls
        self.options = options
        self.gateway_url = gateway_url
        self.bot_tokens = bot_tokens or {}
        self.liveness = liveness
        self.workers: list[BotWorker] = []
        self._tool_clients: list[ToolClient] = []
        self._clients: list[Redis] = []
        self._harnesses: list[Harness] = []

    async def run(self, stop: asyncio.Event) -> None:
        for name, manifest in self.fleet.items():
            # Per replica: a blocking reader, a writer, heartbeats and reclaims may each hold a connection.
            client = connect(self.redis_urls[name], max_connections=8 * manifest.replicas)
            harness = build_harness(manifest)
            self._clients.append(client)
            self._harnesses.append(harness)
            tools = None
            if self.gateway_url and name in self.bot_tokens:
                tools = ToolClient(self.gateway_url, self.bot_tokens[name])
                self._tool_clients.append(tools)
            for replica in range(manifest.replicas):
                self.workers.append(BotWorker(manifest, client, harness, self.options, replica, tools))
        log.info("node host running", bots=list(self.fleet), workers=len(self.workers))
        runs = [asyncio.create_task(w.run()) for w in self.workers]
        alive = asyncio.create_task(self.liveness.run(list(self.fleet), len(self.workers))) if self.liveness else None
        stopper = asyncio.create_task(stop.wait())
        await asyncio.wait([stopper, *runs], return_when=asyncio.FIRST_COMPLETED)
        for worker in self.workers:
            worker.stop()
        results = await asyncio.gather(*runs, return_exceptions=True)
        stopper.cancel()
        if alive:
            alive.cancel()
            await asyncio.gather(alive, return_exceptions=True)
        for harness in self._harnesses:
            await harness.aclose()
        for client in self._clients:
            await client.aclose()
        for tool_client in self._tool_clients:
            await tool_client.aclose()
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError):
                raise result


_STOP_GRACE_S = 10.0


async def _exit_if_stuck(stop: asyncio.Event, deadline_s: float) -> None:
    """A stop that has not finished well after the drain deadline: say what it waits on, then exit anyway.

    Unfinished messages stay pending in their lanes, so another replica takes them over; nothing is lost.
    """
    await stop.wait()
    await asyncio.sleep(deadline_s)
    current = asyncio.current_task()
    stuck = [task for task in asyncio.all_tasks() if task is not current and not task.done()]
    for task in stuck:
        frames = [f"{f.f_code.co_filename}:{f.f_lineno} {f.f_code.co_name}" for f in task.get_stack(limit=8)]
        log.error("node host stop is stuck", task=task.get_name(), coro=repr(task.get_coro()), stack=frames)
    log.error("node host did not stop in time; exiting", waited_s=deadline_s, tasks=len(stuck))
    os._exit(70)


def run_host(fleet: dict[str, BotManifest], redis_urls: dict[str, str], options: WorkerOptions,
             gateway_url: str | None = None, bot_tokens: dict[str, str] | None = None,
             liveness: Liveness | None = None) -> None:
    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        watchdog = asyncio.create_task(_exit_if_stuck(stop, options.drain_timeout_s + _STOP_GRACE_S))
        try:
            await NodeHost(fleet, redis_urls, options, gateway_url, bot_tokens, liveness).run(stop)
        finally:
            watchdog.cancel()

    try:
        import uvloop
    except ImportError:  # optional: the standard loop works, uvloop is just faster
        asyncio.run(main())
    else:
        uvloop.run(main())
