"""References, templates and conditions over a run's scope (ticket, params, step outputs, item).

A reference is a dotted path (``steps.plan.output.units``), optionally followed by ``|length``. A template
that is exactly one ``${...}`` keeps the referenced value's type; references inside longer strings are
rendered as text. A missing reference is ``None`` so that conditions can test for it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from oshal.workflows.definition import Condition

_REFERENCE = re.compile(r"\$\{([^}]+)\}")
_MISSING = object()


def resolve(path: str, scope: Mapping[str, Any]) -> Any:
    expression, _, modifier = path.partition("|")
    value: Any = scope
    for part in expression.strip().split("."):
        value = _child(value, part)
        if value is _MISSING:
            return None
    if modifier.strip() == "length":
        return len(value) if isinstance(value, list | dict | str) else 0
    return value


def _child(value: Any, part: str) -> Any:
    if isinstance(value, Mapping):
        return value.get(part, _MISSING)
    if isinstance(value, list) and part.isdigit():
        index = int(part)
        return value[index] if index < len(value) else _MISSING
    return _MISSING


def render(template: Any, scope: Mapping[str, Any]) -> Any:
    if isinstance(template, str):
        whole = _REFERENCE.fullmatch(template.strip())
        if whole:
            return resolve(whole.group(1), scope)
        return _REFERENCE.sub(lambda m: _as_text(resolve(m.group(1), scope)), template)
    if isinstance(template, dict):
        return {key: render(value, scope) for key, value in template.items()}
    if isinstance(template, list | tuple):
        return [render(value, scope) for value in template]
    return template


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def holds(condition: Condition, scope: Mapping[str, Any]) -> bool:
    actual = resolve(condition.path, scope)
    expected = render(condition.value, scope)
    op = condition.op
    if op == "exists":
        return actual is not None
    if op == "missing":
        return actual is None
    if op == "truthy":
        return bool(actual)
    if op == "falsy":
        return not actual
    if op == "eq":
        return bool(actual == expected)
    if op == "ne":
        return bool(actual != expected)
    if op in ("in", "not_in"):
        try:
            inside = isinstance(expected, list | tuple | str | dict) and actual in expected
        except TypeError:  # e.g. a number tested against a string, or a list against a dict's keys
            inside = False
        return inside if op == "in" else not inside
    return _compare(op, actual, expected)


def _compare(op: str, actual: Any, expected: Any) -> bool:
    numbers = (int, float)
    if not (isinstance(actual, numbers) and isinstance(expected, numbers)) or isinstance(actual, bool):
        return False
    return {"gt": actual > expected, "ge": actual >= expected, "lt": actual < expected,
            "le": actual <= expected}[op]
