"""The offline workflow generator: a plain-English process description mapped onto the known step kinds.

Deterministic and model-free. The description is split into ordered clauses; each clause is matched against
the keyword tables below and becomes one block of steps:

- an escalation ("escalate", "hand off to a human") that comes last ends the run as ``escalated``; anywhere
  else, or worded as a condition ("if it fails, escalate"), it becomes the failure path of the block before
  it (of every block when nothing comes before it);
- "for each" / "per item" / "each of" becomes a ``fanout`` over a list from the latest work step:
  ``steps`` after a plan, ``units`` after a build, ``items`` otherwise (``ticket.input.items`` when first);
- "A and B in parallel" becomes a ``parallel`` step with one branch per action;
- a review or test with "until" / "revise" / "iterate" becomes a review task, a ``decision`` on its output
  and a ``loop`` back to the latest work step (rounds from "at most 3 rounds", default 2, clamped 1..10);
- "approve" / "sign-off" becomes an ``approval`` step;
- a plain review or test becomes a ``verify`` step (reviews pass on ``verdict == approve``, tests on ``passed``);
- anything else becomes a ``task``.

Checks that fail and exhausted loops go to a shared ``escalate`` end. Work is addressed by capability; with a
fleet map, by capability only when some bot has it, else by a bot whose name matches, else ``DEFAULT_BOT``.
The first step gets the ticket input; later steps get the ticket text and the latest work output.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from oshal.errors import Invalid
from oshal.workflows.definition import (
    ApprovalStep,
    Condition,
    DecisionStep,
    EndStep,
    FanoutStep,
    LoopStep,
    ParallelStep,
    Step,
    TaskStep,
    VerifyStep,
    WorkflowDefinition,
    parse_definition,
)

__all__ = ["DEFAULT_BOT", "describe_definition", "diff_definitions", "generate_definition", "split_clauses"]

DEFAULT_BOT = "echo"  # the demo fleet's smallest worker; it answers any step no other bot can
DEFAULT_ROUNDS = 2
EXAMPLE = ("Plan the work, then build it. Review it until approved, at most 3 rounds. "
           "Get a manager's approval, otherwise escalate to a human.")

# Regex fragments, matched case-insensitively between word boundaries; the earliest match in a clause wins.
CAPABILITY_WORDS: dict[str, tuple[str, ...]] = {
    "plan": (r"plan\w*", r"outlin\w*", r"break\s+(?:it\s+|them\s+)?down", r"decompos\w*", r"design\w*"),
    "summarize": (r"summar\w*", r"condens\w*", r"recap\w*", r"digest\w*"),
    "classify": (r"classif\w*", r"triag\w*", r"categori[sz]\w*", r"label\w*", r"rout(?:e|es|ed|ing)",
                 r"prioriti[sz]\w*"),
    "extract": (r"extract\w*", r"pull\s+out", r"pars(?:e|es|ed|ing)", r"collect\w*", r"gather\w*", r"find\w*"),
    "build": (r"build\w*", r"implement\w*", r"writ(?:e|es|ing)", r"draft\w*", r"cod(?:e|es|ing)", r"creat\w*",
              r"develop\w*", r"fix\w*", r"compos\w*", r"generat\w*", r"prepar\w*"),
}
CHECK_WORDS: dict[str, tuple[str, ...]] = {
    "review": (r"review\w*", r"check\w*", r"proofread\w*", r"audit\w*", r"inspect\w*", r"critiqu\w*",
               r"assess\w*", r"evaluat\w*"),
    "test": (r"test\w*", r"qa", r"verif\w*", r"validat\w*"),
}
# What a check's output must show to pass: (field, condition op, value).
CHECK_PASSES: dict[str, tuple[str, str, Any]] = {
    "review": ("verdict", "eq", "approve"),
    "test": ("passed", "truthy", None),
}
FANOUT_LIST_FIELD: dict[str, str] = {"plan": "steps", "build": "units"}  # anything else: "items"
APPROVAL_WORDS = (r"approv(?:e|es|al|als)", r"get\s+(?:\w+\s+){0,3}approved", r"sign(?:s|ed)?[\s-]*off",
                  r"authori[sz](?:e|ation)", r"permission")
ESCALATION_WORDS = (r"escalat\w*", r"hand(?:s|ed)?(?:[\s-]+\w+)?[\s-]+(?:off|over)", r"handoff",
                    r"pass(?:es)?\s+(?:it\s+)?(?:on\s+)?to\s+(?:a|the)\s+human")
PARALLEL_WORDS = (r"in\s+parallel", r"at\s+the\s+same\s+time", r"simultaneous\w*", r"concurrent\w*")
FANOUT_WORDS = (r"for\s+(?:each|every)", r"per\s+(?:item|unit|step|entry)", r"each\s+of", r"one\s+by\s+one")
REVISION_WORDS = (r"revis\w*", r"until", r"iterat\w*", r"rework\w*", r"repeat\w*")
CONDITION_WORDS = (r"if", r"otherwise", r"else", r"unless", r"in\s+case", r"fail\w*", r"reject\w*")
FILLER_WORDS = (r"first(?:ly)?", r"then", r"next", r"finally", r"lastly", r"afterwards?", r"after\s+that", r"and",
                r"also", r"please", r"we", r"should", r"must", r"will", r"to")
NUMBER_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
                "nine": 9, "ten": 10}
STOP_WORDS = frozenset({
    "a", "an", "the", "it", "its", "this", "that", "these", "those", "them", "their", "our", "your", "my", "all",
    "each", "every", "to", "of", "for", "with", "in", "on", "by", "from", "into", "up", "out", "and", "or", "then",
    "until", "at", "as", "same", "time", "parallel", "simultaneously", "once", "again", "is", "are", "be", "there",
    "some", "any", "both", "most", "more", "least", "per", "so", "if", "approve", "approves", "approved", "pass",
    "passes", "passed", "round", "rounds", "times", "max", "maximum", "no", "than", *NUMBER_WORDS,
})


def _words(fragments: Iterable[str]) -> re.Pattern[str]:
    return re.compile(r"\b(?:" + "|".join(fragments) + r")\b", re.IGNORECASE)


_CAPABILITIES = {key: _words(fragments) for key, fragments in CAPABILITY_WORDS.items()}
_CHECKS = {key: _words(fragments) for key, fragments in CHECK_WORDS.items()}
_APPROVAL = _words(APPROVAL_WORDS)
_APPROVED = _words([r"approv\w*"])
_ESCALATION = _words(ESCALATION_WORDS)
_PARALLEL = _words(PARALLEL_WORDS)
_FANOUT = _words(FANOUT_WORDS)
_REVISION = _words(REVISION_WORDS)
_CONDITION_START = re.compile(r"\s*" + _words(CONDITION_WORDS).pattern, re.IGNORECASE)
_CONDITION = _words(CONDITION_WORDS)
_FILLER = re.compile(r"^(?:" + _words(FILLER_WORDS).pattern + r"[\s,:]*)+", re.IGNORECASE)
_ROUNDS = re.compile(
    r"\b(?:(?:at\s+most|up\s+to|max(?:imum)?(?:\s+of)?|no\s+more\s+than|limit(?:ed)?\s+to)\s+(?P<limit>\d+|{n})"
    r"|(?P<count>\d+|{n})\s+(?:rounds?|times|iterations?|revisions?|attempts?|tries|passes))\b"
    .replace("{n}", "|".join(NUMBER_WORDS)), re.IGNORECASE)

_LIST_MARKER_AT_LINE_START = re.compile(r"(?m)^\s*\d{1,2}[.)]\s+")
_LIST_MARKER_ANYWHERE = re.compile(r"(?:^|\s)\d{1,2}[.)]\s+")
_HARD_BREAK = re.compile(r"\s*(?:[;\n]|->|=>|→)\s*|(?<=[.!?])\s+")
_THEN = re.compile(r"\s*,?\s*\b(?:and\s+)?then\b\s*", re.IGNORECASE)
_COMMA_AND = re.compile(r"\s*,\s*and\b\s*", re.IGNORECASE)
_COMMA_OR_AND = re.compile(r"(\s*,\s*|\s+and\s+)", re.IGNORECASE)
_TRAILING_CONNECTIVES = re.compile(r"(?:[\s,;:]|\b(?:and|or|otherwise|else|then)\b)+$", re.IGNORECASE)

# Stand-ins for jump targets only known once every block is built; objects, so no clause text can equal one.
_AFTER = object()
_ESCALATE = object()
DONE_ID = "done"
ESCALATE_ID = "escalate"


def generate_definition(description: str, *, name: str | None = None,
                        bots: Mapping[str, Sequence[str]] | None = None) -> WorkflowDefinition:
    """Map ``description`` onto steps; ``bots`` (bot name → capabilities) addresses them to the live fleet."""
    clauses = split_clauses(description)
    if not clauses:
        raise Invalid("the workflow description has no steps to generate from",
                      hint=f"describe the process in order, e.g. {EXAMPLE!r}")
    builder = _Builder(bots)
    for position, clause in enumerate(clauses):
        builder.add(clause, is_last=position == len(clauses) - 1)
    document = {
        "name": name if name is not None else _workflow_name(clauses[0]),
        "description": " ".join(description.split())[:2000],
        "steps": builder.finish(),
    }
    return parse_definition(document, source="generated workflow")


def split_clauses(description: str) -> list[str]:
    """The description's ordered clauses, list markers and filler words ("then", "finally") removed."""
    text = description.strip()
    numbered = re.match(r"1[.)]\s", text) is not None
    text = (_LIST_MARKER_ANYWHERE if numbered else _LIST_MARKER_AT_LINE_START).sub("\n", text)
    pieces = [piece for part in _HARD_BREAK.split(text) for piece in _THEN.split(part)]
    clauses = (_clean(clause) for piece in pieces for clause in _sequence(piece))
    return [clause for clause in clauses if clause]


