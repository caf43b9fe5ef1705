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


def evidence_to_json(item: Evidence) -> dict[str, Any]:
    return {"id": item.id, "kind": item.kind, "source": item.source, "collected_at": item.collected_at.isoformat(),
            "summary": item.summary, "data": item.data}


def evidence_from_json(value: dict[str, Any]) -> Evidence:
    return Evidence(str(value["id"]), str(value["kind"]), str(value["source"]),
                    datetime.fromisoformat(str(value["collected_at"])), str(value["summary"]), value.get("data"))


def claim_to_json(claim: Claim) -> dict[str, Any]:
    return {"text": claim.text, "citations": list(claim.citations)}


def claim_from_json(value: dict[str, Any]) -> Claim:
    return Claim(str(value["text"]), tuple(str(c) for c in value.get("citations") or ()))


def rca_to_json(rca: RCA) -> dict[str, Any]:
    return {"failure_mode": rca.failure_mode, "summary": rca.summary,
            "timeline": [claim_to_json(c) for c in rca.timeline], "root_cause": claim_to_json(rca.root_cause),
            "impact": claim_to_json(rca.impact),
            "remediation": [{"action": r.action, "target": r.target, "params": r.params, "risk": r.risk,
                             "why": claim_to_json(r.why)} for r in rca.remediation]}


def rca_from_json(value: dict[str, Any]) -> RCA:
    return RCA(str(value["failure_mode"]), str(value["summary"]),
               tuple(claim_from_json(c) for c in value.get("timeline") or ()),
               claim_from_json(value["root_cause"]), claim_from_json(value["impact"]),
               tuple(Remedy(str(r["action"]), str(r["target"]), dict(r.get("params") or {}), str(r["risk"]),
                            claim_from_json(r["why"])) for r in value.get("remediation") or ()))
