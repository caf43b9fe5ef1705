"""The result collector: reads every bot's output stream and commits results in batched transactions.

Per batch, in one Postgres transaction: attempts, phase and ticket advance, and priced ledger rows, all
idempotent on the execution (phase, attempt, delivery) and call id. A small batch's commit does not wait for the
disk (synchronous_commit off): its waiters are woken at once, and its stream entries are acknowledged only
once Postgres has flushed its WAL past the commit (seen in a later batch's statement, or by polling while
idle). Until then the entries stay pending in Redis, so a crash of Postgres (or of the collector) at any point
re-reads and harmlessly re-commits them rather than loses them. With the acknowledgement go the done markers of
phases that succeeded after being sent more than once, which workers check before running a copy; a success of a
phase that had succeeded already is counted as a duplicate. A large batch (results are queueing) waits for the
disk, and is acknowledged at once with every batch before it.

Several loops (``loops``) run side by side, as several control-plane replicas would: each is a consumer of its own
in the collector group, with its own connection, so while Postgres runs one loop's statement the others decode,
send and acknowledge theirs, and two statements can use two cores. Each loop's results go to Postgres sorted by
phase, so concurrent batches lock phase and ticket rows in one order; a deadlock Postgres still reports (with work
outside the collector) rolls back that tenant's statement only, which is sent again.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from psycopg.errors import DeadlockDetected
from redis.exceptions import ResponseError

from oshal.control.events import EventHub
from oshal.control.metrics import (
    COLLECTOR_BATCH,
    DONE_MARKERS_SET,
    DUPLICATE_EXECUTIONS,
    RESULTS_COMMITTED,
    RESULTS_REJECTED,
    WORKFLOW_ADVANCE,
)
from oshal.ledger import Priced, PriceTable, price_call
from oshal.logs import get_logger
from oshal.mesh.envelopes import Result
from oshal.mesh.redis import REDIS_DOWN, is_nogroup
from oshal.mesh.redis_keys import out_stream
from oshal.mesh.results import Entry, ResultStreams
from oshal.mesh.signing import DispatchSigner
from oshal.store.db import Database, Session, Statement, Wal
from oshal.store.results import AttemptRow, LedgerRow, record_results, record_results_unflushed
from oshal.store.tickets import dumps
from oshal.workflows.runner import WorkflowRunner

log = get_logger(__name__)


def _when(ts: float | None) -> dt.datetime | None:
    return None if ts is None else dt.datetime.fromtimestamp(ts, dt.UTC)


class Collector:
    def __init__(self, db: Database, streams: ResultStreams, signer: DispatchSigner, events: EventHub,
                 prices: Callable[[], PriceTable], bots: Callable[[], frozenset[str]], *, batch: int,
                 runner: WorkflowRunner, claim_idle_ms: int = 60_000, advance_concurrency: int = 4,
                 on_room: Callable[[Iterable[UUID]], Awaitable[object]] | None = None,
                 done_marker_ttl_s: int = 86_400, loops: int = 1) -> None:
        if loops < 1:
            raise ValueError(f"a collector needs at least one loop, not {loops}")
        self.loops = loops
        self.runner = runner
        self.on_room = on_room  # budgets: resume paused work into the room settlements may have freed
        self.done_marker_ttl_s = done_marker_ttl_s
        self._advancing = asyncio.Semaphore(advance_concurrency)
        self.db = db
        self.streams = streams
        self.signer = signer
        self.events = events
        self.prices = prices
        self.bots = bots
        self.batch = batch
        self.claim_idle_ms = claim_idle_ms
        self._room_tenants: set[UUID] = set()  # tenants whose budgets may have room again, for the next pass
        self._room_pass: asyncio.Task[None] | None = None
        self._unflushed: list[_Unflushed] = []  # committed batches whose WAL may not be on disk yet, oldest first
        self.unflushed_batch_max = UNFLUSHED_BATCH_MAX
        self._sql: Database | Session = db  # where the collector's own statements go: a held connection while it runs
        self._primary = self  # the loop that resumes paused work into freed budget room for every loop

    async def run(self, stop: asyncio.Event) -> None:
        """Run every loop until ``stop``; one that fails ends them all (the caller restarts them, and each then
        re-reads what it had read and not acknowledged)."""
        if self.loops == 1:
            await self._run_loop(stop)
            return
        loops = [asyncio.create_task(self._run_loop(stop)),
                 *(asyncio.create_task(self._sibling(n)._run_loop(stop)) for n in range(1, self.loops))]
        try:
            ended, _ = await asyncio.wait(loops, return_when=asyncio.FIRST_EXCEPTION)
            for loop in ended:
                loop.result()  # the first failure, as it is (not in an exception group)
        finally:
            for loop in loops:
                loop.cancel()  # each acknowledges what is on disk as it stops
            await asyncio.gather(*loops, return_exceptions=True)

    def _sibling(self, n: int) -> Collector:
        """Loop ``n`` (from 1; loop 0 is this one): the same collector as another consumer of the group, with a
        name of its own, so a restart with the same number of loops re-reads each one's own pending entries (and
        another count leaves them to :meth:`claim_orphans`)."""
        sibling = Collector(self.db, ResultStreams(self.streams.redis, f"{self.streams.consumer}-{n + 1}"),
                            self.signer, self.events, self.prices, self.bots, batch=self.batch, runner=self.runner,
                            claim_idle_ms=self.claim_idle_ms, done_marker_ttl_s=self.done_marker_ttl_s)
        sibling._advancing = self._advancing  # one bound on concurrent workflow advances for all the loops
        sibling._primary = self
        sibling.unflushed_batch_max = self.unflushed_batch_max
        return sibling

    async def _run_loop(self, stop: asyncio.Event) -> None:
        self._unflushed.clear()  # a restarted loop re-reads its own pending entries: they are redone anyway
        try:
            async with self.db.session() as session:  # statement after statement: no pool checkout per batch
                self._sql = session
                try:
                    await self._run(stop)
                finally:
                    await self._acknowledge_when_flushed(FLUSH_WAIT_ON_STOP_S)
        finally:
            self._sql = self.db
            if self._room_pass is not None:
                await asyncio.gather(self._room_pass, return_exceptions=True)

    async def _run(self, stop: asyncio.Event) -> None:
        await self.streams.ensure_groups(self.bots())
        await self._drain_own_pending()
        backoff = 0.1
        next_claim = time.monotonic() + self.claim_idle_ms / 1000
        while not stop.is_set():
            try:
                await self.step(block_ms=1000)
                if time.monotonic() >= next_claim:
                    await self.claim_orphans()
                    next_claim = time.monotonic() + self.claim_idle_ms / 1000
                backoff = 0.1
            except REDIS_DOWN as e:
                task = asyncio.current_task()
                if task is not None and task.cancelling():  # a cancel redis-py turned into an error: honour it
                    raise asyncio.CancelledError from e
                log.warning("collector cannot reach Redis; retrying", error=str(e), retry_in_s=backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            except ResponseError as e:
                if not is_nogroup(e):
                    raise
                await self.streams.ensure_groups(self.bots())

    async def _drain_own_pending(self) -> None:
        """Entries this collector read but did not acknowledge before it stopped (or crashed): committed durably
        and acknowledged at once, or the next read from "0" would return them again."""
        while (bots := self.bots()) and (entries := await self.streams.read(bots, self.batch, None, "0")):
            await self.commit(entries, durable=True)

    async def claim_orphans(self) -> int:
        """Take over results another collector read but never acknowledged (it died on another host)."""
        claimed = 0
        for bot in sorted(self.bots()):
            entries = await self.streams.claim(bot, self.claim_idle_ms, self.batch)
            if entries:
                await self.commit(entries, durable=True)
                claimed += len(entries)
        return claimed

    async def step(self, block_ms: int | None, start: str = ">") -> int:
        bots = self.bots()
        if not bots:
            await asyncio.sleep(1)
            return 0
        if self._unflushed and block_ms is not None:  # poll for the flush that lets them be acknowledged
            block_ms = min(block_ms, FLUSH_POLL_MS)
        entries = await self.streams.read(bots, self.batch, block_ms, start)
        if entries:  # a full batch means results are queueing: waiting for the disk lets the next batch grow
            await self.commit(entries, durable=start != ">" or len(entries) > self.unflushed_batch_max)
        elif self._unflushed:
            await self._acknowledge(self._settle(await self._sql.wal()))
        return len(entries)

    async def commit(self, entries: list[Entry], *, durable: bool = False) -> None:
        """Record ``entries``' results and wake their waiters; acknowledge them now if ``durable``, else once the
        WAL is flushed past the commit (entries read again before then must be committed ``durable``)."""
        results = [r for r in (self._accept(stream, fields) for stream, _, fields in entries) if r]
        with COLLECTOR_BATCH.time():
            recorded, wal, rows = await self._record(results, durable) if results else ([], None, {})
        changes = [c for c in recorded if c.status not in _FENCES]
        fences = self._fences(results, [c for c in recorded if c.status in _FENCES])
        finished = [(c.ticket, c.status) for c in changes if c.status != "step"]
        dead = {tid for tid, status in finished if status == "dead_letter"}
        for result in results:
            if result.envelope.ticket_id in dead:
                await self.streams.dead_letter(result.envelope, result.error or "dead letter")
        batch = _Unflushed(entries, fences)
        if not results:  # nothing committed: nothing to wait for
            settled = [batch]
        elif durable:  # a durable commit flushed the WAL of every commit before it too
            settled, self._unflushed = [*self._unflushed, batch], []
        else:
            assert wal is not None
            settled = self._settle(wal)
            self._unflushed.append(batch)
        finished_rows = {tid: rows[tid] for tid, status in finished if tid in rows and rows[tid]["status"] == status}
        await self._acknowledge(settled, finished, finished_rows, self.events.waiters(results))
        RESULTS_COMMITTED.inc(len(results))
        DONE_MARKERS_SET.inc(len(fences))
        self._primary._room_may_have_returned(results)
        await self._advance_runs(changes)

    def _settle(self, wal: Wal) -> list[_Unflushed]:
        """The committed batches now on disk, taken off the unflushed list. ``wal`` was read after the commits of every
        batch on it: its written position marks those not yet marked (each commit ended before it)."""
        for batch in self._unflushed:
            if batch.written is None:
                batch.written = wal.written
        settled = [b for b in self._unflushed if b.written is not None and b.written <= wal.flushed]
        self._unflushed = [b for b in self._unflushed if b.written is None or b.written > wal.flushed]
        return settled

    async def _acknowledge(self, batches: list[_Unflushed], finished: Sequence[tuple[str, str]] = (),
                           rows: Mapping[str, dict[str, Any]] | None = None,
                           waiters: Mapping[str, str] | None = None) -> None:
        """In one pipeline: publish ``finished`` (waiters get their tickets' ``rows``, here or in the process
        ``waiters`` names), and acknowledge and delete the entries of ``batches``, with their done markers."""
        if not batches and not finished:
            return
        entries = [e for b in batches for e in b.entries]
        fences = sorted({f for b in batches for f in b.fences})
        await self.streams.acknowledge(entries, fences, self.done_marker_ttl_s,
                                       also=lambda pipe: self.events.queue_publish(pipe, finished, rows, waiters))

    async def _acknowledge_when_flushed(self, timeout_s: float) -> None:
        """On stop: acknowledge what becomes durable within ``timeout_s``; the rest is re-read on the next start."""
        deadline = time.monotonic() + timeout_s
        try:
            while self._unflushed:
                await self._acknowledge(self._settle(await self._sql.wal()))
                if not self._unflushed or time.monotonic() >= deadline:
                    break
                await asyncio.sleep(FLUSH_POLL_MS / 1000)
        except Exception as e:  # Postgres or Redis gone: the entries stay pending and are redone
            log.warning("results left unacknowledged at stop; the next start re-reads them", error=str(e))

    @staticmethod
    def _fences(results: list[Result], rows: list[_Change]) -> list[tuple[str, str]]:
        """(bot, phase) of each done marker to set; counts and reports the duplicate executions among them."""
        bots = {r.envelope.phase_id: r.envelope.bot for r in results}
        duplicates = [row for row in rows if row.status == "duplicate"]
        if duplicates:
            DUPLICATE_EXECUTIONS.inc(len(duplicates))
            log.warning("a phase that had succeeded already ran again (recorded and billed as a duplicate)",
                        executions=len(duplicates), tickets=sorted({row.ticket for row in duplicates})[:10])
        return sorted({(bots[row.parent], row.parent) for row in rows if row.parent in bots})

    def _room_may_have_returned(self, results: list[Result]) -> None:
        """A call that settled (usually below its reservation) frees room; a failed attempt may be a refused call
        whose paused ticket could not resume before it reported. The resume runs beside the collector, one pass
        at a time, each for every tenant noted since the last: never in the way of the next batch."""
        if self.on_room is None:
            return
        self._room_tenants |= {UUID(r.envelope.tenant_id) for r in results
                               if r.outcome == "failed" or any(call.reservation for call in r.calls)}
        if self._room_tenants and (self._room_pass is None or self._room_pass.done()):
            self._room_pass = asyncio.create_task(self._resume_into_room())

    async def _resume_into_room(self) -> None:
        assert self.on_room is not None
        while self._room_tenants:
            tenants, self._room_tenants = self._room_tenants, set()
            await self.on_room(tenants)

    async def _advance_runs(self, changes: list[_Change]) -> None:
        """Workflow tickets whose step (or child ticket) finished move on, each in its own transaction.

        A crash before this leaves runs waiting on finished work; the sweeper finds and advances them.
        """
        runs = {(c.tenant, c.ticket if c.status == "step" else c.parent) for c in changes
                if c.status == "step" or c.parent}
        if runs:
            await asyncio.gather(*(self._advance_one(UUID(tenant), UUID(str(ticket))) for tenant, ticket in runs))

    async def _advance_one(self, tenant: UUID, ticket: UUID) -> None:
        async with self._advancing:  # runs advance concurrently, bounded so the pool keeps room for the API
            try:
                with WORKFLOW_ADVANCE.time():
                    await self.runner.advance(tenant, ticket)
            except Exception:
                log.exception("workflow advance failed; the sweeper retries it", ticket=str(ticket))

    def _accept(self, stream: str, fields: dict[bytes, bytes] | None) -> Result | None:
        if not fields:
            return None
        try:
            result = Result.decode(fields)
        except (KeyError, ValueError, TypeError):
            RESULTS_REJECTED.inc()
            log.warning("undecodable result dropped", stream=stream)
            return None
        if out_stream(result.envelope.bot) != stream or not self.signer.verify(result.envelope):
            RESULTS_REJECTED.inc()
            log.warning("result with a bad dispatch signature dropped", stream=stream,
                        ticket=result.envelope.ticket_id)
            return None
        return result

    async def _record(self, results: list[Result],
                      durable: bool) -> tuple[list[_Change], Wal | None, dict[str, dict[str, Any]]]:
        table: PriceTable | None = None  # read once per batch, and only for a batch with model calls to price
        now: dt.datetime | None = None  # the price date of a call whose result has no finish time
        per_tenant: dict[str, tuple[list[AttemptRow], list[LedgerRow]]] = defaultdict(lambda: ([], []))
        for r in results:
            env = r.envelope
            attempts, ledger = per_tenant[env.tenant_id]
            phase, ticket = UUID(env.phase_id), UUID(env.ticket_id)
            finished = _when(r.finished_at)
            attempts.append(AttemptRow(phase, env.attempt, ticket, r.outcome,
                                       None if r.output is None else dumps(r.output), r.error, r.consumer,
                                       r.deliveries, _when(r.started_at), finished))
            priced_at = finished
            for call in r.calls:
                if table is None:
                    table = self.prices()
                if priced_at is None:
                    priced_at = now = now or dt.datetime.now(dt.UTC)
                try:
                    priced = price_call(table, call, priced_at)
                except ValueError as e:  # impossible counts from a bot: keep the row, unpriced, and say so
                    log.warning("usage not priceable", call=call.call_id, error=str(e))
                    priced = Priced(0, "unpriced", None)
                ledger.append(LedgerRow(call.call_id, ticket, phase, env.attempt, env.bot, call.provider,
                                        call.model, call.input_tokens, call.output_tokens,
                                        call.cached_read_tokens, call.cache_write_tokens, priced.cost_micros,
                                        priced.source, call.reasoning_tokens, priced.computed_micros,
                                        call.reported_cost_micros, _reservation(call.reservation)))
        changes: list[_Change] = []
        wal: Wal | None = None
        read_back: dict[str, dict[str, Any]] = {}
        for tenant, (attempts, ledger) in per_tenant.items():  # one transaction per tenant; all idempotent
            attempts.sort(key=_lock_order)  # the order concurrent loops lock phases (and their tickets) in
            if durable:
                rows = [(row["id"], row["status"], row["parent"])
                        for row in await self._call(record_results(UUID(tenant), attempts, ledger))]
            else:  # a waiter here gets its ticket as the same statement leaves it, and skips reading it again
                waited = self.events.watched({str(a.ticket_id) for a in attempts}, results)
                recorded = await self._call(record_results_unflushed(UUID(tenant), attempts, ledger, waited))
                wal = wal or Wal(recorded[0]["wal_written"], recorded[0]["wal_flushed"])  # before these commits
                recorded = [row for row in recorded if row["finished_ticket"] is not None]
                rows = [(row["finished_ticket"], row["finished_status"], row["parent"]) for row in recorded]
                read_back.update((str(row["id"]), _ticket(row)) for row in recorded if row["id"] is not None)
            changes.extend(_Change(tenant, str(ticket), str(status), None if parent is None else str(parent))
                           for ticket, status, parent in rows)
        return changes, wal, read_back

    async def _call(self, statement: Statement) -> list[dict[str, Any]]:
        """One tenant's statement; sent again when Postgres broke a deadlock by rolling it back (it changed nothing,
        and the batch's other tenants' statements are committed already: only this one is redone)."""
        tries = 1
        while True:
            try:
                return await self._sql.call(statement)
            except DeadlockDetected:
                if tries >= DEADLOCK_TRIES:
                    raise
                log.warning("collector statement rolled back to break a deadlock; sending it again", tries=tries)
                tries += 1


def _lock_order(row: AttemptRow) -> int:
    return row.phase_id.int  # a phase's rows of one batch lock it once, whatever their order among themselves


@dataclass(frozen=True, slots=True)
class _Change:
    tenant: str
    ticket: str
    # a final status; "step": a workflow's phase ended and its run should advance; "fence" or "duplicate": a
    # phase sent more than once succeeded (or succeeded again), and ``parent`` holds the phase, not a parent
    status: str
    parent: str | None


_FENCES = ("fence", "duplicate")
# While results wait for their commit to reach the disk, the loop looks this often (Postgres' WAL writer flushes
# asynchronous commits within about 3 x wal_writer_delay, 200 ms by default; any durable commit flushes them too).
FLUSH_POLL_MS = 50
# Batches of at most this many results commit without waiting for the disk (the collector keeps up: a waiter would
# wait for the fsync); larger ones wait for it, so results queue meanwhile and the next batch shares its fsync.
UNFLUSHED_BATCH_MAX = 16
FLUSH_WAIT_ON_STOP_S = 2.0
DEADLOCK_TRIES = 3


@dataclass(slots=True)
class _Unflushed:
    """A committed batch's stream entries and done markers, held back until the WAL is flushed past ``written``: a
    WAL position read after its commit (None until one is read)."""

    entries: list[Entry]
    fences: list[tuple[str, str]]
    written: int | None = None


def _ticket(row: dict[str, Any]) -> dict[str, Any]:
    """The ticket's own columns of a row of record_results_unflushed (what GET /v1/tickets/{id} reads)."""
    return {k: v for k, v in row.items() if k not in _RECORD_COLUMNS}


_RECORD_COLUMNS = frozenset({"wal_written", "wal_flushed", "finished_ticket", "finished_status", "parent"})


def _reservation(value: str | None) -> UUID | None:
    try:
        return UUID(value) if value else None
    except ValueError:
        return None  # a malformed id settles nothing; the reservation expires and its cost still counts
