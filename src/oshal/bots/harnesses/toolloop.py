"""What the model harnesses share for tool use: naming the gateway's tools for a model, and the loop's books.

A model sees each tool the gateway lists as a function named ``<connector>__<operation>``, cut down to what
both providers accept (``^[a-zA-Z0-9_-]{1,64}$``); names that end up equal get a short hash of the pair so
every name maps back to exactly one (connector, operation). :class:`ToolLoop` numbers the model calls
(``job.call_id(0)``, ``job.call_id(1)``, ...), enforces the step limit, runs each requested call through
the job's tool session and keeps the record that ends up in the job's output.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from oshal import jsontext
from oshal.bots.harnesses.ports import Job
from oshal.errors import HarnessError
from oshal.mesh.envelopes import CallUsage

NAME_MAX = 64
_UNSAFE = re.compile(r"[^a-zA-Z0-9_-]")
_HASH_LEN = 8


class ToolLoopError(HarnessError):
    """A job with tools failed after it had already made model calls; ``calls`` are those calls' usage,
    so whoever records the failure can still account for the tokens spent."""

    def __init__(self, message: str, *, calls: tuple[CallUsage, ...], retryable: bool = False,
                 hint: str | None = None) -> None:
        super().__init__(message, retryable=retryable, hint=hint)
        self.calls = calls


@dataclass(frozen=True, slots=True)
class ToolSpec:
    name: str  # what the model calls it
    connector: str
    operation: str
    description: str
    parameters: dict[str, Any]


def _pair_hash(connector: str, operation: str, length: int = _HASH_LEN) -> str:
    return hashlib.sha256(f"{connector}\x00{operation}".encode()).hexdigest()[:length]


def tool_name(connector: str, operation: str) -> str:
    """``<connector>__<operation>`` with every other character made ``_``, at most 64 characters."""
    name = _UNSAFE.sub("_", f"{connector}__{operation}")[:NAME_MAX]
    return name or "tool_" + _pair_hash(connector, operation)


def _hashed(base: str, connector: str, operation: str, length: int) -> str:
    suffix = "_" + _pair_hash(connector, operation, length)
    return base[:NAME_MAX - len(suffix)] + suffix


def tool_specs(listed: list[dict[str, Any]]) -> list[ToolSpec]:
    """The listed tools as model-facing specs, in listing order, each name unique.

    The same (connector, operation) listed twice is kept once. Every pair whose plain name collides with
    another's gets a hash suffix, so which one is "first" never decides a name.
    """
    pairs: dict[tuple[str, str], dict[str, Any]] = {}
    for tool in listed:
        key = (str(tool["connector"]), str(tool["operation"]))
        pairs.setdefault(key, tool)
    plain = {key: tool_name(*key) for key in pairs}
    counts: dict[str, int] = {}
    for name in plain.values():
        counts[name] = counts.get(name, 0) + 1
    names: dict[tuple[str, str], str] = {}
    taken: set[str] = {name for name, n in counts.items() if n == 1}
    for key, name in plain.items():
        if counts[name] == 1:
            names[key] = name
            continue
        length = _HASH_LEN
        candidate = _hashed(name, *key, length)
        while candidate in taken:  # astronomically unlikely; a longer hash settles it
            length += 4
            candidate = _hashed(name, *key, length)
        taken.add(candidate)
        names[key] = candidate
    specs = []
    for key, tool in pairs.items():
        parameters = tool.get("parameters")
        if not isinstance(parameters, dict) or parameters.get("type") != "object":
            parameters = {"type": "object", "properties": {}}
        description = str(tool.get("description") or "") or f"{key[1]} on {key[0]}"
        specs.append(ToolSpec(names[key], key[0], key[1], description, parameters))
    return specs


@dataclass(frozen=True, slots=True)
class ToolReply:
    """What goes back to the model for one requested call."""

    content: str  # JSON of the gateway's result, or of {"error": message}
    is_error: bool


@dataclass
class ToolLoop:
    """The books for one job's call/observe loop."""

    job: Job
    specs: list[ToolSpec]
    max_steps: int
    calls: list[CallUsage] = field(default_factory=list)
    records: list[dict[str, Any]] = field(default_factory=list)
    by_name: dict[str, ToolSpec] = field(init=False)

    def __post_init__(self) -> None:
        self.by_name = {spec.name: spec for spec in self.specs}

    @classmethod
    async def open(cls, job: Job, max_steps: int) -> ToolLoop | None:
        """List the job's tools once; ``None`` when there are none (the harness then makes one plain call)."""
        if job.tools is None:
            return None
        listed = await job.tools.list()
        if not listed:
            return None
        return cls(job, tool_specs(listed), max_steps)

    def next_call_id(self) -> str:
        return self.job.call_id(len(self.calls))

    def add_usage(self, call: CallUsage) -> None:
        self.calls.append(call)

    def check_steps(self) -> None:
        """Called when the model asked for tools again: the last allowed model call has been spent."""
        if len(self.calls) >= self.max_steps:
            raise ToolLoopError(f"tool loop did not finish within {self.max_steps} steps",
                                calls=tuple(self.calls),
                                hint="raise max_tool_steps in the bot manifest, or make the task smaller")

    def failure(self, error: HarnessError) -> ToolLoopError:
        """``error`` (from the provider or the gateway) with the usage of the model calls made so far."""
        return ToolLoopError(error.message, calls=tuple(self.calls), retryable=error.retryable, hint=error.hint)

    def output(self, text: str | None, reason_key: str, reason: str | None) -> dict[str, Any]:
        out: dict[str, Any] = {"text": text, reason_key: reason}
        if self.records:
            out["tool_calls"] = list(self.records)
        return out

    async def run(self, name: str, arguments: str | Mapping[str, Any] | None) -> ToolReply:
        """Run one call the model requested. Refusals and bad requests become error replies for the model;
        a retryable gateway failure (unreachable) raises and fails the job."""
        spec = self.by_name.get(name)
        parsed: Any = arguments
        if isinstance(arguments, str):
            if not arguments.strip():
                parsed = {}
            else:
                try:
                    parsed = json.loads(arguments)
                except json.JSONDecodeError as e:
                    return self._error(spec, name, arguments, "invalid",
                                       f"the arguments are not valid JSON: {e.msg} at position {e.pos}")
        elif arguments is None:
            parsed = {}
        if spec is None:
            return self._error(None, name, parsed, "invalid", f"there is no tool named {name!r}")
        if not isinstance(parsed, Mapping):
            return self._error(spec, name, parsed, "invalid", "the arguments must be a JSON object")
        assert self.job.tools is not None  # open() returned a loop, so the job has tools
        try:
            result = await self.job.tools.call(spec.connector, spec.operation, dict(parsed))
        except HarnessError as e:
            if e.retryable:
                raise
            return self._error(spec, name, dict(parsed), "refused", e.message)
        self.records.append({"connector": spec.connector, "operation": spec.operation, "arguments": dict(parsed),
                             "status": result.get("status")})
        return ToolReply(_json(result), False)

    def _error(self, spec: ToolSpec | None, name: str, arguments: Any, status: str, message: str) -> ToolReply:
        self.records.append({"connector": spec.connector if spec else None,
                             "operation": spec.operation if spec else name,
                             "arguments": arguments, "status": status, "error": message})
        return ToolReply(_json({"error": message}), True)


def _json(value: Any) -> str:
    return jsontext.compact(value, ascii_only=False, default=str)
