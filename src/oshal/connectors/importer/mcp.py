"""Catalog import: an MCP server's tools become a draft, **pinned** ``ConnectorManifest``.

``await import_mcp(McpTarget.stdio("npx", "-y", "some-mcp-server"), connector_id="notes")`` (or
``McpTarget.http("https://example.com/mcp")``) connects, initializes, lists every tool (all pages) and maps each to
a disabled operation an operator reviews and enables:

* ``name``: the tool name made to fit ``OPERATION_NAME_PATTERN`` (invalid characters become ``_``, unique);
  ``path``: ``/tools/<tool name>`` (the real name, which the MCP runtime calls);
* ``summary``: the tool's title (or its annotations' title, or the first line of its description);
  ``description``: its description; ``body_schema``: its ``inputSchema`` (``body_required``); ``output_schema``:
  its ``outputSchema``;
* risk, from the tool's annotations (hints only: the operator reviews them): ``destructiveHint`` true declares the
  ``delete`` effect (destructive); else ``readOnlyHint`` true makes it a ``GET`` with no effects (read); else a
  ``POST`` with the ``write`` effect, plus the money effects the OpenAPI importer's keyword heuristic finds in the
  tool's name and title (``place_order`` is money, not just write);
* **pins**: ``source.tool_hashes`` holds, per tool, the SHA-256 of the canonical JSON of its ``{name, description,
  inputSchema}`` (:func:`~oshal.connectors.mcp_runtime.tool_hash`). The source is part of the signed canonical
  form, so the reviewed tool definitions are what a publisher signs; :class:`~oshal.connectors.mcp_runtime.McpRuntime`
  refuses to call a tool whose current definition no longer matches, and :func:`pin_drift` compares a manifest
  against a fresh listing.

``source`` is ``{"kind": "mcp", "transport": "stdio", "command", "args", "env_keys"}`` or ``{"kind": "mcp",
"transport": "http", "url"}``, plus ``"server": {"name", "version"}`` and ``"tool_hashes"``. Environment values (a
stdio server's secrets) are never recorded, only their names. ``base_url`` is the URL, or ``mcp+stdio:<command>``.
An HTTP server on loopback or a private network is imported as is; calling it needs ``allow_private_network``.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import ValidationError

from oshal.connectors.importer._errors import errors, manifest_hint
from oshal.connectors.importer.openapi import money_effects
from oshal.connectors.manifest import ConnectorManifest, Method, Operation
from oshal.connectors.mcp_runtime import (
    DEFAULT_TIMEOUT_S,
    TOOL_PATH_PREFIX,
    McpListing,
    McpTarget,
    fetch_listing,
    tool_hash,
)
from oshal.errors import Invalid

__all__ = ["McpListing", "McpTarget", "import_mcp", "manifest_from_listing", "operation_name", "pin_drift",
           "tool_hash"]

_MAX_NAME = 128


async def import_mcp(target: McpTarget, *, connector_id: str, publisher: str = "imported", category: str = "other",
                     timeout_s: float = DEFAULT_TIMEOUT_S) -> ConnectorManifest:
    """Connect to the MCP server ``target`` names and return a draft manifest of its tools, all disabled, pinned."""
    listing = await fetch_listing(target, timeout_s=timeout_s)
    return manifest_from_listing(target, listing, connector_id=connector_id, publisher=publisher, category=category)


def manifest_from_listing(target: McpTarget, listing: McpListing, *, connector_id: str, publisher: str = "imported",
                          category: str = "other") -> ConnectorManifest:
    """The draft manifest for a listing already fetched from ``target`` (see :func:`import_mcp`)."""
    taken: set[str] = set()
    operations: list[Operation] = []
    hashes: dict[str, str] = {}
    for tool in listing.tools:
        raw_name = tool.get("name")
        if not isinstance(raw_name, str) or not raw_name:
            raise Invalid(f"{target.describe()} lists a tool without a name", hint="fix the server")
        hashes[raw_name] = tool_hash(tool)
        try:
            operations.append(_operation(tool, _unique(operation_name(raw_name), taken)))
        except ValidationError as exc:
            raise Invalid(f"tool {raw_name[:80]!r} of {target.describe()} cannot be imported: {errors(exc)}",
                          hint="fix that tool on the server") from exc
    fields: dict[str, Any] = {
        "id": connector_id,
        "version": (listing.server_version or "unversioned")[:50],
        "publisher": publisher,
        "category": category,
        "title": listing.server_title or listing.server_name,
        "description": listing.instructions.strip(),
        "base_url": target.base_url,
        "operations": operations,
        "source": {
            "kind": "mcp",
            **target.source(),
            "server": {"name": listing.server_name, "version": listing.server_version},
            "tool_hashes": hashes,
        },
    }
    try:
        return ConnectorManifest(**fields)
    except ValidationError as exc:
        raise Invalid(f"the imported manifest is invalid: {errors(exc)}",
                      hint=manifest_hint(exc, "the server's tools")) from exc


def pin_drift(manifest: ConnectorManifest, tools: McpListing | Iterable[Mapping[str, Any] | Any]) -> list[str]:
    """Sorted names of the tools whose current definition differs from the manifest's pin, vanished, or appeared.

    ``tools`` is a fresh listing (:func:`~oshal.connectors.mcp_runtime.fetch_listing`), or tools in wire form or as
    the SDK's ``Tool``. An empty list means every pinned tool is still exactly what was reviewed and signed.
    """
    pinned = manifest.source.get("tool_hashes") if manifest.source.get("kind") == "mcp" else None
    if not isinstance(pinned, Mapping):
        raise Invalid(f"connector {manifest.id} has no MCP tool pins (source.tool_hashes)",
                      hint="only manifests made by import_mcp are pinned; re-import the MCP server")
    items: Iterable[Any] = tools.tools if isinstance(tools, McpListing) else tools
    current: dict[str, str] = {}
    for tool in items:
        name = tool.get("name") if isinstance(tool, Mapping) else getattr(tool, "name", None)
        if not isinstance(name, str):
            raise Invalid("a tool given to pin_drift has no name", hint="pass tools in wire form or the SDK's Tool")
        current[name] = tool_hash(tool)
    return sorted(name for name in set(pinned) | set(current) if pinned.get(name) != current.get(name))


# ------------------------------------------------------------------------------------------------------ mapping


def operation_name(tool_name: str) -> str:
    """A tool name made to fit ``OPERATION_NAME_PATTERN``: other characters become ``_``, a letter first."""
    name = re.sub(r"_+", "_", re.sub(r"[^A-Za-z0-9_.-]+", "_", tool_name.strip())).strip("_.-")
    if not name:
        return "tool"
    if not re.match(r"[A-Za-z]", name):
        name = f"tool_{name}"
    return name[:_MAX_NAME].rstrip("_.-")


def _unique(name: str, taken: set[str]) -> str:
    candidate, n = name, 1
    while candidate in taken:
        n += 1
        suffix = f"_{n}"
        candidate = name[: _MAX_NAME - len(suffix)] + suffix
    taken.add(candidate)
    return candidate


def _operation(tool: Mapping[str, Any], name: str) -> Operation:
    raw_name = str(tool["name"])
    raw_annotations = tool.get("annotations")
    annotations: Mapping[str, Any] = raw_annotations if isinstance(raw_annotations, Mapping) else {}
    description = inspect.cleandoc(_text(tool.get("description")))  # docstring indentation, as Python shows it
    summary = (_text(tool.get("title")) or _text(annotations.get("title")) or description.split("\n", 1)[0]).strip()
    path = TOOL_PATH_PREFIX + raw_name
    method: Method
    if annotations.get("destructiveHint") is True:
        method, effects = "POST", ("delete", *money_effects("POST", path, raw_name, summary))
    elif annotations.get("readOnlyHint") is True:
        method, effects = "GET", ()
    else:
        method, effects = "POST", ("write", *money_effects("POST", path, raw_name, summary))
    input_schema = tool.get("inputSchema")
    output_schema = tool.get("outputSchema")
    return Operation(
        name=name,
        method=method,
        path=path,
        summary=summary[:300],
        description=description,
        body_schema=dict(input_schema) if isinstance(input_schema, Mapping) else {"type": "object"},
        body_required=True,
        output_schema=dict(output_schema) if isinstance(output_schema, Mapping) else None,
        effects=effects,
        enabled=False,
    )


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


