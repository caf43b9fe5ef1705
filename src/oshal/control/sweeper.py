"""The sweeper re-drives phases that are queued or dispatched without progress.

It covers a crash between the ticket commit and the lane append, a Redis that lost its data, and lanes
whose messages vanished. A phase re-driven ``max_dispatches`` times without a result goes to dead letter.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any
from uuid import UUID

from redis.asyncio import Redis
from redis.exceptions import RedisError

from oshal.control.budget_service import BudgetService
from oshal.control.events import EventHub
from oshal.control.metrics import PHASES_REDRIVEN
from oshal.logs import get_logger
from oshal.mesh import lanes
from oshal.mesh.envelopes import Envelope
from oshal.mesh.signing import DispatchSigner
from oshal.security.killswitch import KillSwitches
from oshal.store import access
from oshal.store import tickets as repo
from oshal.store.db import Database
from oshal.workflows.runner import WorkflowRunner

log = get_logger(__name__)
_ROLLUP_EVERY_S = 3600.0


class Sweeper:
    def __init__(self, db: Database, redis: Redis, signer: DispatchSigner, events: EventHub,
                 bots: Callable[[], frozenset[str]], *, runner: WorkflowRunner, kill: KillSwitches,
                 budgets: BudgetService, stale_after_s: float, interval_s: float, max_dispatches: int,
                 batch: int = 500) -> None:
        self.runner = runner
        self.kill = kill
        self.budgets = budgets
        self._rolled_up_at = 0.0
        self.db = db
        self.redis = redis
        self.signer = signer
        self.events = events
        self.bots = bots
        self.stale_after_s = stale_after_s
        self.interval_s = interval_s
        self.max_dispatches = max_dispatches
        self.batch = batch

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
        """One pass; returns how many phases were re-driven or dead-lettered, and runs advanced."""
        await lanes.ensure_groups(self.redis, self.bots())  # recreates groups after Redis lost its data
        await self.kill.refresh()  # and the kill-switch mirror
        async with self.db.platform() as conn:
            stale = await access.stale_phases(conn, self.stale_after_s, self.batch)
        # A held bot's phases wait for its release, without spending their attempts.
        stale = [row for row in stale if self.kill.blocks(str(row["bot"])) is None]
        moved = await self._redrive(stale) if stale else 0
        moved += await self.kill.dispatch_held()
        # What crashed calls still hold goes back to their budgets, and paused work resumes into the room.
        moved += await self.budgets.sweep()
        if time.monotonic() - self._rolled_up_at >= _ROLLUP_EVERY_S:
            self._rolled_up_at = time.monotonic()
            rolled = await self.budgets.roll_up()
            if rolled:
                log.info("ledger rows rolled up into daily totals", rows=rolled)
        return moved + await self.advance_stalled_runs()

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

    async def _redrive(self, stale: list[dict[str, Any]]) -> int:
        by_tenant: dict[UUID, list[dict[str, Any]]] = defaultdict(list)
        for row in stale:
            by_tenant[row["tenant_id"]].append(row)
        envelopes: list[Envelope] = []
        changes: list[tuple[str, str]] = []
        for tenant, rows in by_tenant.items():
            exhausted = {r["phase_id"]: r for r in rows if r["attempt"] >= self.max_dispatches}
            retry = [r["phase_id"] for r in rows if r["attempt"] < self.max_dispatches]
            error = (f"no result after {self.max_dispatches} dispatches "
                     f"(each waited {self.stale_after_s:.0f}s); is the bot running?")
            async with self.db.tenant(tenant) as conn:
                dead = await repo.dead_letter_phases(conn, list(exhausted), error) if exhausted else []
                redriven = await repo.redispatch(conn, retry, from_status=repo.OPEN) if retry else []
            for row in exhausted.values():
                if row["ticket_id"] in dead:
                    changes.append((str(row["ticket_id"]), "dead_letter"))
                    await lanes.dead_letter(self.redis, Envelope(str(row["ticket_id"]), str(row["phase_id"]),
                                                                 int(row["attempt"]), str(tenant), str(row["bot"]),
                                                                 None), error)
            for r in redriven:
                env = Envelope(str(r["ticket_id"]), str(r["phase_id"]), int(r["attempt"]),
                               str(tenant), str(r["bot"]), r["input"])
                envelopes.append(Envelope(env.ticket_id, env.phase_id, env.attempt, env.tenant_id, env.bot,
                                          env.input, self.signer.sign(env)))
        await self.runner.dispatch(envelopes)
        await self.events.publish(changes)
        PHASES_REDRIVEN.inc(len(envelopes))
        if envelopes or changes:
            log.info("sweeper re-drove stale phases", redriven=len(envelopes), dead_lettered=len(changes))
        return len(envelopes) + len(changes)
