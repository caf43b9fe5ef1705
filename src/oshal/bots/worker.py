"""One bot replica: reads its own lane, runs the harness, writes results to its own output stream.

Reads block in XREADGROUP. Finished results (XADD out + XACK + XDEL) go out with the next read, in the same round trip,
or, while the reader waits (a blocking read, or a full house), from a writer task, in batches.
A reclaim loop takes over messages a dead replica left pending (XAUTOCLAIM after an idle time) and turns
messages delivered too often into dead-letter results, so a poison message cannot crash replicas forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from dataclasses import dataclass

import structlog
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from oshal.bots.harnesses import Harness, HarnessError, Job
from oshal.bots.manifest import BotManifest
from oshal.bots.redis_retry import Backoff, RedisTrouble
from oshal.bots.tools import ToolClient
from oshal.logs import get_logger
from oshal.mesh.consumer import Delivery, LaneConsumer, ResultsNotWritten
from oshal.mesh.envelopes import Result
from oshal.mesh.redis import REDIS_DOWN

log = get_logger(__name__)


_LOOP_EXIT_S = 5.0


def _reraise_if_cancelled() -> None:
    """redis-py turns a cancellation that lands mid-command into a connection error; a retry loop that caught
    it would outlive its cancel (seen: workers that never stopped). Let the cancellation win."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    claim_idle_ms: int = 15_000
    max_deliveries: int = 3
    heartbeat_ttl_s: float = 10.0
    block_ms: int = 1_000
    drain_timeout_s: float = 20.0
    consumer_prefix: str = ""  # the start of this process's consumer names; default the host's name


