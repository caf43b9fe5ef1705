"""The workflow engine: given a run's checkpoint and what has happened since, decide what happens next.

Pure: no I/O. The runner loads the checkpoint and the facts (phase results, child tickets, an operator's
decision) inside one transaction, calls :func:`advance`, and writes the new checkpoint together with the
effects it returns. So a step's effects and the checkpoint that records them commit together or not at
all, and a crashed process simply advances again from the last checkpoint.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from oshal.workflows.definition import (
    ApprovalStep,
    DecisionStep,
    EndStep,
    FanoutStep,
    LoopStep,
    ParallelStep,
    TaskStep,
    VerifyStep,
    WorkflowDefinition,
)
from oshal.workflows.expressions import holds, render, resolve

_MAX_HOPS = 500  # steps taken in one advance without waiting; a definition cannot loop unboundedly anyway


@dataclass(frozen=True, slots=True)
class Fact:
    """The end of one unit of work the run waited on: a phase or a child ticket."""

    status: str  # done | failed | dead_letter | cancelled | ...
    output: Any = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    approved: bool
    by: str
    note: str = ""


@dataclass(frozen=True, slots=True)
class NewPhase:
    key: str  # branch id, or the step id
    step: str
    bot: str
    input: Any


@dataclass(frozen=True, slots=True)
class NewChild:
    index: int
    bot: str
    input: Any


@dataclass
class Effects:
    phases: list[NewPhase] = field(default_factory=list)
    children: list[NewChild] = field(default_factory=list)
    status: str | None = None  # the ticket's new status, when it changes
    reason: str | None = None
    result: Any = None
    error: str | None = None
    finished: bool = False


@dataclass
class Checkpoint:
    """What a run stores after each step (JSON in workflow_runs.state)."""

    cursor: str | None
    outputs: dict[str, Any] = field(default_factory=dict)
    rounds: dict[str, int] = field(default_factory=dict)
    wait: dict[str, Any] | None = None  # {"step", "kind", "phases": {key: id}, "children": [ids]}
    last: str | None = None
    trail: list[str] = field(default_factory=list)
    seq: int | None = None  # the next phase sequence number of this ticket (None: ask the database)

    def to_json(self) -> dict[str, Any]:
        return {"cursor": self.cursor, "outputs": self.outputs, "rounds": self.rounds, "wait": self.wait,
                "last": self.last, "trail": self.trail, "seq": self.seq}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Checkpoint:
        return cls(data.get("cursor"), dict(data.get("outputs") or {}), dict(data.get("rounds") or {}),
                   data.get("wait"), data.get("last"), list(data.get("trail") or []), data.get("seq"))

    @classmethod
    def initial(cls, definition: WorkflowDefinition) -> Checkpoint:
        return cls(cursor=definition.steps[0].id, seq=0)


BotResolver = Callable[[str | None, str | None], str]


@dataclass
class _Run:
    definition: WorkflowDefinition
    state: Checkpoint
    ticket: Mapping[str, Any]
    facts: Mapping[str, Fact]
    decision: Decision | None
    resolve_bot: BotResolver
    effects: Effects = field(default_factory=Effects)

    def scope(self, output: Any = None, **extra: Any) -> dict[str, Any]:
        return {"ticket": self.ticket, "params": self.definition.params, "run": {"rounds": self.state.rounds},
                "steps": {k: {"output": v} for k, v in self.state.outputs.items()}, "output": output, **extra}


def advance(definition: WorkflowDefinition, state: Checkpoint, *, ticket: Mapping[str, Any],
            facts: Mapping[str, Fact], decision: Decision | None, resolve_bot: BotResolver) -> Effects:
    """Move the run as far as it can go; ``state`` is updated in place. Facts are keyed by phase/child id."""
    run = _Run(definition, state, ticket, facts, decision, resolve_bot)
    for _ in range(_MAX_HOPS):
        if run.effects.finished:
            return run.effects
        if state.wait is not None:
            if not _settle_wait(run):
                return run.effects
            continue
        if state.cursor is None:
            _finish(run, "done", _last_output(run), outcome="")
            continue
        _enter(run, definition.step(state.cursor))
    raise RuntimeError(f"workflow {definition.name} took {_MAX_HOPS} steps without waiting")


def _last_output(run: _Run) -> Any:
    return run.state.outputs.get(run.state.last) if run.state.last else run.ticket.get("input")


def _goto(run: _Run, step_id: str | None) -> None:
    run.state.cursor = step_id


def _finish(run: _Run, status: str, result: Any, *, outcome: str, error: str | None = None) -> None:
    run.effects.status = status
    run.effects.result = {"outcome": outcome, "output": result} if outcome else result
    run.effects.error = error
    run.effects.reason = outcome or error
    run.effects.finished = True
    run.state.cursor = None


def _enter(run: _Run, step: Any) -> None:
    run.state.trail.append(step.id)
    if isinstance(step, TaskStep | VerifyStep) or (isinstance(step, DecisionStep) and step.asks_a_bot):
        _dispatch(run, step.id, [(step.id, step.bot, step.capability, step.input)])
    elif isinstance(step, DecisionStep):
        _decide(run, step, None)
    elif isinstance(step, ParallelStep):
        _dispatch(run, step.id, [(b.id, b.bot, b.capability, b.input) for b in step.branches], kind="parallel")
    elif isinstance(step, FanoutStep):
        _fan_out(run, step)
    elif isinstance(step, ApprovalStep):
        _gate(run, step)
    elif isinstance(step, LoopStep):
        used = run.state.rounds.get(step.id, 0)
        if used < step.max_rounds:
            run.state.rounds[step.id] = used + 1
            _goto(run, step.goto)
        else:
            _goto(run, step.exhausted)
    elif isinstance(step, EndStep):
        value = render(step.result, run.scope()) if step.result is not None else _last_output(run)
        _finish(run, step.status, value, outcome=step.outcome)


def _dispatch(run: _Run, step_id: str, work: list[tuple[str, str | None, str | None, Any]],
              kind: str = "phase") -> None:
    for key, bot, capability, template in work:
        value = render(template, run.scope()) if template is not None else run.ticket.get("input")
        run.effects.phases.append(NewPhase(key, step_id, run.resolve_bot(bot, capability), value))
    run.state.wait = {"step": step_id, "kind": kind, "phases": {}, "children": []}


def _fan_out(run: _Run, step: FanoutStep) -> None:
    items = resolve(step.items, run.scope())
    if not isinstance(items, list):
        _fail(run, step, f"step {step.id}: {step.items} is not a list (got {type(items).__name__})")
        return
    if len(items) > step.max_items:
        _fail(run, step, f"step {step.id}: {len(items)} items exceed max_items {step.max_items}")
        return
    bot = run.resolve_bot(step.bot, step.capability)
    for index, item in enumerate(items):
        value = render(step.input, run.scope(item=item, index=index)) if step.input is not None else item
        run.effects.children.append(NewChild(index, bot, value))
    run.state.wait = {"step": step.id, "kind": "fanout", "phases": {}, "children": []}
    if not items:
        run.state.wait = None
        _complete(run, step, [])


def _gate(run: _Run, step: ApprovalStep) -> None:
    if step.when is not None and not holds(step.when, run.scope()):
        _goto(run, run.definition.following(step.id))
        return
    run.state.wait = {"step": step.id, "kind": "approval", "phases": {}, "children": []}
    run.effects.status = "approval_required"
    run.effects.reason = step.prompt or f"approval needed at {step.id}"


def _settle_wait(run: _Run) -> bool:
    """True when what the run waited on is over (and the run moved on)."""
    wait = run.state.wait
    assert wait is not None
    step = run.definition.step(wait["step"])
    if wait["kind"] == "approval":
        return _settle_approval(run, step)
    ids: dict[str, str] = wait["phases"] if wait["kind"] != "fanout" else {
        str(i): child for i, child in enumerate(wait["children"])}
    facts = {key: run.facts.get(ident) for key, ident in ids.items()}
    if not ids or any(f is None or f.status not in ("done", "failed", "dead_letter", "cancelled")
                      for f in facts.values()):
        return False
    run.state.wait = None
    bad = {key: f for key, f in facts.items() if f is not None and f.status != "done"}
    if bad:
        key, fact = next(iter(sorted(bad.items())))
        where = step.id if key == step.id else f"{step.id}/{key}"
        _fail(run, step, f"step {where} {fact.status}: {fact.error or 'no error given'}", status=fact.status)
        return True
    if wait["kind"] == "phase":
        _complete(run, step, facts[step.id].output if facts[step.id] else None)  # type: ignore[union-attr]
    elif wait["kind"] == "parallel":
        outputs = {key: f.output for key, f in facts.items() if f is not None}
        run.state.outputs.update(outputs)
        _complete(run, step, outputs)
    else:
        _complete(run, step, [facts[str(i)].output for i in range(len(ids))])  # type: ignore[union-attr]
    return True


def _settle_approval(run: _Run, step: Any) -> bool:
    if run.decision is None:
        return False
    decision, run.decision = run.decision, None
    run.state.wait = None
    run.state.outputs[step.id] = {"approved": decision.approved, "by": decision.by, "note": decision.note}
    run.effects.status = "in_progress"
    if decision.approved:
        _goto(run, run.definition.following(step.id))
    elif step.on_reject is not None:
        _goto(run, step.on_reject)
    else:
        _finish(run, "cancelled", None, outcome="", error=f"rejected at {step.id} by {decision.by}: "
                                                          f"{decision.note or 'no reason given'}")
    return True


def _complete(run: _Run, step: Any, output: Any) -> None:
    run.state.outputs[step.id] = output
    run.state.last = step.id
    if isinstance(step, VerifyStep):
        passed = holds(step.check, run.scope(output=output))
        _goto(run, run.definition.following(step.id) if passed else step.on_fail)
    elif isinstance(step, DecisionStep):
        _decide(run, step, output)
    else:
        _goto(run, run.definition.following(step.id))


def _decide(run: _Run, step: DecisionStep, output: Any) -> None:
    scope = run.scope(output=output)
    for case in step.cases:
        if holds(case.when, scope):
            _goto(run, case.goto)
            return
    _goto(run, step.default)


def _fail(run: _Run, step: Any, error: str, *, status: str = "failed") -> None:
    on_fail = getattr(step, "on_fail", None)
    run.state.outputs[step.id] = {"error": error}
    if on_fail is not None:
        _goto(run, on_fail)
        return
    final = "dead_letter" if status == "dead_letter" else "failed"
    _finish(run, final, None, outcome="", error=error)
