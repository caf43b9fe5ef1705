"""Operator actions on tickets: approve, reject, pause, resume, cancel, requeue, escalate, close.

Each action is validated against the state machine (a 409 names the actions possible from the current
state), runs in one tenant transaction that records who did it and why, and then wakes waiters.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from oshal.audit import trail
from oshal.errors import Conflict, NotFound
from oshal.store import tickets as repo
from oshal.store import workflows as runs
from oshal.store.db import Conn, Database
from oshal.types import PhaseStatus
from oshal.types import TicketStatus as S
from oshal.workflows.engine import Decision
from oshal.workflows.runner import Outcome, WorkflowRunner
from oshal.workflows.states import Action, target_of

BUDGET_REASON = "budget"  # a ticket paused with a reason starting so resumes once its budgets have room
RUNAWAY_REASON = "runaway"  # paused for making too many model calls: only an operator resumes it


class Lifecycle:
    def __init__(self, db: Database, runner: WorkflowRunner) -> None:
        self.db = db
        self.runner = runner

    async def act(self, tenant: UUID, ticket: UUID, action: Action, *, actor: str, reason: str | None) -> None:
        entry = trail.Entry(tenant, actor, f"ticket.{action.value}", str(ticket), {"reason": reason})
        if action in (Action.APPROVE, Action.REJECT):
            status = await self._status(tenant, ticket)
            if status == S.APPROVAL_REQUIRED:
                await trail.record_now(self.db, entry)  # before the decision: an unaudited approval never happens
                await self.runner.decide(tenant, ticket, Decision(action == Action.APPROVE, actor, reason or ""))
                return
        async with self.db.tenant(tenant) as conn:
            await trail.record(conn, entry)
            await repo.set_actor(conn, actor, reason)
            row = await repo.lock(conn, ticket)
            if row is None:
                raise NotFound(f"ticket {ticket} not found")
            outcome = await self._apply(conn, tenant, ticket, row, action, reason)
        await self.runner.deliver(outcome)

    async def tool_approval_needed(self, tenant: UUID, ticket: UUID, reason: str) -> None:
        """A bot's tool call waits for an operator: the ticket rests in approval_required (not failed)."""
        async with self.db.tenant(tenant) as conn:
            moved = await repo.set_status(conn, ticket, from_status=S.IN_PROGRESS, to_status=S.APPROVAL_REQUIRED,
                                          reason=reason)
        if moved:
            await self.runner.publish([(str(ticket), S.APPROVAL_REQUIRED)])

    async def budget_refused(self, tenant: UUID, ticket: UUID, reason: str) -> None:
        """A model call was refused for budget (or as runaway): the ticket rests paused, not failed."""
        async with self.db.tenant(tenant) as conn:
            await repo.set_actor(conn, "budget", reason)
            moved = await repo.set_status(conn, ticket, from_status=S.IN_PROGRESS, to_status=S.PAUSED,
                                          reason=reason[:500], resume_status=S.IN_PROGRESS)
        if moved:
            await self.runner.publish([(str(ticket), S.PAUSED)])

    async def resume_after_budget(self, tenant: UUID, ticket: UUID) -> int:
        """Resume a budget-paused ticket: its refused (or never dispatched) work is dispatched again."""
        async with self.db.tenant(tenant) as conn:
            await repo.set_actor(conn, "budget", "budget has room again")
            row = await repo.lock(conn, ticket)
            if row is None or row["status"] != S.PAUSED or not str(row["status_reason"] or "").startswith(
                    BUDGET_REASON):
                return 0
            await self._move(conn, ticket, S.PAUSED, S.IN_PROGRESS, "budget has room again")
            outcome = await self._rerun_refused(conn, tenant, ticket, row)
        await self.runner.deliver(outcome)
        return 1

    async def _rerun_refused(self, conn: Conn, tenant: UUID, ticket: UUID, row: dict[str, Any]) -> Outcome:
        """Work a budget (or the runaway limit) stopped runs again: phases held before their lane, or else the
        attempts whose model calls were refused (every branch the workflow waits on, for a parallel step). A plain
        ticket whose work finished meanwhile takes its result instead."""
        phase = await repo.phase_of(conn, ticket)
        if row["type"] is None and phase is not None and phase["status"] == "done":
            return await self._settle_plain(conn, ticket)
        retry = await repo.queued_phases(conn, ticket)
        if not retry and row["type"] is not None:
            run = await runs.lock_run(conn, ticket)
            waiting = ((run or {}).get("state") or {}).get("wait") or {}
            retry = [UUID(p) for p in (waiting.get("phases") or {}).values()]
        if not retry and phase is not None:
            retry = [phase["id"]]
        rows = await repo.redispatch(conn, retry,
                                     from_status=[PhaseStatus.FAILED, PhaseStatus.DEAD_LETTER, PhaseStatus.QUEUED])
        envelopes = [self.runner.envelope(tenant, r["ticket_id"], r["phase_id"], str(r["bot"]), r["input"],
                                          int(r["attempt"])) for r in rows]
        return Outcome(envelopes, [(str(ticket), S.IN_PROGRESS)])

    async def tool_approval_decided(self, tenant: UUID, ticket: UUID, approved: bool, *, actor: str,
                                    reason: str | None) -> None:
        """An operator decided a tool call's approval: the ticket's work runs again, or the ticket fails.

        The bot's attempt that asked has failed by now (or is about to); an approval re-dispatches it, so the
        call is made again and this time the broker finds the approval. A ticket that already ended failed in
        the meantime is requeued the same way.
        """
        async with self.db.tenant(tenant) as conn:
            await repo.set_actor(conn, actor, reason)
            row = await repo.lock(conn, ticket)
            if row is None or row["status"] not in (S.APPROVAL_REQUIRED, S.FAILED):
                return
            current = str(row["status"])
            if not approved:
                if current == S.APPROVAL_REQUIRED:
                    await self._move(conn, ticket, current, S.FAILED, f"tool call rejected: {reason or 'no reason'}",
                                     finished=True)
                    outcome = Outcome([], [(str(ticket), S.FAILED)])
                else:
                    outcome = Outcome([], [])
            else:
                outcome = await self._rerun_latest_phase(conn, tenant, ticket, current, reason)
        await self.runner.deliver(outcome)

    async def _rerun_latest_phase(self, conn: Conn, tenant: UUID, ticket: UUID, current: str,
                                  reason: str | None) -> Outcome:
        phase = await repo.phase_of(conn, ticket)
        rows = await repo.redispatch(conn, [phase["id"]], from_status=[PhaseStatus.FAILED, PhaseStatus.DEAD_LETTER]
                                     ) if phase else []
        if current == S.APPROVAL_REQUIRED:
            await self._move(conn, ticket, current, S.IN_PROGRESS, reason or "tool call approved")
        envelopes = [self.runner.envelope(tenant, r["ticket_id"], r["phase_id"], str(r["bot"]), r["input"],
                                          int(r["attempt"])) for r in rows]
        return Outcome(envelopes, [(str(ticket), S.IN_PROGRESS)])

    async def _status(self, tenant: UUID, ticket: UUID) -> str:
        async with self.db.tenant(tenant) as conn:
            status = await repo.status(conn, ticket)
        if status is None:
            raise NotFound(f"ticket {ticket} not found")
        return status

    async def _apply(self, conn: Conn, tenant: UUID, ticket: UUID, row: dict[str, Any], action: Action,
                     reason: str | None) -> Outcome:
        current = str(row["status"])
        target = target_of(action, str(ticket), current)
        workflow = row["type"] is not None
        if action == Action.APPROVE:  # backlog -> approved -> in progress
            await self._move(conn, ticket, current, S.APPROVED, reason)
            return await self._continue(conn, tenant, ticket, S.APPROVED)
        if action == Action.RESUME:
            resume_to = str(row["resume_status"] or S.IN_PROGRESS)
            await self._move(conn, ticket, current, resume_to, reason)
            if resume_to != S.IN_PROGRESS:
                return Outcome([], [(str(ticket), resume_to)])
            if str(row["status_reason"] or "").startswith((BUDGET_REASON, RUNAWAY_REASON)):
                return await self._rerun_refused(conn, tenant, ticket, row)  # its refused calls are made again
            if not workflow:
                return await self._settle_plain(conn, ticket)
            return await self.runner.begin(conn, tenant, ticket)
        if action == Action.REQUEUE:
            return await self._requeue(conn, tenant, ticket, current, workflow, reason)
        finished = target in (S.CANCELLED, S.DONE)
        await self._move(conn, ticket, current, target, reason, finished=finished,
                         resume_status=current if target == S.PAUSED else None)
        if target == S.CANCELLED:
            await self._cancel_work(conn, ticket)
        return Outcome([], [(str(ticket), target)])

    async def _move(self, conn: Conn, ticket: UUID, current: str, target: str, reason: str | None, *,
                    finished: bool = False, resume_status: str | None = None) -> None:
        if not await repo.set_status(conn, ticket, from_status=current, to_status=target, reason=reason,
                                     finished=finished, resume_status=resume_status):
            raise Conflict(f"ticket {ticket} changed while this action ran; read it again and retry")

    async def _continue(self, conn: Conn, tenant: UUID, ticket: UUID, current: str) -> Outcome:
        await self._move(conn, ticket, current, S.IN_PROGRESS, None)
        return await self.runner.begin(conn, tenant, ticket)

    async def _cancel_work(self, conn: Conn, ticket: UUID) -> None:
        open_children = [c["id"] for c in await repo.children(conn, ticket)
                         if c["status"] not in (S.DONE, S.FAILED, S.DEAD_LETTER, S.CANCELLED)]
        for child in open_children:
            await repo.set_status(conn, child, from_status=S.IN_PROGRESS, to_status=S.CANCELLED,
                                  reason="parent cancelled", finished=True)
        await repo.cancel_open_phases(conn, [ticket, *open_children])
        run = await runs.lock_run(conn, ticket)
        if run is not None and not run["finished"]:
            await runs.save_run(conn, ticket, run["state"], True)

    async def _settle_plain(self, conn: Conn, ticket: UUID) -> Outcome:
        """A plain ticket whose phase finished while it was paused takes that result now."""
        status = await repo.finish_from_phase(conn, ticket)
        return Outcome([], [(str(ticket), status)] if status else [])

    async def _requeue(self, conn: Conn, tenant: UUID, ticket: UUID, current: str, workflow: bool,
                       reason: str | None) -> Outcome:
        if workflow:
            await self.runner.reopen(conn, ticket)
            await repo.set_status(conn, ticket, from_status=current, to_status=S.IN_PROGRESS, reason=reason)
            return await self.runner.begin(conn, tenant, ticket)
        phase = await repo.phase_of(conn, ticket)
        if phase is None:
            raise NotFound(f"ticket {ticket} has no phase to requeue")
        rows = await repo.redispatch(conn, [phase["id"]], from_status=[PhaseStatus.DEAD_LETTER, PhaseStatus.FAILED])
        if not rows:
            raise Conflict(f"ticket {ticket}'s work is still {phase['status']}; requeue it once that ends")
        if current == S.ESCALATED:
            await self._move(conn, ticket, current, S.IN_PROGRESS, reason)
        r = rows[0]
        envelope = self.runner.envelope(tenant, r["ticket_id"], r["phase_id"], str(r["bot"]), r["input"],
                                        int(r["attempt"]))
        return Outcome([envelope], [(str(ticket), S.IN_PROGRESS)])
