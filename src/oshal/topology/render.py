"""Diagrams as Mermaid, Graphviz DOT or JSON: text only, deterministic (equal diagrams give equal bytes)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict

from oshal import jsontext
from oshal.topology.model import Health
from oshal.topology.views import Diagram, Node

_UNSAFE_ID = re.compile(r"[^A-Za-z0-9_]")
_COLOURS = {Health.OK: "#2e7d32", Health.DEGRADED: "#ef6c00", Health.DOWN: "#c62828", Health.UNKNOWN: "#757575"}


def _id(raw: str) -> str:
    return _UNSAFE_ID.sub("_", raw)


def _groups(diagram: Diagram) -> dict[str, list[Node]]:
    groups: dict[str, list[Node]] = {}
    for node in diagram.nodes:
        groups.setdefault(node.group, []).append(node)
    return groups


def mermaid(diagram: Diagram) -> str:
    def label(text: str) -> str:
        return '"' + text.replace('"', "#quot;").replace("\n", " ") + '"'

    lines = ["---", f"title: {diagram.title}", "---", "flowchart TD"]
    for n, (group, nodes) in enumerate(_groups(diagram).items()):
        indent = "  "
        if group:
            lines.append(f"  subgraph g{n}[{label(group)}]")
            indent = "    "
        lines += [f"{indent}{_id(node.id)}[{label(node.label)}]:::{node.health.value}" for node in nodes]
        if group:
            lines.append("  end")
    for edge in diagram.edges:
        arrow = f" -->|{label(edge.label)}| " if edge.label else " --> "
        lines.append(f"  {_id(edge.source)}{arrow}{_id(edge.target)}")
    lines += [f"  classDef {health.value} stroke:{colour},stroke-width:2px" for health, colour in _COLOURS.items()]
    lines += [f"  %% {note}" for note in diagram.notes]
    return "\n".join(lines) + "\n"


def dot(diagram: Diagram) -> str:
    def quoted(text: str) -> str:
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ") + '"'

    lines = [f"digraph {_id(diagram.view)} {{", f"  label={quoted(diagram.title)};", "  node [shape=box];"]
    for n, (group, nodes) in enumerate(_groups(diagram).items()):
        indent = "  "
        if group:
            lines += [f"  subgraph cluster_{n} {{", f"    label={quoted(group)};"]
            indent = "    "
        lines += [f"{indent}{_id(node.id)} [label={quoted(node.label)}, color={quoted(_COLOURS[node.health])}];"
                  for node in nodes]
        if group:
            lines.append("  }")
    for edge in diagram.edges:
        attrs = f" [label={quoted(edge.label)}]" if edge.label else ""
        lines.append(f"  {_id(edge.source)} -> {_id(edge.target)}{attrs};")
    lines += [f"  // {note}" for note in diagram.notes]
    return "\n".join(lines) + "\n}\n"


def as_json(diagram: Diagram) -> str:
    return jsontext.canonical(asdict(diagram), ascii_only=False) + "\n"


FORMATS: dict[str, Callable[[Diagram], str]] = {"mermaid": mermaid, "dot": dot, "json": as_json}
MEDIA_TYPES = {"mermaid": "text/vnd.mermaid; charset=utf-8", "dot": "text/vnd.graphviz; charset=utf-8",
               "json": "application/json"}
