"""What the loop's stages hand each other: evidence with its source, and the root-cause analysis that cites it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class Evidence:
    """One piece of evidence an incident rests on: what it says, where it came from and when it was read."""

    id: str  # stable within an incident: "bots", "lane:echo", "check:shop-home", "audit", "runbook:dead-bot"
    kind: str  # bots | lane | dead_letters | budgets | connections | readyz | audit | check | alert | runbook | ...
    source: str  # "GET /v1/bots", "GET http://127.0.0.1:9000/health", "alertmanager"
    collected_at: datetime  # aware, UTC
    summary: str  # one line a person reads
    data: Any  # the JSON it is based on (capped in size by the gatherer)


@dataclass(frozen=True, slots=True)
class Claim:
    text: str
    citations: tuple[str, ...]  # Evidence.id values; a claim without one is refused by the citation check


@dataclass(frozen=True, slots=True)
class Remedy:
    action: str  # a name from the action allowlist (actions.py)
    target: str  # a bot name, a connector id, "global"
    params: dict[str, Any]
    risk: str  # low | medium | high
    why: Claim


@dataclass(frozen=True, slots=True)
class RCA:
    failure_mode: str  # dead_bot | stuck_lane | poison_message | exhausted_budget | failing_credential | ...
    summary: str
    timeline: tuple[Claim, ...]
    root_cause: Claim
    impact: Claim
    remediation: tuple[Remedy, ...]