class BotWorker:
    def __init__(self, manifest: BotManifest, redis: Redis, harness: Harness, options: WorkerOptions,
                 replica: int = 0, tools: ToolClient | None = None) -> None:
        self.manifest = manifest
        self.tools = tools
        self.harness = harness
        self.options = options
        self.consumer_name = f"{options.consumer_prefix or socket.gethostname()}-{os.getpid()}-{replica}"
        self.lane = LaneConsumer(redis, manifest.name, self.consumer_name)
        self._free = manifest.concurrency
        self._capacity = asyncio.Event()
        self._done: asyncio.Queue[tuple[bytes, dict[bytes, bytes] | None]] = asyncio.Queue()
        self._inflight: dict[bytes, float] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = asyncio.Event()  # stop reading new work
        self._closing = asyncio.Event()  # the side loops end (set once the drain is over)
        self.processed = 0
        # Redis down, loading or refusing the login: every loop backs off and retries; logged once per change.
        trouble = RedisTrouble(log)
        self._read_retry, self._flush_retry = Backoff(trouble, "read"), Backoff(trouble, "flush")
        self._claim_retry = Backoff(trouble, "reclaim")
        self._beat_retry = Backoff(trouble, "heartbeat", cap_s=1.0)  # back soon: replicas look dead without it

    # -- lifecycle -------------------------------------------------------------------------------
    async def run(self) -> None:
        structlog.contextvars.bind_contextvars(bot=self.manifest.name)
        log.info("worker started", consumer=self.consumer_name, concurrency=self.manifest.concurrency)
        writer = asyncio.create_task(self._writer())
        side = [asyncio.create_task(self._heartbeat_loop()), asyncio.create_task(self._reclaim_loop())]
        try:
            await self._reader()
            await self._drain()
        finally:
            # The loops end on _closing; the cancel only interrupts a command in flight. Both are needed: redis-py
            # can turn a cancel that lands mid-command into a connection error, which a retry loop would survive.
            self._closing.set()
            for task in (writer, *side):
                task.cancel()
            _, stuck = await asyncio.wait([writer, *side], timeout=_LOOP_EXIT_S)
            if stuck:
                log.warning("worker loops did not end in time; leaving them", loops=len(stuck))
            with contextlib.suppress(*REDIS_DOWN):
                await self.lane.clear_heartbeat()
            log.info("worker stopped", processed=self.processed)

    async def _drain(self) -> None:
        """Let everything taken from the lane finish and flush; past the deadline, leave it for reclaim."""
        async def finish() -> None:
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)
            await self._done.join()

        try:
            await asyncio.wait_for(finish(), self.options.drain_timeout_s)
        except TimeoutError:
            for task in self._tasks:
                task.cancel()
            log.warning("drain timed out; unfinished messages stay pending for another replica",
                        unfinished=len(self._inflight))

    def stop(self) -> None:
        self._stopping.set()
        self._capacity.set()

    # -- loops -------------------------------------------------------------------------------------
    async def _reader(self) -> None:
        while not self._stopping.is_set():
            if self._free <= 0:
                self._capacity.clear()
                await self._capacity.wait()
                continue
            await asyncio.sleep(0)  # jobs started from the last read that finish at once do so now: their results ride
            finished = self._take_finished()  # on this read instead of costing the writer a round trip of its own
            try:
                deliveries = await self.lane.complete_and_read(finished, self._free, self.options.block_ms)
                self._read_retry.succeeded()
            except (*REDIS_DOWN, ResultsNotWritten) as e:
                _reraise_if_cancelled()
                for entry in finished:  # not known to be written: the writer tries them again
                    self._done.put_nowait(entry)
                self._flushed(finished, written=False)
                await asyncio.sleep(self._read_retry.failed(e.__cause__ or e))
                continue
            self._flushed(finished)
            for delivery in deliveries:
                self._start(delivery)

    def _take_finished(self) -> list[tuple[bytes, dict[bytes, bytes] | None]]:
        finished = []
        while not self._done.empty():
            finished.append(self._done.get_nowait())
        return finished

    def _flushed(self, batch: list[tuple[bytes, dict[bytes, bytes] | None]], *, written: bool = True) -> None:
        """Account for ``batch``, taken from the queue of finished results: written (their slots are free again), or
        put back for the writer."""
        for mid, _ in batch:
            if written:
                self._inflight.pop(mid, None)
            self._done.task_done()
        if written and batch:
            self.processed += len(batch)
            self._free += len(batch)
            self._capacity.set()

    def _start(self, delivery: Delivery) -> None:
        self._free -= 1
        self._inflight[delivery.message_id] = time.monotonic()
        task = asyncio.create_task(self._process(delivery))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _process(self, delivery: Delivery) -> None:
        env = delivery.envelope
        if env is None:
            await self._done.put((delivery.message_id, None))
            return
        if delivery.deliveries > self.options.max_deliveries:
            error = (f"delivered {delivery.deliveries} times without completing "
                     f"(max_deliveries={self.options.max_deliveries}); the replicas that took it stopped "
                     "responding, most likely they crashed on it")
            log.warning("dead letter", ticket=env.ticket_id, deliveries=delivery.deliveries)
            await self._done.put((delivery.message_id, Result(
                env, "dead_letter", error=error, consumer=self.consumer_name,
                deliveries=delivery.deliveries).encode()))
            return
        started = time.time()
        job = Job(env.phase_id, env.attempt, env.input, self.tools.session(env) if self.tools else None,
                  delivery=delivery.deliveries)
        try:
            outcome = await self.harness.run(job)
            result = Result(env, "done", outcome.output, None, outcome.calls, started, time.time(),
                            self.consumer_name, delivery.deliveries)
        except HarnessError as e:
            # Model calls made before the failure were still made (and billed): record them too.
            result = Result(env, "failed", None, e.message, tuple(getattr(e, "calls", ())), started, time.time(),
                            self.consumer_name, delivery.deliveries)
        except Exception as e:  # a harness bug must not take the replica down with it
            log.exception("harness crashed", ticket=env.ticket_id)
            result = Result(env, "failed", None, f"harness error: {type(e).__name__}: {e}", (), started,
                            time.time(), self.consumer_name, delivery.deliveries)
        try:
            fields = result.encode()
        except (TypeError, ValueError) as e:  # the output is not JSON: fail the ticket, keep the replica
            fields = Result(env, "failed", None, f"the bot's output is not JSON-serializable: {e}", (), started,
                            time.time(), self.consumer_name, delivery.deliveries).encode()
        await self._done.put((delivery.message_id, fields))

    async def _pause(self, seconds: float) -> None:
        """Sleep, but wake at once when the worker closes."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), seconds)

    async def _writer(self) -> None:
        # No timed wake: an idle writer sleeps in get() until a result comes; run() cancels it when the worker closes
        # (the drain has flushed everything by then, or given up on it).
        while True:
            batch = [await self._done.get(), *self._take_finished()]
            while True:
                try:
                    await self.lane.complete(batch)
                    self._flush_retry.succeeded()
                    break
                except (*REDIS_DOWN, ResponseError) as e:
                    _reraise_if_cancelled()
                    if self._closing.is_set():
                        return  # unflushed results: their messages stay pending and are re-run elsewhere
                    await self._pause(self._flush_retry.failed(e))
            self._flushed(batch)

    async def _reclaim_loop(self) -> None:
        interval = max(self.options.claim_idle_ms / 2000, 0.05)
        while not self._closing.is_set():
            await self._pause(interval)
            if self._stopping.is_set() or self._free <= 0:
                continue
            try:
                claimed = await self.lane.claim(self.options.claim_idle_ms, self._free)
                self._claim_retry.succeeded()
            except (*REDIS_DOWN, ResponseError) as e:
                _reraise_if_cancelled()
                await self._pause(self._claim_retry.failed(e))
                continue
            for delivery in claimed:
                if delivery.message_id in self._inflight:
                    continue  # our own slow job; the heartbeat loop keeps it from looking idle
                log.info("reclaimed", message_id=delivery.message_id.decode(), deliveries=delivery.deliveries)
                self._start(delivery)

    async def _heartbeat_loop(self) -> None:
        interval = min(self.options.heartbeat_ttl_s / 3, self.options.claim_idle_ms / 4000)
        started = time.time()
        while not self._closing.is_set():
            try:
                await self.lane.heartbeat(self.options.heartbeat_ttl_s, {
                    "consumer": self.consumer_name, "pid": os.getpid(), "started": started,
                    "inflight": len(self._inflight), "processed": self.processed, "fenced": self.lane.fenced,
                })
                await self._touch_long_jobs()
                self._beat_retry.succeeded()
            except (*REDIS_DOWN, ResponseError) as e:  # e.g. NOGROUP after Redis lost its data: keep beating
                _reraise_if_cancelled()
                await self._pause(self._beat_retry.failed(e))
                continue  # beat again after the backoff alone: an expired heartbeat reads as a dead replica
            await self._pause(interval)

    async def _touch_long_jobs(self) -> None:
        """Reset the idle time of jobs still running here so no live replica reclaims them."""
        horizon = time.monotonic() - self.options.claim_idle_ms / 2000
        long_running = [mid for mid, since in self._inflight.items() if since < horizon]
        if long_running:
            await self.lane.touch(long_running)
