"""Runs workflow tickets: start, advance, decide at gates, requeue. Each advance is one tenant transaction.

The ticket row is locked first, then the run, so two advances of one run (the collector and the sweeper, or
two control planes) serialise; the second sees the first's checkpoint and finds nothing left to do. Phases
and child tickets are committed as dispatched before their envelopes are appended to lanes, as for plain
tickets, so a crash after the commit is re-driven by the sweeper and a crash before it leaves no trace.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from oshal.errors import Conflict, NotFound
from oshal.jsontext import compact
from oshal.logs import get_logger
from oshal.mesh.dispatcher import Dispatcher
from oshal.mesh.envelopes import Envelope
from oshal.store import budgets as budgets_repo
from oshal.store import tickets as ticket_repo
from oshal.store import workflows as repo
from oshal.store.db import Conn, Database
from oshal.types import new_id
from oshal.workflows.definition import WorkflowDefinition, parse_definition
from oshal.workflows.engine import BotResolver, Checkpoint, Decision, Effects, Fact, advance
from oshal.workflows.states import RESTING

log = get_logger(__name__)
Publish = Callable[[Sequence[tuple[str, str]]], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Outcome:
    envelopes: list[Envelope]
    changes: list[tuple[str, str]]


class WorkflowRunner:
    def __init__(self, db: Database, dispatcher: Dispatcher, resolve_bot: BotResolver, publish: Publish) -> None:
        self.db = db
        self.dispatcher = dispatcher
        self.resolve_bot = resolve_bot
        self.publish = publish
        self._definitions: dict[tuple[str, int, str], WorkflowDefinition] = {}
        # (tenant, name, version) -> definition. A version never changes once published, so a pinned run's
        # definition is read from the database once per process.
        self._pinned: dict[tuple[UUID, str, int], WorkflowDefinition] = {}

    async def definition(self, conn: Conn, name: str, version: int | None = None) -> WorkflowDefinition:
        row = await repo.definition(conn, name, version)
        if row is None:
            which = f"{name} version {version}" if version else name
            raise NotFound(f"no workflow {which}", hint="see `oshal workflow list` for the ticket types")
        key = (str(row["name"]), int(row["version"]), str(row["digest"]))
        cached = self._definitions.get(key)
        if cached is None:
            cached = parse_definition(row["document"], source=f"workflow {name}")
            self._definitions[key] = cached
        return cached

    async def pinned(self, conn: Conn, tenant: UUID, name: str, version: int) -> WorkflowDefinition:
        key = (tenant, name, version)
        definition = self._pinned.get(key)
        if definition is None:
            definition = self._pinned[key] = await self.definition(conn, name, version)
        return definition

    async def start_in(self, conn: Conn, tenant: UUID, ticket: UUID, definition: WorkflowDefinition,
                       value: Any, *, hold: bool) -> Outcome:
        """Inside the caller's transaction (the ticket row exists): create the run and take its first steps."""
        state = Checkpoint.initial(definition)
        await repo.insert_run(conn, tenant, ticket, definition.name, definition.version, state.to_json())
        if hold:
            return Outcome([], [])
        return await self._advance_locked(conn, tenant, ticket, {"id": str(ticket), "input": value},
                                          definition, state, decision=None, status="in_progress")

    async def advance(self, tenant: UUID, ticket: UUID, *, decision: Decision | None = None,
                      actor: str | None = None, reason: str | None = None) -> Outcome:
        async with self.db.tenant(tenant) as conn:
            if actor:
                await ticket_repo.set_actor(conn, actor, reason)
            outcome = await self._advance(conn, tenant, ticket, decision)
        await self.deliver(outcome)
        return outcome

    async def deliver(self, outcome: Outcome) -> None:
        """After the commit: append to lanes (the sweeper re-drives on failure) and wake waiters."""
        if outcome.envelopes:
            await self.dispatcher.send_committed(outcome.envelopes)
        if outcome.changes:
            await self.publish(outcome.changes)

    async def _advance(self, conn: Conn, tenant: UUID, ticket: UUID, decision: Decision | None) -> Outcome:
        row = await repo.lock_ticket_and_run(conn, ticket)
        if row is None or row["finished"]:
            return Outcome([], [])  # a plain ticket (no run), or a run that has ended
        status = str(row["status"])
        waiting_here = status == "approval_required" and decision is not None
        if status != "in_progress" and not waiting_here:
            return Outcome([], [])  # paused, escalated, cancelled...: nothing moves until an operator acts
        definition = await self.pinned(conn, tenant, str(row["workflow"]), int(row["version"]))
        state = Checkpoint.from_json(row["state"])
        return await self._advance_locked(conn, tenant, ticket, {"id": str(ticket), "input": row["input"]},
                                          definition, state, decision=decision, status=status)

    async def _advance_locked(self, conn: Conn, tenant: UUID, ticket: UUID, ticket_scope: dict[str, Any],
                              definition: WorkflowDefinition, state: Checkpoint, *, decision: Decision | None,
                              status: str) -> Outcome:
        facts = await self._facts(conn, state)
        effects = advance(definition, state, ticket=ticket_scope, facts=facts, decision=decision,
                          resolve_bot=self.resolve_bot)
        envelopes = await self._create_work(conn, tenant, ticket, state, effects)
        new_status, reason = effects.status or status, effects.reason
        held = await self._hold_for_budget(conn, ticket, definition.name, envelopes)
        if held is not None:  # its steps wait, queued, until the budget has room (then it resumes)
            envelopes = [e for e in envelopes if e.ticket_id != str(ticket)]
            new_status, reason = "paused", held
        phase = state.wait["step"] if state.wait else state.cursor
        if effects.finished and new_status in ("failed", "dead_letter"):
            phase = state.trail[-1] if state.trail else None
            state.cursor = phase  # a requeue retries the step that failed
        await repo.checkpoint(conn, ticket, state=state.to_json(), run_finished=effects.finished, status=new_status,
                              phase=phase, reason=reason, result=effects.result, error=effects.error)
        changed = new_status != status and new_status in RESTING
        return Outcome(envelopes, [(str(ticket), new_status)] if changed else [])

    @staticmethod
    async def _hold_for_budget(conn: Conn, ticket: UUID, ticket_type: str, envelopes: list[Envelope]) -> str | None:
        """Before this ticket's next phases are dispatched: if a budget above them is exhausted, they are put back
        to queued (their attempt unspent) and the reason is returned. Child tickets are gated by their own calls."""
        own = [e for e in envelopes if e.ticket_id == str(ticket)]
        if not own:
            return None
        why = await budgets_repo.exhausted_for(conn, ticket, ticket_type, sorted({e.bot for e in own}))
        if why is not None:
            await ticket_repo.undispatch(conn, [(UUID(e.phase_id), e.attempt) for e in own])
        return why

    async def _facts(self, conn: Conn, state: Checkpoint) -> dict[str, Fact]:
        if state.wait is None:
            return {}
        facts: dict[str, Fact] = {}
        phase_ids = list(state.wait.get("phases", {}).values())
        for row in await repo.phase_facts(conn, phase_ids) if phase_ids else []:
            facts[str(row["id"])] = Fact(str(row["status"]), row["output"], row["error"])
        children = list(state.wait.get("children", []))
        for row in await repo.child_facts(conn, children) if children else []:
            facts[str(row["id"])] = Fact(str(row["status"]), row["output"], row["error"])
        return facts

    async def _create_work(self, conn: Conn, tenant: UUID, ticket: UUID, state: Checkpoint,
                           effects: Effects) -> list[Envelope]:
        envelopes: list[Envelope] = []
        if effects.phases:
            assert state.wait is not None
            seq = state.seq if state.seq is not None else await repo.next_seq(conn, ticket)
            state.seq = seq + len(effects.phases)
            rows = []
            for offset, phase in enumerate(effects.phases):
                ident = new_id()
                state.wait["phases"][phase.key] = str(ident)
                rows.append((ident, seq + offset, phase.step, phase.bot, compact(phase.input)))
                envelopes.append(self.envelope(tenant, ticket, ident, phase.bot, phase.input))
            await repo.insert_phases(conn, tenant, ticket, rows)
        originals = await self._replayed_children(conn, ticket, len(effects.children)) if effects.children else []
        for n, child in enumerate(effects.children):
            assert state.wait is not None
            child_id, phase_id = new_id(), new_id()
            await repo.insert_ticket(conn, tenant, child_id, type_=None, bot=child.bot, input_json=compact(child.input),
                                     status="in_progress", by=None, parent=ticket,
                                     replay_of=originals[n] if originals else None)
            await repo.insert_phases(conn, tenant, child_id, [(phase_id, 0, "", child.bot, None)])
            state.wait["children"].append(str(child_id))
            envelopes.append(self.envelope(tenant, child_id, phase_id, child.bot, child.input))
        return envelopes

    @staticmethod
    async def _replayed_children(conn: Conn, ticket: UUID, count: int) -> list[UUID]:
        """For a replay's fan-out: the original's children these new ones stand for, in creation order. A child
        with no counterpart still replays (the original parent), so it can only fail, never call out."""
        row = await repo.replay_origin(conn, ticket)
        if row is None or row["replay_of"] is None:
            return []
        originals = (await repo.child_ids(conn, row["replay_of"]))[int(row["made"]):]
        return [originals[n] if n < len(originals) else row["replay_of"] for n in range(count)]

    def envelope(self, tenant: UUID, ticket: UUID, phase: UUID, bot: str, value: Any, attempt: int = 1) -> Envelope:
        return self.dispatcher.envelope(tenant, ticket, phase, bot, value, attempt)

    async def decide(self, tenant: UUID, ticket: UUID, decision: Decision) -> Outcome:
        """An operator approves or rejects the gate a run waits at."""
        async with self.db.tenant(tenant) as conn:
            await ticket_repo.set_actor(conn, decision.by, decision.note or None)
            row = await ticket_repo.lock(conn, ticket)
            if row is None:
                raise NotFound(f"ticket {ticket} not found")
            run = await repo.lock_run(conn, ticket)
            state = Checkpoint.from_json(run["state"]) if run else None
            if (run is None or state is None or state.wait is None or state.wait.get("kind") != "approval"
                    or row["status"] != "approval_required"):
                tool_call = row["status"] == "approval_required"
                raise Conflict(f"ticket {ticket} is {row['status']} and waits at no workflow approval gate",
                               hint="it waits for a tool call's approval: GET /v1/approvals?status=pending, then "
                                    "POST /v1/approvals/{id}/approve (oshal approval approve ID)" if tool_call
                               else "approve or reject tickets in approval_required")
            outcome = await self._advance(conn, tenant, ticket, decision)
        await self.deliver(outcome)
        return outcome

    async def begin(self, conn: Conn, tenant: UUID, ticket: UUID) -> Outcome:
        """Start a held (backlog/approved) run, or continue one after resume or requeue (ticket in progress)."""
        return await self._advance(conn, tenant, ticket, None)

    async def reopen(self, conn: Conn, ticket: UUID) -> bool:
        """Requeue: the run retries the step that failed. False when the ticket has no run."""
        run = await repo.lock_run(conn, ticket)
        if run is None:
            return False
        if not run["finished"]:
            return True  # halted by an operator mid-run: it continues where it stood
        state = Checkpoint.from_json(run["state"])
        if state.cursor is None:
            raise Conflict(f"ticket {ticket}'s workflow reached its end; there is no step to retry",
                           hint="create a new ticket to run it again")
        state.wait = None
        await repo.save_run(conn, ticket, state.to_json(), False)
        return True

