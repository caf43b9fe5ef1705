"""Workflow definitions: declarative YAML validated into frozen models, then checked as a graph.

A definition is an ordered list of steps. Execution falls through to the next step unless a step names
where to go (``next``, a decision's cases, a loop's ``goto``). A jump backwards is only allowed from a
``loop`` step, whose ``max_rounds`` bounds it, so every run terminates.
"""

from __future__ import annotations

import hashlib
import re
from typing import Annotated, Any, Literal

import jsonschema
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from oshal import jsontext
from oshal.errors import Invalid

STEP_ID = r"^[a-z][a-z0-9_]{0,39}$"
WORKFLOW_NAME = r"^[a-z][a-z0-9-]{0,39}$"
END_STATUSES = ("done", "customer_action", "escalated", "failed")
CONDITION_OPS = ("eq", "ne", "gt", "ge", "lt", "le", "in", "not_in", "exists", "missing", "truthy", "falsy")
_REFERENCE = re.compile(r"\$\{([^}]+)\}")
_ROOTS = ("ticket", "steps", "params", "output", "item", "index", "run")

StepId = Annotated[str, Field(pattern=STEP_ID)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Condition(_Frozen):
    """``path`` is a dotted reference such as ``steps.review.output.verdict`` (``|length`` for a size)."""

    path: str = Field(min_length=1, max_length=200)
    op: Literal["eq", "ne", "gt", "ge", "lt", "le", "in", "not_in", "exists", "missing", "truthy", "falsy"] = "eq"
    value: Any = None


class Case(_Frozen):
    when: Condition
    goto: StepId


class _Step(_Frozen):
    id: StepId
    title: str = Field(default="", max_length=200)
    next: StepId | None = Field(default=None, description="Where to go after this step; default: the next one.")


class _Addressed(_Frozen):
    """Work sent to one bot, named directly or by a capability that the registry resolves."""

    bot: str | None = None
    capability: str | None = None
    input: Any = Field(default=None, description="Template for the phase input; default: the ticket input.")

    @model_validator(mode="after")
    def _one_address(self) -> _Addressed:
        if (self.bot is None) == (self.capability is None):
            raise ValueError("give exactly one of bot or capability")
        return self


class TaskStep(_Step, _Addressed):
    kind: Literal["task"]
    on_fail: StepId | None = Field(default=None, description="Where a failed phase goes; default: the ticket fails.")


class VerifyStep(_Step, _Addressed):
    """A task whose output must pass ``check``; otherwise the run goes to ``on_fail`` (usually a loop)."""

    kind: Literal["verify"]
    check: Condition
    on_fail: StepId


class DecisionStep(_Step):
    """Branch on a field of an earlier result; with a bot or capability, that bot decides (an AI decision)."""

    kind: Literal["decision"]
    cases: tuple[Case, ...] = Field(min_length=1, max_length=20)
    default: StepId
    bot: str | None = None
    capability: str | None = None
    input: Any = None

    @model_validator(mode="after")
    def _at_most_one_address(self) -> DecisionStep:
        if self.bot is not None and self.capability is not None:
            raise ValueError("give at most one of bot or capability")
        return self

    @property
    def asks_a_bot(self) -> bool:
        return self.bot is not None or self.capability is not None


class ApprovalStep(_Step):
    """Suspend the run in ``approval_required`` until an operator approves or rejects."""

    kind: Literal["approval"]
    prompt: str = Field(default="", max_length=500)
    when: Condition | None = Field(default=None, description="Only stop when this holds; otherwise pass through.")
    on_reject: StepId | None = Field(default=None, description="Where a rejection goes; default: cancel the ticket.")


class Branch(_Addressed):
    id: StepId


class ParallelStep(_Step):
    """Run every branch at once; continue when all are done (their outputs keyed by branch id)."""

    kind: Literal["parallel"]
    branches: tuple[Branch, ...] = Field(min_length=2, max_length=16)
    on_fail: StepId | None = None


class FanoutStep(_Step, _Addressed):
    """One child ticket per item of a list from an earlier result; continue when every child is done."""

    kind: Literal["fanout"]
    items: str = Field(min_length=1, max_length=200, description="Reference to a list, e.g. steps.plan.output.units.")
    max_items: int = Field(default=16, ge=1, le=100)
    on_fail: StepId | None = None


class LoopStep(_Step):
    """A bounded revision loop: jump back to ``goto`` at most ``max_rounds`` times, then go to ``exhausted``."""

    kind: Literal["loop"]
    goto: StepId
    max_rounds: int = Field(ge=1, le=10)
    exhausted: StepId


class EndStep(_Step):
    kind: Literal["end"]
    status: Literal["done", "customer_action", "escalated", "failed"] = "done"
    outcome: str = Field(default="", max_length=80, description="A label for the result, e.g. solution_proposed.")
    result: Any = Field(default=None, description="Template for the ticket result; default: the last output.")


Step = Annotated[
    TaskStep | VerifyStep | DecisionStep | ApprovalStep | ParallelStep | FanoutStep | LoopStep | EndStep,
    Field(discriminator="kind"),
]
WORK_KINDS = ("task", "verify", "decision", "parallel", "fanout")


class WorkflowDefinition(_Frozen):
    name: str = Field(pattern=WORKFLOW_NAME)
    version: int = Field(default=1, ge=1)
    title: str = Field(default="", max_length=200)
    description: str = Field(default="", max_length=2000)
    application: str = Field(default="", max_length=60, pattern=r"^[\w .-]*$",
                             description="The application this flow belongs to (the business view draws each "
                                         "application's flows); empty for the platform's own.")
    params: dict[str, Any] = Field(default_factory=dict)
    input_schema: dict[str, Any] | None = Field(default=None, description="JSON Schema the ticket input must meet.")
    steps: tuple[Step, ...] = Field(min_length=1, max_length=100)

    @model_validator(mode="after")
    def _graph(self) -> WorkflowDefinition:
        if self.input_schema is not None:
            try:
                jsonschema.Draft202012Validator.check_schema(self.input_schema)
            except jsonschema.SchemaError as e:
                raise ValueError(f"input_schema is not a valid JSON Schema: {e.message[:200]}") from e
        check_graph(self)
        return self

    def step(self, step_id: str) -> Step:
        for step in self.steps:
            if step.id == step_id:
                return step
        raise KeyError(step_id)

    def index(self, step_id: str) -> int:
        return next(i for i, step in enumerate(self.steps) if step.id == step_id)

    def following(self, step_id: str) -> str | None:
        """The step after ``step_id`` in fall-through order (None: the end of the list)."""
        current = self.step(step_id)
        if current.next is not None:
            return current.next
        i = self.index(step_id)
        return self.steps[i + 1].id if i + 1 < len(self.steps) else None

    def input_problem(self, value: Any) -> str | None:
        """Why ``value`` does not fit this type's input_schema ("path: message"), or None when it fits."""
        if self.input_schema is None:
            return None
        validator = jsonschema.Draft202012Validator(self.input_schema)
        error = min(validator.iter_errors(value), key=lambda e: list(e.absolute_path), default=None)
        if error is None:
            return None
        return f"{'/'.join(str(p) for p in error.absolute_path) or 'input'}: {error.message}"

    def digest(self) -> str:
        return hashlib.sha256(canonical_json(self.to_document()).encode()).hexdigest()

    def to_document(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_defaults=True, exclude={"version"}) | {"version": self.version}


def canonical_json(value: Any) -> str:
    return jsontext.canonical(value, ascii_only=False)


def _targets(step: Any) -> list[tuple[str, str]]:
    """(field, target step id) for every jump a step can make."""
    out = [("next", step.next)] if step.next else []
    for name in ("on_fail", "default", "goto", "exhausted", "on_reject"):
        target = getattr(step, name, None)
        if target:
            out.append((name, target))
    out.extend(("cases", case.goto) for case in getattr(step, "cases", ()))
    return out


def _references(value: Any) -> list[str]:
    if isinstance(value, str):
        return [m.group(1).strip() for m in _REFERENCE.finditer(value)]
    if isinstance(value, dict):
        return [ref for item in value.values() for ref in _references(item)]
    if isinstance(value, list | tuple):
        return [ref for item in value for ref in _references(item)]
    return []


def _paths(step: Any) -> list[str]:
    paths = _references(getattr(step, "input", None)) + _references(getattr(step, "result", None))
    for branch in getattr(step, "branches", ()):
        paths += _references(branch.input)
    for name in ("check", "when"):
        condition = getattr(step, name, None)
        if condition is not None:
            paths.append(condition.path)
            paths += _references(condition.value)
    for case in getattr(step, "cases", ()):
        paths.append(case.when.path)
        paths += _references(case.when.value)
    if isinstance(getattr(step, "items", None), str):
        paths.append(step.items)
    return paths


def check_graph(definition: WorkflowDefinition) -> None:
    """Ids unique, every jump lands on a step, backward jumps only from loops, references well rooted."""
    ids = [step.id for step in definition.steps]
    branch_ids = [b.id for step in definition.steps for b in getattr(step, "branches", ())]
    duplicates = sorted({i for i in ids + branch_ids if (ids + branch_ids).count(i) > 1})
    if duplicates:
        raise ValueError(f"step ids must be unique; repeated: {', '.join(duplicates)}")
    position = {step_id: i for i, step_id in enumerate(ids)}
    for i, step in enumerate(definition.steps):
        for field, target in _targets(step):
            if target not in position:
                raise ValueError(f"step {step.id!r}: {field} names unknown step {target!r}")
            if position[target] <= i and not (step.kind == "loop" and field == "goto"):
                raise ValueError(f"step {step.id!r}: {field} jumps back to {target!r}; only a loop step may jump "
                                 "back (its max_rounds bounds the revisions)")
            if step.kind == "loop" and field == "goto" and position[target] >= i:
                raise ValueError(f"loop {step.id!r} must jump back to an earlier step, not {target!r}")
        for path in _paths(step):
            _check_path(step.id, path, {*ids, *branch_ids})


def _check_path(step_id: str, path: str, outputs: set[str]) -> None:
    parts = path.split("|")[0].strip().split(".")
    if parts[0] not in _ROOTS:
        raise ValueError(f"step {step_id!r}: reference {path!r} must start with one of {', '.join(_ROOTS)}")
    if parts[0] == "steps" and (len(parts) < 2 or parts[1] not in outputs):
        raise ValueError(f"step {step_id!r}: reference {path!r} names no step of this workflow")


def parse_definition(document: Any, *, source: str = "definition") -> WorkflowDefinition:
    """Validate a parsed document; every problem is reported with its location."""
    try:
        return WorkflowDefinition.model_validate(document)
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'definition'}: {err['msg']}" for err in e.errors()[:10]
        )
        raise Invalid(f"{source} is not a valid workflow: {problems}",
                      hint="see workflows/README.md for the step kinds and their fields") from e


def load_definition_text(text: str, *, source: str = "definition") -> WorkflowDefinition:
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise Invalid(f"{source} is not valid YAML: {e}") from e
    return parse_definition(document, source=source)


def definition_schema() -> dict[str, Any]:
    """The JSON Schema of a definition document (used for structured output by model-backed generators)."""
    return WorkflowDefinition.model_json_schema()