def _sequence(piece: str) -> list[str]:
    """Split one piece on ", and", and on "," / "and" where an action verb follows ("summarize and classify")."""
    if _PARALLEL.search(piece) or _FANOUT.search(piece):
        return [piece]
    out: list[str] = []
    for part in _COMMA_AND.split(piece):
        if _REVISION.search(part) or _CONDITION_START.match(part):
            out.append(part)
            continue
        tokens = _COMMA_OR_AND.split(part)
        out.append(tokens[0])
        for joiner, segment in zip(tokens[1::2], tokens[2::2], strict=True):
            if _starts_with_action(segment):
                out.append(segment)
            else:
                out[-1] += joiner + segment
    return out


def _starts_with_action(text: str) -> bool:
    found = _earliest(_clean(text), {**_CAPABILITIES, **_CHECKS, "approval": _APPROVAL})
    return found is not None and found[1].start() == 0


def _clean(clause: str) -> str:
    text = _FILLER.sub("", clause.strip(" \t,.!?:-")).strip(" \t,.!?:-")
    return text if re.search(r"[^\W\d_]", text) else ""  # any letter, in any script


def _earliest(text: str, patterns: Mapping[str, re.Pattern[str]]) -> tuple[str, re.Match[str]] | None:
    found = [(match.start(), order, key, match) for order, (key, pattern) in enumerate(patterns.items())
             if (match := pattern.search(text))]
    if not found:
        return None
    _, _, key, match = min(found)  # the earliest; on a tie, the first pattern
    return key, match


