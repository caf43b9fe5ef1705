"""Builds the live topology (:class:`~oshal.topology.model.Topology`) from the running system: the bot registry
and its lanes and heartbeats, the engines' health and size, the connector catalog, the kill switches, row-level
security, the Security Center's last scans and open findings, the workflows, and the caller's tickets. Every view,
page and export reads what this module builds."""

from __future__ import annotations

import contextlib
from collections import Counter, defaultdict
from typing import Any
from uuid import UUID

from redis.asyncio import Redis

from oshal.control.engine_health import EngineHealth
from oshal.errors import NotFound
from oshal.mesh import lanes
from oshal.mesh.redis import REDIS_DOWN
from oshal.mesh.redis_keys import lane_stream
from oshal.security.killswitch import KillSwitches
from oshal.settings import Settings
from oshal.store import access, catalog, findings
from oshal.store import connectors as connector_repo
from oshal.store import tickets as ticket_repo
from oshal.store import workflows as workflow_repo
from oshal.store.db import Conn, Database
from oshal.topology.model import (
    BotState,
    ConnectorState,
    Control,
    Health,
    StoreState,
    Topology,
    WorkflowState,
)

_SEVERE = ("critical", "high")


class TopologySource:
    def __init__(self, db: Database, redis: Redis, kill: KillSwitches, health: EngineHealth,
                 settings: Settings) -> None:
        self.db = db
        self.redis = redis
        self.kill = kill
        self.health = health
        self.settings = settings

    async def build(self, tenant: UUID, ticket: UUID | None = None) -> Topology:
        """The platform as it runs now, with the ticket counts and route timings of ``tenant`` (of its ``ticket``
        alone when one is named: NotFound when it has no finished attempt)."""
        await self.kill.load()
        async with self.db.system() as conn:
            registered = await access.bots(conn)
            catalog_rows = await connector_repo.connectors(conn)
        async with self.db.tenant(tenant) as conn:
            definitions = await workflow_repo.definitions(conn)
            steps = {d["name"]: await workflow_repo.definition(conn, d["name"], d["version"]) for d in definitions}
            counts = await ticket_repo.counts(conn)
            per_type = await ticket_repo.type_counts(conn)
            facts = await catalog.facts(conn)
            open_findings = await findings.open_counts(conn)
            runs = await findings.last_runs(conn)
            route = await _route(conn, ticket)
        declared = {str(r["name"]): int(r["replicas"]) for r in registered}
        try:
            live = await lanes.live_replicas(self.redis)
            bots = [await self._bot(row, live) for row in registered]
            bots += [BotState(name, "", "", lane_stream(name), n, 0, 0, 0, declared=False)
                     for name, n in sorted(live.items()) if name not in declared]
            found = tuple(d.text for d in lanes.fleet_drift(declared, live, await lanes.consumed(self.redis, declared)))
        except REDIS_DOWN:  # the diagram is wanted most when an engine is down: draw what Postgres knows
            bots = [BotState(str(r["name"]), str(r["harness"]), str(r["model"]), lane_stream(str(r["name"])), 0,
                             int(r["replicas"]), 0, 0, declared=True, observed=False) for r in registered]
            found = ("redis is down: the bots' heartbeats and lanes cannot be observed",)
        flows = tuple(_workflow(d, steps[d["name"]], per_type) for d in definitions)
        return Topology(
            bots=tuple(bots),
            stores=tuple(await self._stores(facts)),
            connectors=tuple(ConnectorState(str(r["id"]), str(r["state"]), r["signature"] is not None,
                                            str(r["quarantine_reason"] or "")) for r in catalog_rows),
            controls=tuple(self._controls(facts, open_findings, runs)),
            workflows=flows,
            applications=tuple(sorted({flow.application for flow in flows if flow.application})),
            ticket_counts=tuple(sorted(counts.items())),
            drift=found,
            route=route,
            route_ticket=None if ticket is None else str(ticket),
        ).sorted()

    async def _bot(self, row: dict[str, Any], live: dict[str, int]) -> BotState:
        name = str(row["name"])
        stats = await lanes.lane_stats(self.redis, name)
        return BotState(name, str(row["harness"]), str(row["model"]), lane_stream(name), live.get(name, 0),
                        int(row["replicas"]), stats.pending, stats.lag, declared=True, held_by=self.kill.blocks(name))

    async def _stores(self, facts: dict[str, Any]) -> list[StoreState]:
        engines = await self.health.current()
        embedded = self.settings.database_url is None
        memory = "unknown"
        if engines["redis"].ready:
            with contextlib.suppress(*REDIS_DOWN):
                info = await self.redis.info("memory")
                memory = str(info.get("used_memory_human", "unknown"))

        def state(name: str) -> Health:
            return Health.OK if engines[name].ready else Health.DOWN

        return [
            StoreState("postgres", "embedded postgres" if embedded else "external postgres", state("postgres"),
                       f"{int(facts['size_bytes']) // (1024 * 1024)} MB"),
            StoreState("redis", "embedded redis" if embedded else "external redis", state("redis"),
                       f"{memory} used"),
            StoreState("object store", self.settings.object_store, Health.OK),
            StoreState("secrets", self.settings.secrets_backend, Health.OK),
        ]

    def _controls(self, facts: dict[str, Any], open_findings: list[dict[str, Any]],
                  runs: list[dict[str, Any]]) -> list[Control]:
        forced, tables = int(facts["forced"]), int(facts["tenant_tables"])
        engaged = sorted(self.kill.engaged)
        controls = [
            Control("row-level security", "enforced", Health.OK if forced == tables else Health.DOWN,
                    f"{forced} of {tables} tenant tables forced"),
            Control("kill switches", "enforced", Health.DEGRADED if engaged else Health.OK,
                    ", ".join(engaged) or "none engaged"),
            Control("broker", "enforced", Health.OK, "bots hold no credentials; grants per call"),
            Control("fail closed", "enforced", Health.OK, f"mode {self.settings.mode}"),
        ]
        by_scan: dict[str, Counter[str]] = defaultdict(Counter)
        for row in open_findings:
            by_scan[str(row["scan"])][str(row["severity"])] += int(row["n"])
        for run in runs:
            scan = str(run["scan"])
            found = by_scan.get(scan, Counter())
            severe = sum(found[s] for s in _SEVERE)
            health = Health.DOWN if run["error"] else Health.DEGRADED if severe else Health.OK
            summary = ", ".join(f"{n} {sev}" for sev, n in sorted(found.items())) or "no open findings"
            controls.append(Control(f"{scan} scan", "watched", health,
                                    f"error: {run['error']}" if run["error"] else summary))
        return controls


async def _route(conn: Conn, ticket: UUID | None) -> tuple[tuple[str, float, float], ...]:
    if ticket is None:
        recent = await ticket_repo.recent_route_percentiles(conn)
        return tuple((span, p50, p99) for span, (p50, p99) in recent.items())
    spans = await ticket_repo.route_spans(conn, ticket)
    if spans is None:
        raise NotFound(f"no finished attempt of a plain ticket {ticket} in this tenant",
                       hint="name a ticket of yours that a bot has finished (workflow tickets have no single route)")
    return tuple((span, ms, ms) for span, ms in spans.items())


def _workflow(definition: dict[str, Any], full: dict[str, Any] | None, per_type: list[dict[str, Any]]) -> WorkflowState:
    document = (full or {}).get("document") or {}
    step_ids = tuple(str(s.get("id", "")) for s in document.get("steps", []) if isinstance(s, dict))
    counts = tuple((str(r["status"]), int(r["n"])) for r in per_type if r["type"] == definition["name"])
    return WorkflowState(str(definition["name"]), int(definition["version"]), step_ids, counts,
                         str(document.get("application") or ""))
