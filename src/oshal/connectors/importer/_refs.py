"""Document plumbing for the OpenAPI importer: plain-JSON normalisation, local ``$ref`` resolution, and the
rewrite of OpenAPI 3.0 / Swagger 2.0 schema dialect into JSON Schema 2020-12 (``Dialect``).

Only local references (``#/...`` JSON pointers) are followed. A reference back into something that is already
being expanded (a recursive schema such as a category with child categories) is cut and replaced by a
placeholder ``{"description": "recursive: <ref>"}``, which any JSON-schema validator accepts, so expansion is
always finite. Subtrees whose expansion does not depend on where they are used are memoised and shared, which
keeps big specs (hundreds of operations reusing the same schemas) fast.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

from oshal.errors import Invalid, TooLarge

# Input documents (after YAML alias expansion) and the expanded schemas of one import are bounded, so a small
# file full of YAML aliases or diamond-shaped refs cannot make an import eat all memory. The largest real specs
# in the test corpus have ~27k document nodes and expand to ~24k schema nodes: both limits are 100x that.
MAX_DOCUMENT_NODES = 3_000_000
MAX_EXPANDED_NODES = 3_000_000

# Keywords whose values are literal data, not schemas: a "$ref" key inside them is not a reference.
_LITERAL_KEYS = frozenset({"example", "examples", "default", "enum", "const"})
# Keywords whose values map names to schemas: their keys are names, never keywords.
_NAMED_MAPS = frozenset({"properties", "patternProperties", "definitions", "$defs", "dependentSchemas"})
_NO_CUT = math.inf


MAX_DOCUMENT_DEPTH = 200  # well within Python's recursion limit, wherever the walk starts


def plain_json(document: Any) -> Any:
    """A JSON-compatible deep copy: string keys, lists, and every other scalar YAML can produce made JSON: dates and
    times as ISO strings, NaN and infinities as strings, bytes decoded (anything else: its ``str``)."""
    budget = [MAX_DOCUMENT_NODES]

    def walk(node: Any, depth: int = 0) -> Any:
        budget[0] -= 1
        if budget[0] < 0:
            raise TooLarge(
                f"the document expands to more than {MAX_DOCUMENT_NODES:,} nodes",
                hint="YAML anchors/aliases can multiply a small file; import a de-aliased copy.",
            )
        if depth > MAX_DOCUMENT_DEPTH:
            raise Invalid(f"the document nests more than {MAX_DOCUMENT_DEPTH} levels deep",
                          hint="no real API description nests that deep; check how the document was generated.")
        if isinstance(node, Mapping):
            return {_key(key): walk(value, depth + 1) for key, value in node.items()}
        if isinstance(node, list | tuple):
            return [walk(value, depth + 1) for value in node]
        if isinstance(node, set | frozenset):  # YAML's !!set, in a stable order
            return sorted((walk(value, depth + 1) for value in node),
                          key=lambda value: json.dumps(value, sort_keys=True))
        if isinstance(node, float) and not math.isfinite(node):
            return str(node)  # JSON has no NaN or infinity (YAML's .nan, .inf)
        if isinstance(node, str | bool | int | float) or node is None:
            return node
        if isinstance(node, _dt.date | _dt.datetime | _dt.time):
            return node.isoformat()
        if isinstance(node, bytes):
            return node.decode("utf-8", "replace")
        return str(node)

    return walk(document)


def _key(key: Any) -> str:
    """A mapping key as JSON spells it: YAML keys may be numbers (``200:``), booleans, null or dates."""
    if isinstance(key, str):
        return key
    if isinstance(key, bool) or key is None:
        return json.dumps(key)
    if isinstance(key, _dt.date | _dt.datetime | _dt.time):
        return key.isoformat()
    return str(key)


def _pointer_tokens(ref: str) -> list[str]:
    pointer = unquote(ref[1:])
    if pointer in ("", "/"):
        return [] if pointer == "" else [""]
    if not pointer.startswith("/"):
        raise Invalid(f"$ref {ref!r} is not a JSON pointer", hint="local references look like '#/components/...'.")
    return [token.replace("~1", "/").replace("~0", "~") for token in pointer[1:].split("/")]


class RefResolver:
    """Resolves local ``$ref``s of one (plain-JSON) document."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self._cache: dict[str, tuple[Any, int]] = {}
        self.expanded_nodes = 0

    def lookup(self, ref: str) -> Any:
        """The raw target of a local reference; ``Invalid`` for external or dangling references."""
        if not ref.startswith("#"):
            raise Invalid(
                f"external $ref {ref!r} is not supported",
                hint="bundle the document into one file first (e.g. `redocly bundle` or `swagger-cli bundle`).",
            )
        node: Any = self.document
        for token in _pointer_tokens(ref):
            if isinstance(node, dict) and token in node:
                node = node[token]
            elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
                node = node[int(token)]
            else:
                raise Invalid(f"$ref {ref!r} points at nothing in the document", hint="fix or remove the reference.")
        return node

    def shallow(self, node: Any) -> Any:
        """Follow a chain of references at the top of ``node`` only (for path items, parameters, responses)."""
        seen: list[str] = []
        while isinstance(node, dict) and isinstance(node.get("$ref"), str):
            ref = node["$ref"]
            if ref in seen:
                raise Invalid(
                    f"$ref cycle {' -> '.join([*seen, ref])} resolves to nothing",
                    hint="one of these references must point at an object.",
                )
            seen.append(ref)
            node = self.lookup(ref)
        return node

    def resolve(self, node: Any) -> Any:
        """``node`` with every local reference inside it expanded (recursive ones cut)."""
        value, _cut, size = self._resolve(node, [], {})
        self._count(size)
        return value

    def _count(self, size: int) -> None:
        self.expanded_nodes += size
        if self.expanded_nodes > MAX_EXPANDED_NODES:
            raise TooLarge(
                f"expanding the document's $refs produces more than {MAX_EXPANDED_NODES:,} schema nodes",
                hint="the document reuses deeply nested schemas in too many places to inline them.",
            )

    def _resolve(self, node: Any, stack: list[str], on_stack: dict[str, int]) -> tuple[Any, float, int]:
        """Returns (resolved value, lowest stack depth a cut inside it points at, expanded node count)."""
        if isinstance(node, list):
            items: list[Any] = []
            low, size = _NO_CUT, 1
            for item in node:
                value, cut, n = self._resolve(item, stack, on_stack)
                items.append(value)
                low, size = min(low, cut), size + n
            return items, low, size
        if not isinstance(node, dict):
            return node, _NO_CUT, 1
        ref = node.get("$ref")
        if isinstance(ref, str):
            return self._resolve_ref(node, ref, stack, on_stack)
        return self._resolve_object(node, stack, on_stack, named=False)

    def _resolve_object(
        self, node: dict[str, Any], stack: list[str], on_stack: dict[str, int], *, named: bool
    ) -> tuple[dict[str, Any], float, int]:
        out: dict[str, Any] = {}
        low, size = _NO_CUT, 1
        for key, child in node.items():
            if not named and (key in _LITERAL_KEYS or key.startswith("x-")):
                out[key] = child
                continue
            if not named and key in _NAMED_MAPS and isinstance(child, dict):
                value, cut, n = self._resolve_object(child, stack, on_stack, named=True)
            else:
                value, cut, n = self._resolve(child, stack, on_stack)
            out[key] = value
            low, size = min(low, cut), size + n
        return out, low, size

    def _resolve_ref(
        self, node: dict[str, Any], ref: str, stack: list[str], on_stack: dict[str, int]
    ) -> tuple[Any, float, int]:
        siblings = {key: value for key, value in node.items() if key != "$ref"}
        if ref in on_stack:
            target: Any = {"description": f"recursive: {ref}"}
            low: float = on_stack[ref]
            size = 2
        elif ref in self._cache:
            target, size = self._cache[ref]
            low = _NO_CUT
        else:
            depth = len(stack)
            stack.append(ref)
            on_stack[ref] = depth
            try:
                target, low, size = self._resolve(self.lookup(ref), stack, on_stack)
            finally:
                stack.pop()
                del on_stack[ref]
            if low >= depth:  # every cut inside points at this ref or below: the expansion is context-free
                low = _NO_CUT
                self._cache[ref] = (target, size)
        if siblings and isinstance(target, dict):
            extra, cut, n = self._resolve_object(siblings, stack, on_stack, named=False)
            return {**target, **extra}, min(low, cut), size + n
        return target, low, size