def _rounds(clause: str) -> int:
    match = _ROUNDS.search(clause)
    if match is None:
        return DEFAULT_ROUNDS
    word = (match.group("limit") or match.group("count")).lower()
    return min(max(int(word) if word.isdigit() else NUMBER_WORDS[word], 1), 10)


def _slug(text: str, separator: str, limit: int) -> str:
    slug = re.sub(r"[^a-z0-9]+", separator, text.lower()).strip(separator)
    return slug[:limit].rstrip(separator)


def _workflow_name(first_clause: str) -> str:
    slug = _slug(" ".join(first_clause.split()[:5]), "-", 40) or "workflow"
    return slug if slug[0].isalpha() else _slug(f"wf-{slug}", "-", 40)


@dataclass(slots=True)
class _Block:
    """The steps one clause became, and where a failure in them can be sent (step, field)."""

    steps: list[dict[str, Any]]
    failure_hook: tuple[dict[str, Any], str] | None


@dataclass(frozen=True, slots=True)
class _Work:
    step_id: str
    capability: str | None


class _Builder:
    def __init__(self, bots: Mapping[str, Sequence[str]] | None) -> None:
        self.bots = bots
        # A fleet capability named in the text ("decompose") is a verb too, and beats a table synonym (plan).
        fleet_only = {c for caps in (bots or {}).values() for c in caps} - set(_CAPABILITIES) - set(_CHECKS)
        self.verbs = {c: _words([re.escape(c) + r"\w*"]) for c in sorted(fleet_only)} | _CAPABILITIES
        self.used = {DONE_ID, ESCALATE_ID}
        self.blocks: list[_Block] = []
        self.work: _Work | None = None
        self.escalate_after: list[int | None] = []  # block index whose failures escalate; None: every block
        self.ends_escalated = False

    def add(self, clause: str, *, is_last: bool) -> None:
        escalation = _ESCALATION.search(clause)
        if escalation is None:
            self._add_work(clause)
            return
        before = _TRAILING_CONNECTIVES.sub("", clause[: escalation.start()]).strip()
        if before and not _CONDITION_START.match(before):
            self._add_work(before)
            self.escalate_after.append(len(self.blocks) - 1)
        elif is_last and not before and not _CONDITION.search(clause[escalation.end():]):
            self.ends_escalated = True
        else:
            self.escalate_after.append(len(self.blocks) - 1 if self.blocks else None)

    def _add_work(self, clause: str) -> None:
        check = self._check(clause)
        if _FANOUT.search(clause):
            self._fanout(clause)
        elif _PARALLEL.search(clause) and len(actions := _parallel_actions(clause)) >= 2:
            self._parallel(clause, actions)
        elif revision := self._revision(clause):
            work_part, review_part, revision_check = revision
            if work_part:
                self._task(work_part)
            if self.work is None:
                self._verify(review_part, revision_check)
            else:
                self._review_loop(review_part, revision_check, self.work)
        elif _APPROVAL.search(clause):
            step = {"id": self._unique("approval"), "kind": "approval", "title": clause[:200], "prompt": clause[:500]}
            self.blocks.append(_Block([step], (step, "on_reject")))
        elif check:
            self._verify(clause, check)
        else:
            self._task(clause)

    def _revision(self, clause: str) -> tuple[str, str, str] | None:
        """(work part, review part, check kind) of "draft it and revise until approved"; None: no revision loop.

        "until approved" implies a review; a work verb before the review words becomes its own task.
        """
        revision = _REVISION.search(clause)
        found = _earliest(clause, _CHECKS)
        check = found[0] if found else "review" if _APPROVED.search(clause) else None
        if revision is None or check is None:
            return None
        split = min(revision.start(), found[1].start()) if found else revision.start()
        lead = _earliest(clause, self.verbs)
        if lead is None or lead[1].start() >= split:
            return "", clause, check
        return _TRAILING_CONNECTIVES.sub("", clause[:split]).strip(), clause[split:], check

    def _check(self, clause: str) -> str | None:
        """The check kind, when a review or test word comes before any other verb."""
        found = _earliest(clause, {**_CHECKS, **self.verbs})
        return found[0] if found and found[0] in _CHECKS else None

    def _task(self, clause: str) -> None:
        capability, step_id = self._classify(clause)
        step = {"id": step_id, "kind": "task", "title": clause[:200], **self._address(capability, clause),
                **self._context()}
        self._push_work(step, capability)

    def _verify(self, clause: str, check: str) -> None:
        field, op, value = CHECK_PASSES[check]
        step = {"id": self._classify(clause)[1], "kind": "verify", "title": clause[:200],
                **self._address(check, clause), **self._context(),
                "check": _condition(f"output.{field}", op, value), "on_fail": _ESCALATE}
        self.blocks.append(_Block([step], (step, "on_fail")))

    def _review_loop(self, clause: str, check: str, work: _Work) -> None:
        field, op, value = CHECK_PASSES[check]
        review_id = self._classify(clause)[1]
        decision_id = self._unique("approved" if check == "review" else "passed")
        loop_id = self._unique("rework")
        review = {"id": review_id, "kind": "task", "title": clause[:200], **self._address(check, clause),
                  **self._context()}
        decision = {"id": decision_id, "kind": "decision", "default": loop_id,
                    "cases": [{"when": _condition(f"steps.{review_id}.output.{field}", op, value), "goto": _AFTER}]}
        loop = {"id": loop_id, "kind": "loop", "goto": work.step_id, "max_rounds": _rounds(clause),
                "exhausted": _ESCALATE}
        self.blocks.append(_Block([review, decision, loop], (review, "on_fail")))

    def _parallel(self, clause: str, actions: list[str]) -> None:
        step_id = self._unique("parallel")
        branches = []
        for action in actions:
            capability, branch_id = self._classify(action)
            branches.append({"id": branch_id, **self._address(capability, action), **self._context()})
        step = {"id": step_id, "kind": "parallel", "title": clause[:200], "branches": branches}
        self._push_work(step, None)

    def _fanout(self, clause: str) -> None:
        action = _fanout_action(clause)
        capability, step_id = self._classify(action)
        items = "ticket.input.items"
        if self.work is not None:
            field = FANOUT_LIST_FIELD.get(self.work.capability or "", "items")
            items = f"steps.{self.work.step_id}.output.{field}"
        # No input template: each child ticket gets its item as input.
        step = {"id": step_id, "kind": "fanout", "title": clause[:200], **self._address(capability, action),
                "items": items}
        self._push_work(step, capability)

    def _push_work(self, step: dict[str, Any], capability: str | None) -> None:
        self.blocks.append(_Block([step], (step, "on_fail")))
        self.work = _Work(step["id"], capability)

    def _classify(self, clause: str) -> tuple[str | None, str]:
        """(capability or check kind, a unique step id made of the verb and the noun after it)."""
        found = _earliest(clause, {**_CHECKS, **self.verbs})
        start = found[1].start() if found else 0
        words = re.findall(r"[a-z][a-z0-9]*", clause[start:].lower())
        verb_words = len(re.findall(r"[a-z][a-z0-9]*", found[1].group(0).lower())) if found else 1
        noun = next((w for w in words[verb_words:verb_words + 4] if w not in STOP_WORDS), None)
        base = "_".join([*words[:verb_words], *([noun] if noun else [])])
        return (found[0] if found else None), self._unique(base)

    def _unique(self, base: str) -> str:
        stem = _slug(base, "_", 36) or "step"
        if not stem[0].isalpha():
            stem = _slug(f"step_{stem}", "_", 36)
        candidate, n = stem, 1
        while candidate in self.used:
            n += 1
            candidate = f"{stem}_{n}"
        self.used.add(candidate)
        return candidate

    def _address(self, capability: str | None, clause: str) -> dict[str, str]:
        if self.bots is None:
            return {"capability": capability} if capability else {"bot": DEFAULT_BOT}
        if capability and any(capability in caps for caps in self.bots.values()):
            return {"capability": capability}
        return {"bot": self._bot_by_name(capability, clause) or DEFAULT_BOT}

    def _bot_by_name(self, capability: str | None, clause: str) -> str | None:
        names = sorted(self.bots or {})
        mentioned = [n for n in names if re.search(rf"\b{re.escape(n)}\b", clause, re.IGNORECASE)]
        if mentioned:
            return mentioned[0]
        if capability is None:
            return None
        # "review" finds "reviewer", "classify" finds "classifier": a shared stem of five letters is enough.
        return next((n for n in names if _shared_prefix(n.lower(), capability) >= min(len(capability), 5)), None)

    def _context(self) -> dict[str, Any]:
        if self.work is None:
            return {}
        return {"input": {"text": "${ticket.input.text}", "previous": f"${{steps.{self.work.step_id}.output}}"}}

    def finish(self) -> list[dict[str, Any]]:
        """Every step in order, the failure paths attached, jump stand-ins replaced, the ends appended."""
        for index in self.escalate_after:
            for block in self.blocks if index is None else [self.blocks[index]]:
                if block.failure_hook is not None:
                    step, field = block.failure_hook
                    step[field] = _ESCALATE
        escalated_end = {"id": ESCALATE_ID, "kind": "end", "status": "escalated"}
        ends = [escalated_end] if self.ends_escalated else [{"id": DONE_ID, "kind": "end", "status": "done"}]
        if not self.ends_escalated and _mentions([b.steps for b in self.blocks], _ESCALATE):
            ends.append(escalated_end)
        firsts = [block.steps[0]["id"] for block in self.blocks] + [ends[0]["id"]]
        steps = []
        for block, after in zip(self.blocks, firsts[1:], strict=True):
            steps += _replace(block.steps, {_AFTER: after, _ESCALATE: ESCALATE_ID})
        return steps + ends


