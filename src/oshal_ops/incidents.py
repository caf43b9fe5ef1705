"""Grouping alerts into incidents: pure state in memory, fed alerts, answering with what changed.

An incident is named by a key derived only from where its alerts come from (:func:`incident_key`): an Alertmanager
group's ``groupKey`` (so a storm of alerts in one group is one incident, and Alertmanager's HA peers, which share
group keys, feed the same one), or one of the loop's own checks. The same key always names the same incident, so
the caller can persist an incident as a platform ticket with the key as its idempotency key.

Within an incident an alert is known by its fingerprint. Re-sent alerts change nothing; a resolved alert is kept
with the time it ended; an incident whose alerts have all resolved is resolved, and reopens when one fires again.
Alertmanager's HA peers may deliver the same notification twice and out of order, so an alert's start time decides
which news is newer: a resolution of an earlier firing, or a firing already resolved, is stale and ignored.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Literal

from oshal_ops.alerts import Alert, AlertmanagerPayload, AlertStatus

MAX_CHECK_NAME = 120  # the key, inside a ticket idempotency key with a time, stays within its 200 characters
ALERTMANAGER_PREFIX = "alertmanager:"
CHECK_PREFIX = "check:"

ChangeKind = Literal["incident_opened", "alert_added", "alert_resolved", "alert_refired", "incident_resolved",
                     "incident_reopened"]
Source = Literal["alertmanager", "check"]


def incident_key(*, group_key: str | None = None, check: str | None = None) -> str:
    """The key of the incident for an Alertmanager ``group_key`` or for the check named ``check`` (give exactly one).

    A group key is hashed: it is as long as the route's matchers and group labels make it, and may hold any
    character. A check's name is kept as it is, so the key reads ``check:shop-home``.
    """
    if (group_key is None) == (check is None):
        raise ValueError("give exactly one of group_key (an Alertmanager group) or check (a check's name)")
    if group_key is not None:
        if not group_key:
            raise ValueError("an Alertmanager group key must not be empty")
        return ALERTMANAGER_PREFIX + hashlib.sha256(group_key.encode()).hexdigest()[:32]
    assert check is not None
    if not check.strip() or len(check) > MAX_CHECK_NAME or "\x00" in check:
        raise ValueError(f"a check's name must be 1 to {MAX_CHECK_NAME} characters, not blank and without NUL; "
                         f"got {check[:40]!r}" + ("..." if len(check) > 40 else ""))
    return CHECK_PREFIX + check


@dataclass(frozen=True, slots=True)
class AlertRecord:
    """What an incident knows of one alert. ``ends_at`` is set once it resolved."""

    fingerprint: str
    status: AlertStatus
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: datetime
    ends_at: datetime | None
    generator_url: str
    first_seen: datetime  # when the loop first heard of it

    @property
    def name(self) -> str:
        return self.labels.get("alertname", "")


@dataclass(slots=True)
class Incident:
    key: str
    source: Source
    origin: str  # the Alertmanager group key, or the check's name
    title: str
    opened_at: datetime
    labels: dict[str, str] = field(default_factory=dict)  # the group's labels (a check's name)
    alerts: dict[str, AlertRecord] = field(default_factory=dict)  # by fingerprint, in the order first seen
    resolved_at: datetime | None = None
    truncated_alerts: int = 0  # Alertmanager left this many alerts out of its last notification (max_alerts)
    external_url: str = ""  # the Alertmanager that sent it

    @property
    def status(self) -> Literal["open", "resolved"]:
        return "resolved" if self.resolved_at is not None else "open"

    @property
    def firing(self) -> list[AlertRecord]:
        return [a for a in self.alerts.values() if a.status == "firing"]

    def copy(self) -> Incident:
        return replace(self, labels=dict(self.labels), alerts=dict(self.alerts))


@dataclass(frozen=True, slots=True)
class IncidentChange:
    """One thing that changed. ``alert`` is the alert it is about (None for the incident-level kinds)."""

    kind: ChangeKind
    incident_key: str
    at: datetime
    alert: AlertRecord | None = None


@dataclass(frozen=True, slots=True)
class _Signal:
    """An alert as the book sees it, from Alertmanager or from a check."""

    fingerprint: str
    status: AlertStatus
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: datetime
    ends_at: datetime | None
    generator_url: str = ""

    @classmethod
    def of(cls, alert: Alert) -> _Signal:
        return cls(alert.fingerprint, alert.status, dict(alert.labels), dict(alert.annotations), alert.starts_at,
                   alert.ended_at, alert.generator_url)


def _title(payload: AlertmanagerPayload) -> str:
    name = payload.group_labels.get("alertname") or payload.common_labels.get("alertname")
    if name:
        summary = payload.common_annotations.get("summary", "")
        return f"{name}: {summary}" if summary else name
    labels = payload.group_labels or payload.common_labels
    if labels:
        return "alerts of " + ", ".join(f"{k}={v}" for k, v in sorted(labels.items()))
    return f"alerts of group {payload.group_key}"


def _utc(at: datetime | None) -> datetime:
    if at is None:
        return datetime.now(UTC)
    if at.tzinfo is None:
        raise ValueError("times must be timezone-aware (UTC)")
    return at.astimezone(UTC)


class IncidentBook:
    """Incidents by key, in memory. Feed it Alertmanager payloads (:meth:`ingest`) and check outcomes
    (:meth:`observe_check`); each returns the changes in the order they happened. Not thread-safe: one caller."""

    def __init__(self, incidents: Iterable[Incident] = ()) -> None:
        self._incidents: dict[str, Incident] = {i.key: i.copy() for i in incidents}

    def get(self, key: str) -> Incident | None:
        """A copy of the incident (changing it changes nothing here)."""
        incident = self._incidents.get(key)
        return incident.copy() if incident is not None else None

    def __iter__(self) -> Iterator[Incident]:
        return iter([i.copy() for i in self._incidents.values()])

    def __len__(self) -> int:
        return len(self._incidents)

    def forget_resolved(self, before: datetime) -> int:
        """Drop incidents resolved before ``before`` (to bound memory); how many were dropped. A later alert of the
        same group opens an incident with the same key again."""
        cutoff = _utc(before)
        gone = [k for k, i in self._incidents.items() if i.resolved_at is not None and i.resolved_at < cutoff]
        for key in gone:
            del self._incidents[key]
        return len(gone)

    def ingest(self, payload: AlertmanagerPayload, *, received_at: datetime | None = None) -> list[IncidentChange]:
        """Take one Alertmanager notification: every alert in it belongs to the incident of its group."""
        now = _utc(received_at)
        key = incident_key(group_key=payload.group_key)
        incident = self._incidents.get(key)
        changes: list[IncidentChange] = []
        if incident is None and not payload.alerts:
            return []
        if incident is None:
            incident = Incident(key, "alertmanager", payload.group_key, _title(payload), now,
                                labels=dict(payload.group_labels))
            changes.append(IncidentChange("incident_opened", key, now))
        incident.truncated_alerts = payload.truncated_alerts
        incident.external_url = payload.external_url
        for alert in payload.alerts:
            changes.extend(self._apply(incident, _Signal.of(alert), now))
        return self._settle(incident, changes, now)

    def observe_check(self, name: str, *, healthy: bool, at: datetime | None = None, summary: str = "",
                      details: dict[str, str] | None = None) -> list[IncidentChange]:
        """Take one outcome of the check ``name``: a failure fires its incident's one alert (``check:<name>``), a
        success after a failure resolves it. A success with no incident changes nothing."""
        now = _utc(at)
        key = incident_key(check=name)
        incident = self._incidents.get(key)
        if incident is None and healthy:
            return []
        labels = {"alertname": "CheckFailed", "check": name, **(details or {})}
        known = incident.alerts.get(key) if incident is not None else None
        if healthy:
            if known is None or known.status == "resolved":
                return []
            signal = _Signal(key, "resolved", known.labels, known.annotations, known.starts_at, now)
        else:
            starts_at = known.starts_at if known is not None and known.status == "firing" else now
            signal = _Signal(key, "firing", labels, {"summary": summary} if summary else {}, starts_at, None)
        changes: list[IncidentChange] = []
        if incident is None:
            incident = Incident(key, "check", name, f"check {name} is failing" + (f": {summary}" if summary else ""),
                                now, labels={"check": name})
            changes.append(IncidentChange("incident_opened", key, now))
        changes.extend(self._apply(incident, signal, now))
        return self._settle(incident, changes, now)

    def _apply(self, incident: Incident, signal: _Signal, now: datetime) -> list[IncidentChange]:
        known = incident.alerts.get(signal.fingerprint)
        if known is None:
            record = AlertRecord(signal.fingerprint, signal.status, signal.labels, signal.annotations,
                                 signal.starts_at, (signal.ends_at or now) if signal.status == "resolved" else None,
                                 signal.generator_url, now)
            incident.alerts[signal.fingerprint] = record
            return [IncidentChange("alert_added", incident.key, now, record)]
        if known.status == "firing" and signal.status == "resolved" and signal.starts_at >= known.starts_at:
            record = replace(known, status="resolved", ends_at=signal.ends_at or now)
            incident.alerts[signal.fingerprint] = record
            return [IncidentChange("alert_resolved", incident.key, now, record)]
        if known.status == "resolved" and signal.status == "firing" and signal.starts_at > known.starts_at:
            record = replace(known, status="firing", starts_at=signal.starts_at, ends_at=None,
                             labels=signal.labels, annotations=signal.annotations)
            incident.alerts[signal.fingerprint] = record
            return [IncidentChange("alert_refired", incident.key, now, record)]
        return []  # the same news again, or older news than what is known

    def _settle(self, incident: Incident, changes: list[IncidentChange], now: datetime) -> list[IncidentChange]:
        """Store the incident and resolve or reopen it by its alerts' states."""
        self._incidents[incident.key] = incident
        all_resolved = bool(incident.alerts) and not incident.firing
        if all_resolved and incident.resolved_at is None:
            incident.resolved_at = now
            changes.append(IncidentChange("incident_resolved", incident.key, now))
        elif not all_resolved and incident.resolved_at is not None:
            incident.resolved_at = None
            changes.append(IncidentChange("incident_reopened", incident.key, now))
        return changes
