"""Definitions, expressions, the transition table and the engine's decisions, without I/O."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from oshal.errors import Conflict, Invalid
from oshal.transitions import TRANSITIONS
from oshal.types import TicketStatus
from oshal.workflows.definition import Condition, load_definition_text, parse_definition
from oshal.workflows.engine import Checkpoint, Decision, Fact, advance
from oshal.workflows.expressions import holds, render, resolve
from oshal.workflows.registry import load_builtin
from oshal.workflows.states import ACTIONS, Action, check_transition, target_of

REPO = Path(__file__).resolve().parents[2]


def resolver(bot: str | None, capability: str | None) -> str:
    return bot or f"bot-for-{capability}"


class Driver:
    """Runs a definition to completion with scripted bot outputs, the way the runner would."""

    def __init__(self, document: dict[str, Any], ticket_input: Any = None) -> None:
        self.definition = parse_definition(document)
        self.state = Checkpoint.initial(self.definition)
        self.ticket = {"id": "t-1", "input": ticket_input}
        self.facts: dict[str, Fact] = {}
        self.dispatched: list[tuple[str, str, Any]] = []
        self.n = 0

    def step(self, decision: Decision | None = None) -> Any:
        effects = advance(self.definition, self.state, ticket=self.ticket, facts=self.facts, decision=decision,
                          resolve_bot=resolver)
        for phase in effects.phases:
            self.n += 1
            ident = f"p{self.n}"
            self.state.wait["phases"][phase.key] = ident  # type: ignore[index]
            self.dispatched.append((ident, phase.step, phase.input))
        for child in effects.children:
            self.n += 1
            self.state.wait["children"].append(f"c{self.n}")  # type: ignore[index]
            self.dispatched.append((f"c{self.n}", "child", child.input))
        return effects

    def finish(self, ident: str, output: Any, status: str = "done", error: str | None = None) -> None:
        self.facts[ident] = Fact(status, output, error)


def test_every_builtin_definition_loads() -> None:
    names = {d.name for d in load_builtin(REPO / "workflows")}
    assert names == {"build", "ticket", "video"}


@pytest.mark.parametrize(("document", "problem"), [
    ({"name": "x", "steps": [{"id": "a", "kind": "task"}]}, "exactly one of bot or capability"),
    ({"name": "x", "steps": [{"id": "a", "kind": "task", "bot": "b", "next": "zz"}]}, "unknown step 'zz'"),
    ({"name": "x", "steps": [{"id": "a", "kind": "task", "bot": "b"}, {"id": "a", "kind": "end"}]}, "repeated: a"),
    ({"name": "x", "steps": [{"id": "a", "kind": "task", "bot": "b"},
                             {"id": "b", "kind": "decision", "cases": [{"when": {"path": "steps.a.output"},
                                                                        "goto": "a"}], "default": "a"}]},
     "only a loop step may jump back"),
    ({"name": "x", "steps": [{"id": "a", "kind": "task", "bot": "b"},
                             {"id": "l", "kind": "loop", "goto": "a", "max_rounds": 2, "exhausted": "a"}]},
     "only a loop step may jump back"),
    ({"name": "x", "steps": [{"id": "a", "kind": "task", "bot": "b", "input": "${steps.nope.output}"}]},
     "names no step"),
    ({"name": "x", "steps": [{"id": "a", "kind": "task", "bot": "b", "input": "${secrets.key}"}]},
     "must start with one of"),
    ({"name": "x", "steps": [{"id": "a", "kind": "loop", "goto": "a", "max_rounds": 0, "exhausted": "a"}]},
     "max_rounds"),
    ({"name": "Bad Name", "steps": [{"id": "a", "kind": "end"}]}, "name"),
    ({"name": "x", "input_schema": {"type": "nope"}, "steps": [{"id": "a", "kind": "end"}]},
     "input_schema is not a valid JSON Schema"),
])
def test_invalid_definitions_are_refused_with_the_reason(document: dict[str, Any], problem: str) -> None:
    with pytest.raises(Invalid) as caught:
        parse_definition(document)
    assert problem in caught.value.message


def test_yaml_errors_are_reported() -> None:
    with pytest.raises(Invalid, match="not valid YAML"):
        load_definition_text("name: [unclosed")


def test_templates_keep_types_and_render_text() -> None:
    scope = {"ticket": {"input": {"n": 3, "tags": ["a", "b"]}}, "steps": {"a": {"output": {"ok": True}}}}
    assert render("${ticket.input.n}", scope) == 3
    assert render({"x": ["${ticket.input.tags}"]}, scope) == {"x": [["a", "b"]]}
    assert render("n=${ticket.input.n}, ok=${steps.a.output.ok}", scope) == "n=3, ok=true"
    assert resolve("ticket.input.tags|length", scope) == 2
    assert resolve("ticket.input.tags.1", scope) == "b"
    assert resolve("steps.missing.output", scope) is None


@given(st.one_of(st.integers(), st.text(), st.none(), st.lists(st.integers())),
       st.one_of(st.integers(), st.text(), st.none(), st.lists(st.integers()), st.dictionaries(st.text(), st.none())))
def test_conditions_never_raise_on_run_data(actual: Any, expected: Any) -> None:
    for op in ("eq", "ne", "gt", "ge", "lt", "le", "in", "not_in", "exists", "missing", "truthy", "falsy"):
        holds(Condition(path="v", op=op, value=expected), {"v": actual})  # type: ignore[arg-type]


def test_the_transition_table_and_actions_agree() -> None:
    for action, moves in ACTIONS.items():
        for source, target in moves.items():
            if action is Action.REJECT and source is TicketStatus.APPROVAL_REQUIRED:
                continue  # the run decides where a rejection goes (in_progress, then its on_reject)
            assert target in TRANSITIONS[source], (action, source, target)
    assert not TRANSITIONS[TicketStatus.DONE] and not TRANSITIONS[TicketStatus.CANCELLED]
    with pytest.raises(Conflict, match="from done it may go to: none"):
        check_transition("t", "done", "in_progress")
    with pytest.raises(Conflict) as caught:
        target_of(Action.RESUME, "t", "in_progress")
    assert caught.value.hint is not None and "pause" in caught.value.hint


def test_a_revision_loop_is_bounded_and_then_takes_its_exit() -> None:
    driver = Driver({"name": "rev", "steps": [
        {"id": "work", "kind": "task", "bot": "w"},
        {"id": "check", "kind": "verify", "bot": "r", "check": {"path": "output.ok", "op": "truthy"},
         "on_fail": "again"},
        {"id": "good", "kind": "end"},
        {"id": "again", "kind": "loop", "goto": "work", "max_rounds": 2, "exhausted": "give_up"},
        {"id": "give_up", "kind": "end", "status": "escalated", "outcome": "stuck"},
    ]})
    effects = driver.step()
    for _ in range(3):
        work = driver.dispatched[-1][0]
        driver.finish(work, {"draft": True})
        driver.step()
        driver.finish(driver.dispatched[-1][0], {"ok": False})
        effects = driver.step()
    assert effects.finished and effects.status == "escalated" and effects.result["outcome"] == "stuck"
    assert [step for _, step, _ in driver.dispatched].count("work") == 3  # 1 + max_rounds


def test_approval_gate_waits_then_follows_the_decision() -> None:
    document = {"name": "gate", "steps": [
        {"id": "gate", "kind": "approval", "prompt": "ok?", "on_reject": "no"},
        {"id": "yes", "kind": "end", "outcome": "approved"},
        {"id": "no", "kind": "end", "status": "failed", "outcome": "rejected"},
    ]}
    waiting = Driver(document)
    effects = waiting.step()
    assert effects.status == "approval_required" and not effects.finished and effects.reason == "ok?"
    assert not waiting.step().finished  # nothing moves without a decision
    assert waiting.step(Decision(True, "alice")).result["outcome"] == "approved"
    rejected = Driver(document)
    rejected.step()
    assert rejected.step(Decision(False, "bob", "no budget")).status == "failed"


def test_fanout_creates_one_child_per_item_and_joins_in_order() -> None:
    driver = Driver({"name": "fan", "steps": [
        {"id": "each", "kind": "fanout", "items": "ticket.input.items", "bot": "w", "input": {"x": "${item}"}},
    ]}, {"items": [1, 2, 3]})
    driver.step()
    children = [ident for ident, step, _ in driver.dispatched if step == "child"]
    assert [value for _, _, value in driver.dispatched] == [{"x": 1}, {"x": 2}, {"x": 3}]
    for n, child in enumerate(reversed(children)):
        driver.finish(child, {"n": 3 - n})
    effects = driver.step()
    assert effects.finished and effects.result == [{"n": 1}, {"n": 2}, {"n": 3}]


def test_a_failed_step_fails_the_ticket_unless_it_names_where_to_go() -> None:
    failing = Driver({"name": "f", "steps": [{"id": "a", "kind": "task", "bot": "w"}]})
    failing.step()
    failing.finish("p1", None, "dead_letter", "no result after 3 dispatches")
    effects = failing.step()
    assert effects.status == "dead_letter" and "step a dead_letter" in (effects.error or "")
    routed = Driver({"name": "f", "steps": [{"id": "a", "kind": "task", "bot": "w", "on_fail": "b"},
                                            {"id": "ok", "kind": "end"},
                                            {"id": "b", "kind": "end", "status": "escalated"}]})
    routed.step()
    routed.finish("p1", None, "failed", "boom")
    assert routed.step().status == "escalated"


def test_a_checkpoint_survives_json_round_trips_mid_run() -> None:
    driver = Driver({"name": "two", "steps": [{"id": "a", "kind": "task", "bot": "w"},
                                              {"id": "b", "kind": "task", "bot": "w", "input": "${steps.a.output}"}]})
    driver.step()
    driver.state = Checkpoint.from_json(driver.state.to_json())
    driver.finish("p1", {"v": 1})
    driver.step()
    assert driver.dispatched[-1] == ("p2", "b", {"v": 1})
    driver.state = Checkpoint.from_json(driver.state.to_json())
    assert not driver.step().phases  # advancing again with nothing new dispatches nothing twice


def test_an_ai_decision_asks_a_bot_and_branches_on_its_answer() -> None:
    driver = Driver({"name": "ai", "steps": [
        {"id": "route", "kind": "decision", "capability": "triage", "input": {"text": "${ticket.input.text}"},
         "cases": [{"when": {"path": "output.label", "op": "eq", "value": "incident"}, "goto": "page"}],
         "default": "queue"},
        {"id": "page", "kind": "end", "status": "escalated", "outcome": "paged"},
        {"id": "queue", "kind": "end", "outcome": "queued"},
    ]}, {"text": "site down"})
    driver.step()
    assert driver.dispatched == [("p1", "route", {"text": "site down"})]
    driver.finish("p1", {"label": "incident"})
    effects = driver.step()
    assert effects.status == "escalated" and effects.result["outcome"] == "paged"