def _shared_prefix(a: str, b: str) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))


def _parallel_actions(clause: str) -> list[str]:
    rest = _PARALLEL.sub(" ", clause)
    parts = re.split(r"\s*(?:,\s*(?:and\s+)?|\band\b|&|\bas\s+well\s+as\b|\bplus\b)\s*", rest, flags=re.IGNORECASE)
    return [action for part in parts if (action := _clean(part))]


def _fanout_action(clause: str) -> str:
    """"For each step of the plan, write code" → "write code"; "summarize each of the files" → "summarize the files"."""
    match = _FANOUT.search(clause)
    if match and match.start() == 0 and "," in clause:
        return _clean(clause.split(",", 1)[1]) or clause
    return _clean(_FANOUT.sub(" ", clause)) or clause


def _condition(path: str, op: str, value: Any) -> dict[str, Any]:
    return {"path": path, "op": op} | ({} if value is None else {"value": value})


def _mentions(value: Any, token: object) -> bool:
    if isinstance(value, dict):
        return any(_mentions(item, token) for item in value.values())
    if isinstance(value, list):
        return any(_mentions(item, token) for item in value)
    return value is token


def _replace(value: Any, tokens: Mapping[object, str]) -> Any:
    if isinstance(value, dict):
        return {key: _replace(item, tokens) for key, item in value.items()}
    if isinstance(value, list):
        return [_replace(item, tokens) for item in value]
    return tokens.get(value, value)


