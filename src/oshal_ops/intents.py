"""The loop's bots' work (deterministic intents, run by the node host like any own intent: ``oshal_ops.intents:NAME``
in a fleet manifest). Each is a pure function of its input: no API handle, no tools — the diagnoser's box is
structural, whatever its input asks for."""

from __future__ import annotations

from typing import Any

from oshal_ops import report as reporting
from oshal_ops.diagnose import check_citations, diagnose
from oshal_ops.model import evidence_from_json, rca_from_json, rca_to_json

MAX_OUTPUT_BYTES = 32 * 1024


def _evidence(value: dict[str, Any]) -> list[Any]:
    items = value.get("evidence")
    if not isinstance(items, list):
        raise ValueError("input.evidence must be a list of evidence items")
    return [evidence_from_json(e) for e in items]


def investigate(value: Any) -> dict[str, Any]:
    """Evidence in, an RCA with citations out (``feedback``: the reviewer's problems with the last attempt)."""
    if not isinstance(value, dict) or not isinstance(value.get("signal"), dict):
        raise ValueError("input.signal must be an object saying what opened the incident")
    evidence = _evidence(value)
    rca = diagnose(value["signal"], evidence)
    return {"rca": rca_to_json(rca), "citation_problems": check_citations(rca, evidence)}


def review(value: Any) -> dict[str, Any]:
    """Approve an RCA only when every claim cites evidence that exists; pass the RCA on either way."""
    if not isinstance(value, dict) or not isinstance(value.get("rca"), dict):
        raise ValueError("input.rca must be the investigate step's output")
    evidence = _evidence(value)
    raw = value["rca"].get("rca", value["rca"])
    rca = rca_from_json(raw)
    problems = check_citations(rca, evidence)
    return {"verdict": "revise" if problems else "approve", "problems": problems, "rca": rca_to_json(rca)}


def report(value: Any) -> dict[str, Any]:
    """The incident report in Markdown, with its timings."""
    if not isinstance(value, dict) or not isinstance(value.get("incident"), dict):
        raise ValueError("input.incident must describe the incident")
    evidence = _evidence(value)
    rca = rca_from_json(value["rca"]) if isinstance(value.get("rca"), dict) else None
    actions = [a for a in value.get("actions") or [] if isinstance(a, dict)]
    markdown = reporting.render(value["incident"], rca, evidence, actions)
    if len(markdown.encode()) > MAX_OUTPUT_BYTES:
        markdown = markdown.encode()[:MAX_OUTPUT_BYTES].decode(errors="ignore") + "\n\n(report cut at 32 KiB)\n"
    return {"markdown": markdown, "timings": reporting.timings(value["incident"]),
            "failure_mode": rca.failure_mode if rca else None}
