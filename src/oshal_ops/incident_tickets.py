"""Incidents kept as tickets of the platform: one ``incident`` ticket per incident (its idempotency key is the
incident's key and when it opened, so an alert storm or a restarted loop never opens it twice), and one report
ticket per incident (``report:<incident ticket>``, so a report is filed once however often it is asked for)."""

from __future__ import annotations

import json
from importlib.resources import files
from typing import Any

import yaml

from oshal_ops.api import PlatformAPI, PlatformError
from oshal_ops.model import Evidence, evidence_to_json

INCIDENT_TYPE = "incident"
REPORTER = "ops-reporter"
MAX_EVIDENCE_BYTES = 48 * 1024  # under the platform's default ticket input cap, with room for the rest of the input
_SMALLEST_EVIDENCE_BYTES = 4 * 1024


def workflow_definition() -> dict[str, Any]:
    document = yaml.safe_load((files("oshal_ops") / "workflows" / "incident.yaml").read_text())
    assert isinstance(document, dict)
    return document


async def publish_workflow(api: PlatformAPI) -> dict[str, Any]:
    """Publish (or keep: identical definitions are not republished) the incident ticket type."""
    result: dict[str, Any] = await api.post("/v1/workflows", {"definition": workflow_definition()})
    return result


def fit(evidence: list[Evidence], budget: int = MAX_EVIDENCE_BYTES) -> list[dict[str, Any]]:
    """The evidence as JSON, within ``budget`` bytes: the largest pieces lose their data (never their id, source,
    time and summary) until it fits, so every citation still resolves."""
    items = [evidence_to_json(e) for e in evidence]
    while len(json.dumps(items, default=str)) > budget:
        largest = max((i for i in items if i.get("data") is not None),
                      key=lambda i: len(json.dumps(i["data"], default=str)), default=None)
        if largest is None:
            break
        largest["data"] = None
        largest["summary"] += " (data left out: too large)"
    return items


async def open_incident(api: PlatformAPI, *, key: str, opened_at: str, signal: dict[str, Any],
                        evidence: list[Evidence], auto: bool, budget_micros: int) -> dict[str, Any]:
    """The incident's ticket, created held, given its spend cap (a budget on that ticket), then released. A platform
    whose ticket input limit is lower than the evidence gets it with less data (halved until it fits)."""
    budget = MAX_EVIDENCE_BYTES
    while True:
        body = {"type": INCIDENT_TYPE, "hold": True, "idempotency_key": f"incident:{key}@{opened_at}",
                "input": {"key": key, "signal": signal, "evidence": fit(evidence, budget), "auto": auto,
                          "opened_at": opened_at}}
        try:
            created: dict[str, Any] = await api.post("/v1/tickets", body)
            break
        except PlatformError as e:
            if e.status != 413 or budget <= _SMALLEST_EVIDENCE_BYTES:
                raise
            budget //= 2
    if created.get("created", True) and created.get("status") == "backlog":
        await api.put("/v1/budgets", {"scope": "ticket", "subject": str(created["id"]), "period": "lifetime",
                                      "limit_micros": budget_micros})
        await api.post(f"/v1/tickets/{created['id']}/approve", {"reason": "spend cap set; start the diagnosis"})
    return created


async def file_report(api: PlatformAPI, incident_ticket: str, payload: dict[str, Any],
                      wait_s: float = 30.0) -> dict[str, Any]:
    """The report ticket (once per incident), waited for."""
    created = await api.post("/v1/tickets", {"bot": REPORTER, "input": payload,
                                             "idempotency_key": f"report:{incident_ticket}"}, wait=wait_s)
    result: dict[str, Any] = created
    return result
