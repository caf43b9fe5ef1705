"""Deterministic intents for the built-in pipelines (build and ticket): pure functions of their input.

They do honest, small work (scoring, splitting, checking) so every pipeline runs end to end offline, and they
react to a reviewer's feedback, so revision loops are real: a first draft with open markers is revised.
"""

from __future__ import annotations

import json
import re
from typing import Any

from oshal.bots.harnesses.intents import classify
from oshal.errors import HarnessError

_CLAUSE = re.compile(r"\s*(?:;|\bthen\b|\band\b|,|\n|\.\s+)\s*", re.IGNORECASE)
_OPEN_MARKERS = ("todo", "draft", "tbd")
_NEEDS_HUMAN = ("legal", "lawsuit", "refund over", "chargeback", "gdpr", "breach")


def _request(value: Any, intent: str) -> str:
    if isinstance(value, dict):
        for key in ("request", "text", "goal"):
            if isinstance(value.get(key), str) and value[key].strip():
                return str(value[key]).strip()
    if isinstance(value, str) and value.strip():
        return value.strip()
    raise HarnessError(f"the {intent} intent expects input.request (a non-empty string)",
                       hint='submit e.g. {"request": "add login, then write the docs"}')


def _clauses(text: str) -> list[str]:
    return [c.strip(" .") for c in _CLAUSE.split(text) if c.strip(" .")]


def score(value: Any) -> Any:
    """Complexity 1-10 from the request's size and number of parts; small requests skip test and review."""
    text = _request(value, "score")
    parts = len(_clauses(text))
    words = len(text.split())
    complexity = max(1, min(10, parts + words // 15))
    return {"request": text, "complexity": complexity, "size": "small" if complexity <= 2 else "large",
            "parts": parts, "words": words}


def decompose(value: Any) -> Any:
    """Split a request into 2-7 work units (merging the tail beyond 7, splitting a single clause in two)."""
    text = _request(value, "decompose")
    parts = _clauses(text)
    if len(parts) == 1:
        words = parts[0].split()
        half = max(1, len(words) // 2)
        parts = [" ".join(words[:half]), " ".join(words[half:]) or "verify " + words[0]]
    if len(parts) > 7:
        parts = [*parts[:6], " and ".join(parts[6:])]
    return {"request": text, "units": [{"n": i + 1, "title": p} for i, p in enumerate(parts)]}


def build(value: Any) -> Any:
    """Produce a deliverable for one unit; open markers in the title stay until feedback asks to resolve them."""
    if not isinstance(value, dict) or not isinstance(value.get("unit"), dict):
        raise HarnessError("the build intent expects input.unit ({n, title})")
    unit = value["unit"]
    title = str(unit.get("title", "")).strip()
    feedback = value.get("feedback") or []
    lowered = title.lower()
    open_marker = next((m for m in _OPEN_MARKERS if m in lowered), None)
    body = f"Implemented: {title}."
    if open_marker and not feedback:
        body += f" TODO: resolve the {open_marker} part."
    return {"n": unit.get("n"), "title": title, "artifact": body, "revised": bool(feedback)}


def check(value: Any) -> Any:
    """Test the built units: each needs a non-empty artifact."""
    builds = value.get("builds") if isinstance(value, dict) else None
    if not isinstance(builds, list):
        raise HarnessError("the check intent expects input.builds (a list of build outputs)")
    checks = [{"n": b.get("n"), "ok": bool(isinstance(b, dict) and b.get("artifact"))} for b in builds]
    return {"passed": all(c["ok"] for c in checks) and bool(checks), "checks": checks}


def deliver(value: Any) -> Any:
    builds = value.get("builds") if isinstance(value, dict) else None
    if not isinstance(builds, list):
        raise HarnessError("the deliver intent expects input.builds (a list of build outputs)")
    return {"delivered": True, "units": len(builds), "summary": " ".join(str(b.get("artifact", "")) for b in builds)}


def resolve(value: Any) -> Any:
    """Propose a solution for a support request; flags what needs a human; vague first drafts stay open."""
    text = _request(value, "resolve")
    category = classify({"text": text})["label"]
    feedback = value.get("feedback") if isinstance(value, dict) else None
    needs_human = category == "security" or any(word in text.lower() for word in _NEEDS_HUMAN)
    proposal = f"For this {category} request: {text.rstrip('.')}. Proposed next step: "
    proposal += {"incident": "restart the failing service and watch its error rate.",
                 "billing": "re-issue the invoice with the corrected amount.",
                 "security": "rotate the affected credentials and review access logs.",
                 "feature": "add it to the roadmap and share the expected timeline.",
                 }.get(category, "reply with the relevant help article.")
    if len(text.split()) < 5 and not feedback:
        proposal += " TODO: ask for details."
    return {"category": category, "proposal": proposal, "needs_human": needs_human,
            "revised": bool(feedback)}


def as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


PIPELINE_INTENTS = {"score": score, "decompose": decompose, "build": build, "check": check, "deliver": deliver,
                    "resolve": resolve}
