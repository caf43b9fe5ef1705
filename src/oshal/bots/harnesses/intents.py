"""Built-in deterministic intents: pure functions of the input, so results are reproducible offline."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from oshal.errors import HarnessError

Intent = Callable[[Any], Any]

_SENTENCE = re.compile(r"(?<=[.!?])\s+")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_URL = re.compile(r"https?://[^\s)>\]]+")
_NUMBER = re.compile(r"(?<![\w.])-?\d+(?:[.,]\d+)*(?![\w])")
_STEP_SPLIT = re.compile(r"\s*(?:;|\bthen\b|\band then\b|\n|,\s*and\b|\.\s+)\s*", re.IGNORECASE)

_LABELS: dict[str, tuple[str, ...]] = {
    "incident": ("down", "outage", "error", "fail", "crash", "broken", "500", "timeout", "alert"),
    "billing": ("invoice", "charge", "refund", "payment", "price", "billing", "card", "subscription"),
    "security": ("password", "breach", "leak", "phish", "vulnerab", "token", "unauthori", "cve"),
    "feature": ("add", "feature", "would like", "could you", "support for", "request", "improve"),
}


def _text(value: Any, intent: str) -> str:
    if isinstance(value, dict) and isinstance(value.get("text"), str):
        return str(value["text"])
    if isinstance(value, str):
        return value
    raise HarnessError(
        f"the {intent} intent expects input.text (a string)",
        hint='submit e.g. {"text": "..."}',
    )


def echo(value: Any) -> Any:
    return value


def summarize(value: Any) -> Any:
    text = _text(value, "summarize").strip()
    sentences = [s for s in _SENTENCE.split(text) if s]
    limit = int(value.get("sentences", 2)) if isinstance(value, dict) else 2
    return {"summary": " ".join(sentences[: max(limit, 1)]), "sentences": len(sentences),
            "words": len(text.split())}


def classify(value: Any) -> Any:
    text = _text(value, "classify").lower()
    scores = {label: sum(text.count(word) for word in words) for label, words in _LABELS.items()}
    best = max(scores, key=lambda label: (scores[label], label))
    return {"label": best if scores[best] > 0 else "general", "scores": scores}


def extract(value: Any) -> Any:
    text = _text(value, "extract")
    return {"emails": sorted(set(_EMAIL.findall(text))), "urls": sorted(set(_URL.findall(text))),
            "numbers": _NUMBER.findall(text)}


def plan(value: Any) -> Any:
    goal = value.get("goal") if isinstance(value, dict) else value
    if not isinstance(goal, str) or not goal.strip():
        raise HarnessError("the plan intent expects input.goal (a non-empty string)",
                           hint='submit e.g. {"goal": "build X then test it"}')
    steps = [s.strip(" .") for s in _STEP_SPLIT.split(goal) if s.strip(" .")]
    return {"goal": goal, "steps": [{"n": i + 1, "do": s} for i, s in enumerate(steps)]}


def review(value: Any) -> Any:
    text = _text(value, "review")
    issues = []
    if len(text.split()) < 5:
        issues.append("too short to review meaningfully")
    for marker in ("TODO", "FIXME", "XXX"):
        if marker in text:
            issues.append(f"contains {marker}")
    if re.search(r"(password|secret|api[_-]?key)\s*[:=]", text, re.IGNORECASE):
        issues.append("appears to contain a credential")
    return {"verdict": "revise" if issues else "approve", "issues": issues}


INTENTS: dict[str, Intent] = {
    "echo": echo, "summarize": summarize, "classify": classify, "extract": extract, "plan": plan,
    "review": review,
}
