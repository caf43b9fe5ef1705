"""The sweeper re-sends dispatched phases that no bot and no collector will ever see again.

It covers a crash between the ticket commit and the lane append, a Redis that lost its data, and lanes
whose messages vanished. A phase is re-sent only when it made no progress for ``stale_after_s`` *and* Redis
holds no copy of it: its envelope is neither unread nor pending in its lane, and no result of it waits in its
output stream. That check reads each affected lane once per pass, so a phase waiting behind a long backlog (or
running on a slow bot) is left alone however old it is, and a re-send never races the original.

Re-sends are not failures and never count against a phase: a phase dead-letters only when its deliveries
failed (the replicas that took it stopped answering, counted by the lane and decided by the workers).
Re-sends are batched: a page of candidates per query, one update per tenant and chunk, one lane append
(a single script) per chunk, so recovering a flushed Redis takes ``stale_after_s`` plus seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any
from uuid import UUID

from redis.asyncio import Redis
from redis.exceptions import RedisError

from oshal.control import rollups
from oshal.control.budgets import BudgetService
from oshal.control.metrics import PHASES_REDRIVEN, STALE_IN_FLIGHT
from oshal.logs import get_logger
from oshal.mesh import lanes
from oshal.mesh.dispatcher import Dispatcher
from oshal.security.killswitch import KillSwitches
from oshal.store import access
from oshal.store import tickets as repo
from oshal.store.db import Database
from oshal.workflows.runner import WorkflowRunner

log = get_logger(__name__)
_ROLLUP_EVERY_S = 3600.0
_START = (dt.datetime(1970, 1, 1, tzinfo=dt.UTC), UUID(int=0))
_RESENDS_WORTH_A_WARNING = 3  # a phase whose copies keep vanishing (results refused by the collector?)


class Sweeper:
    def __init__(self, db: Database, redis: Redis, dispatcher: Dispatcher, bots: Callable[[], frozenset[str]], *,
                 runner: WorkflowRunner, kill: KillSwitches, budgets: BudgetService, stale_after_s: float,
                 interval_s: float, batch: int = 500, page: int = 5000, max_per_pass: int = 100_000,
                 chunk: int = 1000) -> None:
        self.runner = runner
        self.kill = kill
        self.budgets = budgets
        self._rolled_up_at = 0.0
        self.db = db
        self.redis = redis
        self.dispatcher = dispatcher
        self.bots = bots
        self.stale_after_s = stale_after_s
        self.interval_s = interval_s
        self.batch = batch
        self.page = page
        self.max_per_pass = max_per_pass
        self.chunk = chunk

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.sweep()
            except (RedisError, OSError) as e:
                log.warning("sweep incomplete: Redis unavailable", error=str(e))
            except Exception:
                log.exception("sweep failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval_s)

    async def sweep(self) -> int:
        """One pass; returns how many phases were re-sent or dispatched, and runs advanced."""
        await lanes.ensure_groups(self.redis, self.bots())  # recreates groups after Redis lost its data
        await self.kill.refresh()  # and the kill-switch mirror
        moved = await self.redrive_lost()
        moved += await self.dispatcher.resume_held(self.kill.blocks)
        # What crashed calls still hold goes back to their budgets, and paused work resumes into the room.
        moved += await self.budgets.sweep()
        if time.monotonic() - self._rolled_up_at >= _ROLLUP_EVERY_S:
            self._rolled_up_at = time.monotonic()
            await rollups.advance(self.db)  # closed days into the daily counts and totals, before the retention's
            rolled = await self.budgets.roll_up()
            if rolled:
                log.info("ledger rows rolled up into daily totals", rows=rolled)
        return moved + await self.advance_stalled_runs()

    async def redrive_lost(self) -> int:
        """Re-send every stale dispatched phase of which Redis holds no copy; returns how many were sent.

        Postgres is read before Redis: a phase that finishes meanwhile was either seen in flight or is refused
        by the re-send's own update (it re-checks that the phase is still dispatched and still stale).
        """
        # A held bot's phases wait for its release; they are not lost.
        stale = [row for row in await self._stale() if self.kill.blocks(str(row["bot"])) is None]
        in_flight: dict[str, set[str]] = {}
        for bot in sorted({str(row["bot"]) for row in stale}):
            in_flight[bot] = await lanes.phases_in_flight(self.redis, bot)
        lost: dict[UUID, list[UUID]] = defaultdict(list)
        for row in stale:
            if str(row["phase_id"]) not in in_flight[str(row["bot"])]:
                lost[row["tenant_id"]].append(row["phase_id"])
        STALE_IN_FLIGHT.set(len(stale) - sum(len(phases) for phases in lost.values()))
        sent = 0
        for tenant, phases in lost.items():
            for i in range(0, len(phases), self.chunk):
                sent += await self._resend(tenant, phases[i:i + self.chunk])
        if sent:
            log.info("sweeper re-sent phases that Redis had no copy of", phases=sent,
                     waiting_in_lanes=len(stale) - sum(len(phases) for phases in lost.values()))
        return sent

    async def _stale(self) -> list[dict[str, Any]]:
        """Every stale dispatched phase (up to ``max_per_pass``), oldest first, a page per query."""
        rows: list[dict[str, Any]] = []
        after = _START
        async with self.db.platform() as conn:
            while len(rows) < self.max_per_pass:
                page = await access.stale_dispatches(conn, self.stale_after_s, after, self.page)
                rows += page
                if len(page) < self.page:
                    break
                after = (page[-1]["updated_at"], page[-1]["phase_id"])
        return rows

    async def _resend(self, tenant: UUID, phases: list[UUID]) -> int:
        async with self.db.tenant(tenant) as conn:
            rows = await repo.resend(conn, phases, self.stale_after_s)
        envelopes = self.dispatcher.envelopes(tenant, rows)
        for env in envelopes:
            if env.attempt > _RESENDS_WORTH_A_WARNING:
                log.warning("phase re-sent again: its copies keep vanishing without a result",
                            ticket=env.ticket_id, phase=env.phase_id, attempt=env.attempt,
                            hint="check the collector's log for refused results and the bot's for errors")
        await self.dispatcher.send(envelopes)
        PHASES_REDRIVEN.inc(len(envelopes))
        return len(envelopes)

    async def advance_stalled_runs(self) -> int:
        """Runs that wait on nothing open lost their advance (a crash after a result commit): advance them."""
        async with self.db.platform() as conn:
            stalled = await access.stalled_runs(conn, self.interval_s, self.batch)
        for row in stalled:
            try:
                await self.runner.advance(row["tenant_id"], row["ticket_id"])
            except Exception:
                log.exception("advancing a stalled run failed", ticket=str(row["ticket_id"]))
        if stalled:
            log.info("sweeper advanced stalled workflow runs", runs=len(stalled))
        return len(stalled)
