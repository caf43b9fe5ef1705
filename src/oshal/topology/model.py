"""The live topology: what runs, what it holds, and what watches it, as one immutable value.

Everything is sorted by name when the model is built, so equal states are equal values and render to the same
bytes. Times are ages in seconds rounded to whole seconds, never clock readings, for the same reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Health(StrEnum):
    OK = "ok"
    DEGRADED = "degraded"  # running, with something to look at (a lag, a held lane, an unsigned connector)
    DOWN = "down"  # declared and expected, but not running or not answering
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class BotState:
    name: str
    harness: str
    model: str
    lane: str
    replicas: int  # live, from heartbeats
    replicas_desired: int  # from the manifest; 0 for a bot that runs but is not declared
    pending: int
    lag: int
    declared: bool
    held_by: str | None = None  # the kill switch that stops it, if any
    observed: bool = True  # False while Redis (its lane and heartbeats) cannot be read

    @property
    def health(self) -> Health:
        if not self.observed:
            return Health.UNKNOWN
        if self.declared and self.replicas_desired and not self.replicas:
            return Health.DOWN
        if not self.declared or self.held_by or self.replicas < self.replicas_desired:
            return Health.DEGRADED
        return Health.OK


@dataclass(frozen=True, slots=True)
class StoreState:
    name: str  # postgres, redis, object store, secrets
    kind: str  # what implements it: embedded postgres, external redis, local files, vault, ...
    health: Health
    detail: str = ""


@dataclass(frozen=True, slots=True)
class ConnectorState:
    id: str
    state: str  # draft, enabled, quarantined, ...
    signed: bool
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Control:
    """A security control: enforced ones say what holds; watched ones (scans) say what they last found."""

    name: str
    kind: str  # "enforced" or "watched"
    health: Health
    detail: str = ""


@dataclass(frozen=True, slots=True)
class WorkflowState:
    name: str
    version: int
    steps: tuple[str, ...]
    counts: tuple[tuple[str, int], ...] = ()  # tickets of this type per status
    application: str = ""  # the application whose flow it is ("" for the platform's own workflows)


@dataclass(frozen=True, slots=True)
class Topology:
    bots: tuple[BotState, ...] = ()
    stores: tuple[StoreState, ...] = ()
    connectors: tuple[ConnectorState, ...] = ()
    controls: tuple[Control, ...] = ()
    workflows: tuple[WorkflowState, ...] = ()
    ticket_counts: tuple[tuple[str, int], ...] = ()  # the caller's tickets per status
    applications: tuple[str, ...] = ()  # the application flows installed (trading desk, operations loop)
    # The measured spans of the request route: (span, p50 ms, p99 ms), over recent tickets or for one ticket
    # (``route_ticket``, p50 = p99 = its own time).
    route: tuple[tuple[str, float, float], ...] = ()
    route_ticket: str | None = None
    drift: tuple[str, ...] = field(default=())  # declared vs live: each difference in words

    def sorted(self) -> Topology:
        """The same state in its one canonical order."""
        return Topology(
            bots=tuple(sorted(self.bots, key=lambda b: b.name)),
            stores=tuple(sorted(self.stores, key=lambda s: s.name)),
            connectors=tuple(sorted(self.connectors, key=lambda c: c.id)),
            controls=tuple(sorted(self.controls, key=lambda c: (c.kind, c.name))),
            workflows=tuple(sorted(self.workflows, key=lambda w: w.name)),
            ticket_counts=tuple(sorted(self.ticket_counts)),
            applications=tuple(sorted(self.applications)),
            drift=tuple(sorted(self.drift)),
            route=tuple(sorted(self.route)),
            route_ticket=self.route_ticket,
        )

