"""The loop: monitor on a schedule, open an incident for each new failure (or alert group), gather its evidence,
let the incident workflow diagnose it (and an operator approve the remedy, unless policy heals it on its own), then
act, verify and report. The platform keeps the state: a restarted loop picks its incidents up from their tickets.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from oshal_ops import evidence as gathering
from oshal_ops import report as reporting
from oshal_ops.alerts import AlertmanagerPayload
from oshal_ops.api import PlatformAPI, PlatformError
from oshal_ops.checks import CheckResult, check_endpoint, platform_checks
from oshal_ops.config import OpsConfig
from oshal_ops.incident_tickets import INCIDENT_TYPE, file_report, open_incident, publish_workflow
from oshal_ops.incidents import IncidentBook, IncidentChange
from oshal_ops.model import RCA, Evidence, Remedy, evidence_from_json, rca_from_json, rca_to_json

log = logging.getLogger("oshal_ops")
_LANE_SAMPLES = 10
_RECOVERY_LOOKS = 5  # after a verified action, how many times the signal is read before it counts as not recovered
_CONCLUDED = ("done", "escalated", "failed", "cancelled")
DIAGNOSER = "ops-diagnoser"
_ALERTS_AS_EVIDENCE = 20  # a storm's first alerts; the rest are counted in the incident, not attached
# What the diagnoser's failure mode is called in the loop's policy (config `automatic`).
_MODE_OF_SIGNAL = {"bot_offline": "dead_bot", "lane_stuck": "stuck_lane", "dead_letters": "poison_message",
                   "budget_exhausted": "exhausted_budget", "credential_failing": "failing_credential",
                   "engine_down": "engine_down", "endpoint_down": "endpoint_down"}


class Heal(Protocol):
    """Runs one allowlisted remedy for an incident: rate budgets, precondition, act, verify, roll back."""

    async def __call__(self, remedy: Remedy, incident: str) -> dict[str, Any]: ...


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


@dataclass
class Incident:
    key: str  # "check:bot:echo", or an alert group's key
    signal: dict[str, Any]
    detected_at: str
    last_ok_at: str | None
    ticket: str = ""
    state: str = "open"  # open | awaiting_approval | healing | closed
    diagnosed_at: str | None = None
    recovered_at: str | None = None
    actions: list[dict[str, Any]] = field(default_factory=list)
    report: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"key": self.key, "signal": self.signal, "detected_at": self.detected_at,
                "last_ok_at": self.last_ok_at, "ticket": self.ticket, "state": self.state,
                "diagnosed_at": self.diagnosed_at, "recovered_at": self.recovered_at}


class OpsService:
    def __init__(self, api: PlatformAPI, config: OpsConfig, heal: Heal,
                 endpoints: httpx.AsyncClient | None = None) -> None:
        self.api = api
        self.config = config
        self.heal = heal
        self._endpoints = endpoints or httpx.AsyncClient(follow_redirects=False)
        self.incidents: dict[str, Incident] = {}  # open ones, by key
        self.last_ok: dict[str, str] = {}  # check name -> when it last passed
        self.on_change: Callable[[Incident], Awaitable[None]] | None = None
        self.book = IncidentBook()  # Alertmanager's alert groups (a storm is one incident)
        self.lanes: dict[str, list[dict[str, Any]]] = {}  # recent timed samples of each bot's row (stuck lanes)
        # Closed while still failing (a rejected or unhealable remedy): no new incident until the check passes.
        self.unresolved: dict[str, str] = {}

    async def start(self) -> None:
        await publish_workflow(self.api)
        await self._recover()

    async def run(self, stop: asyncio.Event) -> None:
        await self.start()
        while not stop.is_set():
            try:
                await self.tick()
            except PlatformError as e:
                log.warning("ops loop: the platform refused or did not answer: %s", e)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.config.interval_s)

    async def _checks(self) -> list[CheckResult]:
        results = [await check_endpoint(self._endpoints, c) for c in self.config.checks()]
        return results + await platform_checks(self.api, self.config.thresholds())

    async def _signal_recovered(self, incident: Incident) -> str | None:
        """After a verified action: when the incident's own health signal reads healthy again (a few looks, one
        interval apart), or None. An alert's incident recovers when Alertmanager resolves it, so a verified action
        is its best evidence here."""
        if not incident.key.startswith("check:"):
            return _now()
        name = incident.key.removeprefix("check:")
        for attempt in range(_RECOVERY_LOOKS):
            if attempt:
                await asyncio.sleep(self.config.interval_s)
            result = next((r for r in await self._checks() if r.name == name), None)
            if result is None or result.ok:  # gone (the failing thing is out of service) or healthy
                return result.at.isoformat() if result else _now()
        return None

    async def tick(self) -> list[CheckResult]:
        """One round: run every check, open incidents for new failures, note recoveries, move incidents on."""
        results = await self._checks()
        failing = [r for r in results if not r.ok]
        for result in results:
            if result.name.startswith("bot:"):
                samples = self.lanes.setdefault(result.name[4:], [])
                samples.append({**result.observed, "at": result.at.isoformat()})
                del samples[:-_LANE_SAMPLES]
            key = f"check:{result.name}"
            if result.ok:
                self.last_ok[result.name] = result.at.isoformat()
                self.unresolved.pop(key, None)
                incident = self.incidents.get(key)
                if incident is not None and incident.recovered_at is None:
                    incident.recovered_at = result.at.isoformat()
            elif key not in self.incidents and key not in self.unresolved:
                await self.open(key, result.signal, failing, detected_at=result.at.isoformat(),
                                last_ok_at=self.last_ok.get(result.name))
        await self.advance()
        return results

    async def open(self, key: str, signal: dict[str, Any], failing: Sequence[CheckResult], *, detected_at: str,
                   last_ok_at: str | None, extra: Sequence[Evidence] = ()) -> Incident:
        incident = Incident(key, signal, detected_at, last_ok_at)
        self.incidents[key] = incident
        evidence = [*extra, *await gathering.gather(self.api, signal, list(failing), self.lanes)]
        auto = _MODE_OF_SIGNAL.get(str(signal.get("kind")), "") in self.config.automatic
        if auto and not await self._diagnoser_is_deterministic():
            auto = False  # a model's RCA can be steered by text in the evidence: a person approves its remedy
        created = await open_incident(self.api, key=key, opened_at=detected_at, signal=signal, evidence=evidence,
                                      auto=auto, budget_micros=int(self.config.incident_budget_usd * 1_000_000))
        incident.ticket = str(created["id"])
        log.warning("incident opened: %s (ticket %s)", key, incident.ticket)
        await self._changed(incident)
        return incident

    async def _diagnoser_is_deterministic(self) -> bool:
        bots: list[dict[str, Any]] = await self.api.get("/v1/bots")
        return any(b["name"] == DIAGNOSER and b["harness"] == "deterministic" for b in bots)

    async def on_alerts(self, payload: AlertmanagerPayload) -> list[IncidentChange]:
        """The webhook's callback: alerts grouped into incidents; a new group opens one (with the alerts as
        evidence), an all-resolved group notes its recovery."""
        changes = self.book.ingest(payload)
        for change in changes:
            grouped = self.book.get(change.incident_key)
            if grouped is None:
                continue
            if change.kind in ("incident_opened", "incident_reopened") and change.incident_key not in self.incidents:
                labels = dict(payload.common_labels)
                signal = {"kind": "alert", "alertname": labels.get("alertname", grouped.title),
                          **{k: v for k, v in labels.items() if k in ("bot", "connector", "endpoint", "severity")}}
                alerts = [Evidence(f"alert:{a.fingerprint}", "alert", f"alertmanager {payload.external_url}".strip(),
                                   change.at, f"{a.status} alert {a.name or grouped.title!r} since "
                                   f"{a.starts_at.isoformat()}",
                                   gathering.capped({"labels": a.labels, "annotations": a.annotations,
                                                     "startsAt": a.starts_at.isoformat(), "status": a.status}))
                          for a in list(grouped.alerts.values())[:_ALERTS_AS_EVIDENCE]]
                onset = min((a.starts_at for a in grouped.alerts.values()), default=change.at)
                await self.open(change.incident_key, signal, [], detected_at=change.at.isoformat(),
                                last_ok_at=onset.isoformat(), extra=alerts)
            elif change.kind == "incident_resolved" and change.incident_key in self.incidents:
                self.incidents[change.incident_key].recovered_at = change.at.isoformat()
        return changes

    async def advance(self) -> None:
        for incident in list(self.incidents.values()):
            if incident.state == "closed" or not incident.ticket:
                continue
            ticket = await self.api.get(f"/v1/tickets/{incident.ticket}")
            status = ticket["status"]
            if status == "approval_required" and incident.recovered_at is not None:
                # It recovered on its own (a supervisor restarted the process, the service came back): no remedy
                # is needed, so the gate is closed with that reason and the incident is reported.
                await self.api.post(f"/v1/tickets/{incident.ticket}/reject",
                                    {"reason": f"recovered on its own at {incident.recovered_at}; no action taken"})
                incident.diagnosed_at = incident.diagnosed_at or _now()
                await self._conclude(incident, await self.api.get(f"/v1/tickets/{incident.ticket}"))
            elif status == "approval_required" and incident.state != "awaiting_approval":
                incident.state = "awaiting_approval"
                incident.diagnosed_at = incident.diagnosed_at or _now()
                await self._changed(incident)
            elif status in _CONCLUDED:
                await self._conclude(incident, ticket)

    async def rca(self, incident: Incident) -> RCA | None:
        """The RCA the review accepted (or last saw), from the incident workflow's run: there at the gate already."""
        return rca_of_run(await self.api.get(f"/v1/tickets/{incident.ticket}/timeline"))

    async def _conclude(self, incident: Incident, ticket: dict[str, Any]) -> None:
        rca, evidence = await self.rca(incident), [evidence_from_json(e) for e in ticket["input"].get("evidence", [])]
        incident.diagnosed_at = incident.diagnosed_at or (ticket.get("finished_at") or _now())
        approved = ticket["status"] == "done" and (ticket.get("result") or {}).get("outcome") == "remediation_approved"
        if approved and rca is not None and incident.state != "healing":
            incident.state = "healing"
            for remedy in rca.remediation[: self.config.max_actions_per_incident]:
                incident.actions.append(await self.heal(remedy, incident.ticket))
                if incident.actions[-1].get("verified"):
                    incident.recovered_at = incident.recovered_at or await self._signal_recovered(incident)
                    if incident.recovered_at is None:
                        incident.actions[-1]["signal"] = "the action held, but the incident's signal did not recover"
                    break
        payload = {"incident": incident.as_dict(), "ticket_status": ticket["status"],
                   "rca": rca_to_json(rca) if rca else None,
                   # the report lists the evidence (id, what, source, when); its data stays on the incident's ticket
                   "evidence": [{**e, "data": None} for e in ticket["input"].get("evidence", [])],
                   "actions": incident.actions,
                   "timings": reporting.timings(incident.as_dict())}
        incident.report = await file_report(self.api, incident.ticket, payload)
        incident.state = "closed"
        if incident.recovered_at is None:
            self.unresolved[incident.key] = incident.ticket
        markdown = reporting.render(incident.as_dict(), rca, evidence, incident.actions)
        await self._remember(incident, markdown)
        self.incidents.pop(incident.key, None)
        log.warning("incident closed: %s", incident.key)
        await self._changed(incident)

    async def _remember(self, incident: Incident, markdown: str) -> None:
        """Past incidents go to the knowledge store, where the next gather finds them beside the runbooks."""
        try:
            await self.api.put(f"/v1/knowledge/incidents/{incident.ticket}",
                               {"title": f"Incident {incident.key}", "body": markdown,
                                "tags": [str(incident.signal.get("kind", "incident"))], "source": "oshal-ops"})
        except PlatformError as e:
            log.warning("could not store the incident report in the knowledge store: %s", e)

    async def _recover(self) -> None:
        """Incidents a previous run left (a restarted loop, or `run --once` again): still open, or finished but not
        yet reported (the report is filed once: its ticket's idempotency key is the incident's)."""
        page = await self.api.get("/v1/tickets", limit=500)
        for ticket in page.get("items", []):
            if ticket.get("type") != INCIDENT_TYPE:
                continue
            if ticket["status"] in _CONCLUDED and await self._reported(str(ticket["id"])):
                continue
            spec = ticket["input"]
            incident = Incident(str(spec["key"]), dict(spec.get("signal") or {}), str(spec.get("opened_at")),
                                None, ticket=str(ticket["id"]))
            self.incidents.setdefault(incident.key, incident)

    async def _reported(self, ticket: str) -> bool:
        try:
            await self.api.get(f"/v1/knowledge/incidents/{ticket}")
        except PlatformError as e:
            if e.status == 404:
                return False
            raise
        return True

    async def _changed(self, incident: Incident) -> None:
        if self.on_change is not None:
            await self.on_change(incident)


def rca_of_run(timeline: dict[str, Any]) -> RCA | None:
    """The review step's RCA in an incident ticket's timeline (its workflow run's outputs), if it got that far."""
    outputs = ((timeline.get("run") or {}).get("state") or {}).get("outputs") or {}
    review = outputs.get("review") if isinstance(outputs, dict) else None
    rca = review.get("rca") if isinstance(review, dict) else None
    return rca_from_json(rca) if isinstance(rca, dict) else None
