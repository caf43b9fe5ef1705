"""The control plane's resources and background loops, opened and closed as one unit."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from oshal.audit import trail
from oshal.audit.anchors import AnchorLog
from oshal.connectors.broker import Broker
from oshal.connectors.manifest_cache import ManifestCache
from oshal.connectors.mcp_runtime import McpRuntime
from oshal.connectors.runtime import ConnectorRuntime
from oshal.connectors.trust import TrustStore
from oshal.control.admin import AdminService
from oshal.control.artifacts import ArtifactService
from oshal.control.auth import Authenticator
from oshal.control.batches import TenantBatches
from oshal.control.bot_registry import BotRegistry
from oshal.control.bot_tokens import BotTokens
from oshal.control.budgets import BudgetService
from oshal.control.connector_calls import ConnectorService
from oshal.control.connector_catalog import Catalog
from oshal.control.console_sessions import ConsoleSessions
from oshal.control.engine_health import EngineHealth
from oshal.control.events import EventHub
from oshal.control.fleet_control import FleetControl
from oshal.control.loops.collector import Collector
from oshal.control.loops.scheduler import Scheduler
from oshal.control.loops.sweeper import Sweeper
from oshal.control.model_gateway import ModelGateway
from oshal.control.node_enrollment import NodeEnrollment
from oshal.control.node_tokens import NodeTokens
from oshal.control.ratelimit import KeyRateLimiter
from oshal.control.reservation_ttl import check_reservation_ttl, registered_manifests
from oshal.control.schedules import ScheduleService
from oshal.control.ticket_actions import Lifecycle
from oshal.control.tickets import TicketService
from oshal.control.tool_gateway import ToolGateway
from oshal.control.workflows import WorkflowService
from oshal.ledger import PriceTable, load_price_file
from oshal.ledger.prices import price_from_row
from oshal.logs import get_logger
from oshal.mesh import lanes
from oshal.mesh.acl import ensure_bot_users
from oshal.mesh.dispatcher import Dispatcher
from oshal.mesh.redis import connect
from oshal.mesh.results import ResultStreams
from oshal.mesh.signing import DispatchSigner, derive_key
from oshal.secrets import open_secret_store
from oshal.security.center import SecurityCenter
from oshal.security.killswitch import KillSwitches
from oshal.security.scans import RouteInfo, ScanContext
from oshal.settings import Settings
from oshal.store import access
from oshal.store import ledger as ledger_repo
from oshal.store import recordings as recordings_repo
from oshal.store.db import Database
from oshal.store.objects import open_object_store
from oshal.store.recordings import Recording
from oshal.workflows.runner import WorkflowRunner

log = get_logger(__name__)
_PRICE_RELOAD_S = 60.0
_LOOP_RESTART_S = 0.5


@dataclass(frozen=True, slots=True)
class Components:
    collector: bool = True
    sweeper: bool = True
    scheduler: bool = True


@dataclass
class ControlPlane:
    settings: Settings
    db_url: str
    redis_url: str
    dispatch_key: bytes
    components: Components = field(default_factory=Components)

    def __post_init__(self) -> None:
        s = self.settings
        self.db = Database(self.db_url, min_size=2, max_size=s.db_pool_size, name="oshal-api")
        self.redis = connect(self.redis_url)
        self.signer = DispatchSigner(self.dispatch_key)
        self.events = EventHub(self.redis)
        self.registry = BotRegistry(self.db)
        self.auth = Authenticator(self.db)
        self.rate_limits = KeyRateLimiter(s.rate_limit_per_s, s.rate_limit_burst)
        self.admin = AdminService(self.db, self.auth)
        self.console_sessions = ConsoleSessions(self.db, self.auth, ttl_s=s.console_session_ttl_s)
        self.dispatcher = Dispatcher(self.db, self.redis, self.signer)
        self.kill = KillSwitches(self.db, self.dispatcher)
        self.fleet = FleetControl(self.db)
        self.runner = WorkflowRunner(self.db, self.dispatcher, self.registry.resolve, self.events.publish)
        self.tickets = TicketService(self.db, self.registry, self.events, self.dispatcher, self.runner,
                                     max_input_bytes=s.max_input_bytes)
        self.scheduler = Scheduler(self.db, self.tickets, interval_s=s.scheduler_interval_s)
        self.schedules = ScheduleService(self.db, self.tickets)
        self.lifecycle = Lifecycle(self.db, self.runner)
        self.workflows = WorkflowService(self.db, self.runner, self.registry, self.tickets)
        self.objects = open_object_store(s)
        self.prices = PriceTable(load_price_file(s.prices_file))
        self.trust = TrustStore.in_home(s.home)
        self.catalog = Catalog(self.db, self.trust)
        self.secrets = open_secret_store(s, self.db)
        self.broker = Broker(self.db, derive_key(self.dispatch_key, "broker"), manifests=ManifestCache())
        self.bot_tokens = BotTokens(derive_key(self.dispatch_key, "bot-tokens"))
        self.node_tokens = NodeTokens(self.db)
        self.nodes = NodeEnrollment(self.db, self.redis, self.redis_url, self.dispatch_key, self.registry,
                                    self.node_tokens, s, self.auth.failures)
        self.connector_runtime = ConnectorRuntime(default_rate_limit=(s.connector_rate_per_s, s.connector_burst))
        self.recorder: TenantBatches[Recording] = TenantBatches(
            self.db, lambda r: r.tenant_id, recordings_repo.save, what="tool call recordings", linger_s=0.05)
        self.gateway = ToolGateway(self.db, self.signer, self.bot_tokens, self.broker,
                                   ConnectorService(self.db, self.broker, self.secrets, self.connector_runtime,
                                                    McpRuntime()), self.recorder,
                                   on_approval_needed=self.lifecycle.tool_approval_needed,
                                   node_tokens=self.node_tokens)
        self.budgets = BudgetService(self.db, self.redis, lambda: self.prices, self.lifecycle, s)
        self.models = ModelGateway(self.db, self.gateway.identify, self.budgets)
        self.artifacts = ArtifactService(self.db, self.objects, self.gateway.identify, max_bytes=s.max_artifact_bytes)
        self.collector = Collector(self.db, ResultStreams(self.redis), self.signer, self.events, lambda: self.prices,
                                   lambda: self.registry.names, batch=s.collector_batch, runner=self.runner,
                                   on_room=self.budgets.after_settlement, done_marker_ttl_s=s.done_marker_ttl_s,
                                   loops=s.collector_loops)
        self.sweeper = Sweeper(self.db, self.redis, self.dispatcher, lambda: self.registry.names,
                               runner=self.runner, kill=self.kill, budgets=self.budgets,
                               stale_after_s=s.stale_after_s, interval_s=s.sweep_interval_s)
        self.audit_key = derive_key(self.dispatch_key, "audit")
        self.audit_anchors = AnchorLog.in_home(s.home, self.audit_key,
                                               self.objects if s.object_store == "s3" else None)
        self.routes: Callable[[], list[RouteInfo]] = list
        self.app: Any = None  # the API application serving this plane (set by create_app)
        self.security = SecurityCenter(
            ScanContext(self.db, self.redis, s, routes=lambda: self.routes(), broken_connectors=self.catalog.broken,
                        bots=lambda: self.registry.names, audit_anchors=self.audit_anchors,
                        connector_code=[s.connectors_dir]),
            self.admin.system_tenant, webhook_url=s.security_webhook_url)
        self.budgets.on_overrun = lambda: self.security.scan(["ledger"])
        self.health = EngineHealth(self.db, self.redis, self._restore_bot_identities)
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def _restore_bot_identities(self) -> None:
        """A new Redis server (restart, failover, first contact): give back the bot users and lane groups it lacks,
        so bots whose login was refused get in on their next retry."""
        names = sorted(self.registry.names)
        missing = await ensure_bot_users(self.redis, self.redis_url, names, self.dispatch_key)
        if missing:
            log.warning("re-created the bot ACL users Redis had lost", bots=missing)
        await lanes.ensure_groups(self.redis, names)
        # last: it reads Postgres, which may be down too; the bots' own users and groups are back first
        nodes = await self.nodes.restore_users()
        if nodes:
            log.warning("re-created the remote nodes' ACL users Redis had lost", nodes=[str(n) for n in nodes])

    async def start(self) -> None:
        await self.db.open()
        try:
            await self.redis.ping()
            await self.registry.refresh()
            await self._check_reservation_ttl()
        except BaseException:
            await self.redis.aclose()
            await self.db.close()
            raise
        await self.reload_prices()
        await self.events.start()
        await self.kill.refresh()
        quarantined = await self.catalog.reverify()
        if quarantined:
            log.warning("connectors quarantined at start-up", connectors=quarantined)
        self._stop.clear()
        self._keep_running("refresh", self._refresh_loop)
        self._keep_running("engine health", lambda: self.health.run(self._stop))
        self._keep_running("auth", lambda: self.auth.run(self._stop))
        self._keep_running("audit", self._audit_loop)
        if self.components.sweeper:  # the replica that sweeps also scans (one at a time, under a lock)
            self._keep_running("security", lambda: self.security.run(self._stop,
                                                                     self.settings.security_scan_interval_s))
        if self.components.collector:
            self._keep_running("collector", lambda: self.collector.run(self._stop))
        if self.components.sweeper:
            self._keep_running("sweeper", lambda: self.sweeper.run(self._stop))
        if self.components.scheduler:
            self._keep_running("scheduler", lambda: self.scheduler.run(self._stop))
        log.info("control plane started", bots=sorted(self.registry.names))

    async def _check_reservation_ttl(self) -> None:
        """No registered bot's model call may outlive its budget reservation (start-up fails, naming the bot)."""
        async with self.db.system() as conn:
            rows = await access.bots(conn)
        check_reservation_ttl(self.settings.reservation_ttl_s, registered_manifests(rows))

    def _keep_running(self, name: str, loop: Callable[[], Awaitable[None]]) -> None:
        """Run a background loop until stop; one that ends with an error (e.g. the collector when Postgres went away
        mid-batch) is started again with backoff instead of leaving the plane serving without it."""
        async def keep() -> None:
            delay = _LOOP_RESTART_S
            while True:
                started = time.monotonic()
                try:
                    await loop()
                    return
                except Exception as e:
                    if self._stop.is_set():
                        raise
                    if time.monotonic() - started > 60:
                        delay = _LOOP_RESTART_S
                    log.exception("control loop failed; restarting it", loop=name, error=str(e), in_s=delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), delay)
                if self._stop.is_set():
                    return
                delay = min(delay * 2, 30.0)

        self._tasks.append(asyncio.create_task(keep(), name=f"oshal-{name}"))

    async def reload_prices(self) -> None:
        async with self.db.system() as conn:
            overrides = [price_from_row(row) for row in await ledger_repo.price_overrides(conn)]
        self.prices = PriceTable([*load_price_file(self.settings.prices_file), *overrides])

    async def _refresh_loop(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), _PRICE_RELOAD_S)
            if self._stop.is_set():
                return
            try:
                await self.reload_prices()
                await self.registry.refresh()
                await self.console_sessions.sweep()
            except Exception as e:
                log.warning("refresh failed", error=str(e))

    async def _audit_loop(self) -> None:
        """Anchor the audit chain's head every few seconds, and apply retention once a day."""
        last_prune: float | None = None
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.settings.audit_anchor_interval_s)
            try:
                await trail.anchor(self.db, self.audit_anchors)
                if last_prune is None or time.monotonic() - last_prune >= 86_400:
                    # Counted as tried before it runs: a refused prune (an unsealed log) is retried a day later,
                    # not every few seconds with a new prune record each time.
                    last_prune = time.monotonic()
                    cutoff = dt.datetime.now(dt.UTC) - dt.timedelta(days=self.settings.audit_retention_days)
                    removed = await trail.prune(self.db, cutoff, self.audit_anchors)
                    if removed:
                        log.info("audit retention applied", removed=removed, before=cutoff.isoformat())
            except Exception as e:
                log.warning("audit anchoring failed", error=str(e))

    async def stop(self) -> None:
        """Stop loops (the collector finishes its current batch), then close connections."""
        self._stop.set()
        if self._tasks:
            done, pending = await asyncio.wait(self._tasks, timeout=self.settings.drain_timeout_s)
            for task in pending:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            for task in done:
                if not task.cancelled() and task.exception():
                    log.error("control loop ended with an error", error=str(task.exception()))
        self._tasks.clear()
        await self.events.stop()
        await self.gateway.connectors.drain()
        await self.recorder.drain()
        await self.connector_runtime.aclose()
        await self.objects.aclose()
        await self.redis.aclose()
        await self.db.close()