def describe_definition(definition: WorkflowDefinition) -> str:
    """One line per step, e.g. ``4. rework — loop back to build, at most 2 rounds, then escalate``."""
    return "\n".join(f"{n}. {step.id} — {_describe(step)}" for n, step in enumerate(definition.steps, start=1))


def _describe(step: Step) -> str:
    match step:
        case TaskStep():
            text = f"task → {_address_text(step.bot, step.capability)}"
        case VerifyStep():
            text = (f"verify → {_address_text(step.bot, step.capability)}, passes when {_condition_text(step.check)}, "
                    f"else → {step.on_fail}")
        case DecisionStep():
            cases = "; ".join(f"if {_condition_text(c.when)} → {c.goto}" for c in step.cases)
            asked = f" (decided by {_address_text(step.bot, step.capability)})" if step.asks_a_bot else ""
            text = f"decision{asked}: {cases}; else → {step.default}"
        case ApprovalStep():
            text = "approval" + (f" when {_condition_text(step.when)}" if step.when else "")
            text += f", on reject → {step.on_reject}" if step.on_reject else ""
        case ParallelStep():
            text = "parallel: " + ", ".join(f"{b.id} → {_address_text(b.bot, b.capability)}" for b in step.branches)
        case FanoutStep():
            text = f"for each of {step.items} → {_address_text(step.bot, step.capability)}"
        case LoopStep():
            text = f"loop back to {step.goto}, at most {step.max_rounds} rounds, then {step.exhausted}"
        case EndStep():
            text = f"end ({step.status})"
    if isinstance(step, TaskStep | ParallelStep | FanoutStep) and step.on_fail:
        text += f", on failure → {step.on_fail}"
    return text + (f", then → {step.next}" if step.next else "")


def _address_text(bot: str | None, capability: str | None) -> str:
    return f"capability {capability}" if capability else f"bot {bot}"


def _condition_text(condition: Condition) -> str:
    if condition.op in ("exists", "missing", "truthy", "falsy"):
        return f"{condition.path} {condition.op}"
    return f"{condition.path} {condition.op} {condition.value!r}"


def diff_definitions(old: WorkflowDefinition | None, new: WorkflowDefinition) -> str:
    """A unified diff of the two definitions as YAML; empty when they are the same."""
    before = _as_yaml(old).splitlines(keepends=True) if old is not None else []
    label = f"{old.name} v{old.version}" if old is not None else "(new workflow)"
    after = _as_yaml(new).splitlines(keepends=True)
    return "".join(difflib.unified_diff(before, after, fromfile=label, tofile=f"{new.name} v{new.version}"))


def _as_yaml(definition: WorkflowDefinition) -> str:
    return yaml.safe_dump(definition.to_document(), sort_keys=False, allow_unicode=True)