# Keywords holding one subschema, a list of subschemas, or a map of names to subschemas.
_SUBSCHEMA = frozenset({"items", "additionalItems", "additionalProperties", "not", "contains", "propertyNames", "if",
                        "then", "else", "unevaluatedItems", "unevaluatedProperties"})
_SUBSCHEMA_LISTS = frozenset({"allOf", "anyOf", "oneOf", "prefixItems"})


class Dialect:
    """Rewrites OpenAPI 3.0 / Swagger 2.0 schema dialect into valid JSON Schema 2020-12 (what the runtime checks).

    Boolean ``exclusiveMinimum``/``exclusiveMaximum`` (draft 4) become numeric bounds, ``type: file`` becomes a
    binary string, a boolean ``required`` on a property (a common spec slip) is dropped, tuple ``items`` become
    ``prefixItems``, and, for 3.0 and 2.0 documents, ``nullable``/``x-nullable`` admit ``null``. Shared subtrees
    are converted once and stay shared.
    """

    def __init__(self, *, nullable: bool) -> None:
        self.nullable = nullable
        self._memo: dict[int, tuple[Any, Any]] = {}  # id(node) -> (node, converted); holding node pins its id

    def schema(self, node: Any) -> Any:
        if not isinstance(node, dict):
            return node
        hit = self._memo.get(id(node))
        if hit is not None and hit[0] is node:
            return hit[1]
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key in _SUBSCHEMA and isinstance(value, dict):
                out[key] = self.schema(value)
            elif key == "items" and isinstance(value, list):
                out["prefixItems"] = [self.schema(item) for item in value]
            elif key in _SUBSCHEMA_LISTS and isinstance(value, list):
                out[key] = [self.schema(item) for item in value]
            elif key in _NAMED_MAPS and isinstance(value, dict):
                out[key] = {name: self.schema(sub) for name, sub in value.items()}
            elif key == "required" and not isinstance(value, list):
                continue
            else:
                out[key] = value
        self._fix_bounds(out)
        if out.get("type") == "file":
            out.update(type="string", format="binary")
        if self.nullable and (out.get("nullable") is True or out.get("x-nullable") is True):
            kind = out.get("type")
            if isinstance(kind, str) and kind != "null":
                out["type"] = [kind, "null"]
            elif isinstance(kind, list) and "null" not in kind:
                out["type"] = [*kind, "null"]
            if isinstance(out.get("enum"), list) and None not in out["enum"]:
                out["enum"] = [*out["enum"], None]
        self._memo[id(node)] = (node, out)
        return out

    @staticmethod
    def _fix_bounds(schema: dict[str, Any]) -> None:
        for exclusive, inclusive in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
            flag = schema.get(exclusive)
            if isinstance(flag, bool):
                del schema[exclusive]
                if flag and isinstance(schema.get(inclusive), int | float):
                    schema[exclusive] = schema.pop(inclusive)
