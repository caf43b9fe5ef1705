"""Session fixtures: real embedded Postgres and Redis, a real control plane over HTTP, a real node host.

Engines start once per session. Each test starts from clean tables, and gets its own tenant when it asks
for ``tenant_client`` so nothing one test leaves behind can be seen by another.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import psycopg
import pytest
import redis as sync_redis
import uvicorn
from hypothesis import settings as hypothesis_settings
from redis.asyncio import Redis

from external.fake_openai import FakeOpenAI
from oshal import console, logs
from oshal.api.app import create_app
from oshal.bots.host import NodeHost
from oshal.bots.manifest import load_fleet
from oshal.bots.worker import WorkerOptions
from oshal.control.plane import ControlPlane
from oshal.launcher.prepare import Engines, bootstrap_admin_key, provision_fleet, start_engines
from oshal.mesh.redis import connect
from oshal.mesh.redis_keys import lane_stream
from oshal.mesh.signing import DispatchSigner
from oshal.settings import Settings
from oshal.store.db import Database
from oshal.workflows.registry import load_builtin, register_builtin

# Property tests run on machines whose speed varies run to run: no per-example deadline (a timing assertion).
hypothesis_settings.register_profile("oshal", deadline=None)
hypothesis_settings.load_profile("oshal")

REPO = Path(__file__).resolve().parents[1]

# Extra bots only the tests use: a slow echo for crash tests and one nobody runs (for dead letters).
TEST_BOTS = {
    "slow": "name: slow\nintent: echo\nlatency_ms: 150\nconcurrency: 8\nreplicas: 1\n",
    "idle": "name: idle\nintent: echo\nconcurrency: 4\nreplicas: 1\n",
}
# A model-backed bot on the OpenAI harness, talking to a session-wide fake OpenAI server (tests/external).
MODEL_BOT = "writer"
IN_PROCESS_BOTS = (MODEL_BOT, "echo", "summarizer", "triage", "extractor", "planner", "reviewer", "scorer",
                   "architect",
                   "builder", "tester", "packager", "support", "scriptwriter", "storyboarder", "renderer", "editor",
                   "ops-diagnoser", "ops-reviewer", "ops-reporter", "market-data", "trade-signal", "trade-analyst",
                   "trade-risk", "trade-execute", "trade-recap", "trade-narrator")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LoopThread:
    """Runs a coroutine on its own event loop in a daemon thread, with a stop hook."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self.thread.start()

    def run(self, coro: Any, timeout: float | None = 60) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@dataclass
class Platform:
    settings: Settings
    engines: Engines
    url: str
    admin_key: str
    home: Path
    plane: ControlPlane
    plane_thread: LoopThread
    node_stop: Any = None
    node_thread: LoopThread | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def fleet_dir(self) -> Path:
        return self.settings.fleet_dir

    def client(self, key: str | None = None) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {key or self.admin_key}"},
                            timeout=30)

    def owner(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.engines.owner_url, autocommit=True)

    def superuser(self) -> psycopg.Connection[Any]:
        """Test housekeeping only: the platform itself never connects as a superuser after bootstrap."""
        assert self.engines.postgres is not None
        return psycopg.connect(self.engines.postgres.url(database="oshal"), autocommit=True)

    def redis_admin(self) -> sync_redis.Redis:
        return sync_redis.Redis.from_url(self.engines.redis_url)

    def on_plane(self, coro: Any, timeout: float = 60) -> Any:
        """Run a coroutine on the control plane's loop (to call its services directly)."""
        return self.plane_thread.run(coro, timeout)

    def kill_engine(self, name: str, *, wait: bool = True, timeout: float = 90, children: bool = False) -> int:
        """SIGKILL the embedded ``redis`` or ``postgres`` server; returns the killed pid. The engine keeper (as under
        `oshal up`) restarts it; with ``wait``, this returns once a new server is ready and /readyz says 200. With
        ``children``, its child processes are SIGKILLed with it (for Postgres: its backends and WAL writer too, so
        whatever WAL was not yet on disk is lost, as in a power cut)."""
        engine = self.engines.redis if name == "redis" else self.engines.postgres
        assert engine is not None and self.engines.keeper is not None, "the session engines are supervised"
        keeper = self.engines.keeper
        pid, restarts = engine.server_pid(), keeper.status()[name].restarts
        assert pid is not None, f"{name} is not running"
        if children:
            found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
            for child in map(int, found):
                with contextlib.suppress(ProcessLookupError):  # one that ended since (a backend closing)
                    os.kill(child, signal.SIGKILL)
        os.kill(pid, signal.SIGKILL)
        if wait:
            deadline = time.monotonic() + timeout

            def restarted() -> bool:
                status = keeper.status()[name]
                return status.restarts > restarts and status.state == "up"

            while not restarted() or not self.is_ready():
                assert time.monotonic() < deadline, f"{name} was not restarted in {timeout}s"
                time.sleep(0.05)
        return pid

    def is_ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/readyz", timeout=5).status_code == 200
        except httpx.HTTPError:
            return False


@pytest.fixture(scope="session")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    logs.configure("warning")
    home = tmp_path_factory.mktemp("oshal-home")
    fleet_dir = home / "fleet"
    fleet_dir.mkdir()
    for path in (REPO / "fleet").glob("*.yaml"):
        shutil.copy(path, fleet_dir / path.name)
    for name, text in TEST_BOTS.items():
        (fleet_dir / f"{name}.yaml").write_text(text)
    model_server = FakeOpenAI(api_key=None)
    model_server.start()
    (fleet_dir / f"{MODEL_BOT}.yaml").write_text(
        f"name: {MODEL_BOT}\nharness: openai\nmodel: gpt-4o-mini\nbase_url: {model_server.base_url}\n"
        "persona: You write short answers.\nmax_tokens: 256\ntimeout_s: 5\nmax_retries: 0\nmax_tool_steps: 6\n"
        "concurrency: 16\nreplicas: 1\n")
    port = free_port()
    settings = Settings(home=home, fleet_dir=fleet_dir, api_port=port, claim_idle_ms=1000, max_deliveries=3,
                        stale_after_s=30, sweep_interval_s=0.5, heartbeat_ttl_s=2, max_input_bytes=16 * 1024,
                        max_batch=1000, wait_max_s=30, drain_timeout_s=5, mode="dev", security_scan_interval_s=0)
    engines = start_engines(settings)
    engines.supervise()  # a killed engine is restarted, as under `oshal up` (see Platform.kill_engine)
    asyncio.run(provision_fleet(engines, fleet_dir, home))
    register_builtin(engines.owner_url, load_builtin(REPO / "workflows"))
    asyncio.run(bootstrap_admin_key(engines, settings.admin_key_file))
    admin_key = settings.admin_key_file.read_text().strip()

    plane = ControlPlane(settings, engines.api_url, engines.redis_url, engines.dispatch_key)
    plane_thread = LoopThread("control-plane")
    app = create_app(plane, surfaces=[console.surface()])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           access_log=False, lifespan="on", timeout_graceful_shutdown=5))
    served = asyncio.run_coroutine_threadsafe(server.serve(), plane_thread.loop)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.05)
    else:
        raise RuntimeError("control plane did not become ready")

    node_thread = LoopThread("node-host")
    node_stop = asyncio.Event()
    fleet = {n: m for n, m in load_fleet(fleet_dir).items() if n in IN_PROCESS_BOTS}
    from oshal.bots.host import read_bot_tokens, read_credentials

    creds = read_credentials(home / "run" / "bot-credentials.json")
    host = NodeHost(fleet, {n: creds[n] for n in fleet},
                    WorkerOptions(claim_idle_ms=1000, max_deliveries=3, heartbeat_ttl_s=2, drain_timeout_s=5),
                    gateway_url=url, bot_tokens=read_bot_tokens(home / "run" / "bot-tokens.json"))
    node_done = asyncio.run_coroutine_threadsafe(host.run(node_stop), node_thread.loop)

    pf = Platform(settings, engines, url, admin_key, home, plane, plane_thread, node_stop, node_thread,
                  extra={"openai": model_server})
    try:
        yield pf
    finally:
        try:
            node_thread.loop.call_soon_threadsafe(node_stop.set)
            node_done.result(30)
            node_thread.close()
        finally:
            try:
                server.should_exit = True
                served.result(30)
                plane_thread.close()
            finally:
                model_server.stop()
                engines.stop()  # whatever happened above, no server outlives the session


def _drain_lanes(pf: Platform, bots: list[str], timeout: float = 15) -> None:
    r = pf.redis_admin()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if all(r.xlen(lane_stream(b)) == 0 for b in bots):
                return
            time.sleep(0.05)
    finally:
        r.close()


@pytest.fixture(autouse=True)
def clean_state(request: pytest.FixtureRequest) -> Iterator[None]:
    """Clean tables (and the test-only lanes) before each test that uses the platform."""
    if "platform" not in request.fixturenames:
        yield
        return
    pf: Platform = request.getfixturevalue("platform")
    _drain_lanes(pf, list(IN_PROCESS_BOTS))
    r = pf.redis_admin()
    for bot in TEST_BOTS:
        r.delete(lane_stream(bot))
    r.close()
    pf.on_plane(_ensure_groups(pf))
    with pf.superuser() as conn:
        _truncate(conn)
        conn.execute("DELETE FROM workflow_definitions WHERE tenant_id IS NOT NULL")
        conn.execute("DELETE FROM api_keys WHERE tenant_id <> (SELECT id FROM tenants WHERE name = 'system')")
        conn.execute("DELETE FROM tenants WHERE name <> 'system'")
    pf.on_plane(pf.plane.kill.refresh())
    r = pf.redis_admin()
    r.acl_log_reset()  # refusals planted by one test must not become another test's runtime finding
    r.close()
    yield


_TABLES = ("ledger, attempts, phases, ticket_events, workflow_runs, schedule_fires, schedules, artifacts, "
           "security_findings, security_scans, kill_switches, budget_usage, budgets, reservations, recordings, "
           "ledger_daily, tickets, grants, approvals, tool_policies, connections, connectors, knowledge_documents, "
           "bars, app_records, fleet_controls, ticket_counts_daily")


def _truncate(conn: psycopg.Connection[Any]) -> None:
    """TRUNCATE takes exclusive locks while the platform's own loops (sweeper, collector) keep reading: Postgres
    may pick the TRUNCATE as a deadlock victim. Housekeeping only, so it simply tries again."""
    for attempt in range(5):
        try:
            conn.execute(f"TRUNCATE {_TABLES}")
            # nothing is rolled up any more: the roll-ups' cut-offs start again from the beginning
            conn.execute("UPDATE rollup_cutoff SET tickets_before = '-infinity', ledger_before = '-infinity', "
                         "tickets_below = '00000000-0000-0000-0000-000000000000'")
            return
        except psycopg.errors.DeadlockDetected:
            if attempt == 4:
                raise
            time.sleep(0.05)


async def _ensure_groups(pf: Platform) -> None:
    from oshal.mesh.lanes import ensure_groups

    await ensure_groups(pf.plane.redis, pf.plane.registry.names)


@dataclass
class TenantClient:
    tenant_id: str
    name: str
    key: str
    http: httpx.Client


def make_tenant(pf: Platform, name: str, role: str = "member") -> TenantClient:
    with pf.client() as admin:
        tenant = admin.post("/v1/tenants", json={"name": name})
        assert tenant.status_code == 201, tenant.text
        key = admin.post("/v1/keys", json={"tenant": name, "role": role, "name": f"{name}-key"})
        assert key.status_code == 201, key.text
    plaintext = key.json()["key"]
    return TenantClient(tenant.json()["id"], name, plaintext, pf.client(plaintext))


@pytest.fixture
def tenant_client(platform: Platform) -> Iterator[TenantClient]:
    tc = make_tenant(platform, "acme")
    yield tc
    tc.http.close()


def wait_done(http: httpx.Client, ticket_id: str, timeout: float = 30) -> dict[str, Any]:
    """Wait until the ticket rests or ``timeout`` passes, in server waits (each capped at OSHAL_WAIT_MAX_S)."""
    deadline = time.monotonic() + timeout
    while True:
        remaining = max(deadline - time.monotonic(), 0.0)
        # each server wait stays well inside the client's own 30 s timeout
        response = http.get(f"/v1/tickets/{ticket_id}", params={"wait": round(min(remaining, 20.0), 3)})
        assert response.status_code == 200, response.text
        ticket: dict[str, Any] = response.json()
        if ticket["status"] not in ("in_progress", "approved") or time.monotonic() >= deadline:
            return ticket


def run_cli(pf: Platform, *args: str) -> subprocess.CompletedProcess[str]:
    """``oshal ARGS`` in a process of its own, against ``pf`` with the admin key."""
    env = {**os.environ, "OSHAL_API_URL": pf.url, "OSHAL_API_KEY": pf.admin_key, "OSHAL_HOME": str(pf.home),
           "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "oshal.cli.main", *args], env=env, capture_output=True, text=True,
                          timeout=120)


def wait_online(pf: Platform, bot: str, timeout: float = 30) -> None:
    """Wait until ``bot`` has a live replica (a fresh platform's first heartbeats take a moment)."""
    deadline = time.monotonic() + timeout
    with pf.client() as admin:
        while not any(b["name"] == bot and b["status"] == "online" for b in admin.get("/v1/bots").json()):
            assert time.monotonic() < deadline, f"{bot} did not come online in {timeout}s"
            time.sleep(0.1)


# --- Engines without a platform: module tests of one component (dispatcher, collector, sweeper, worker) ---------

# Bots only the module tests know; no node runs them, so a test's own worker (or nothing) reads their lanes.
MODULE_BOTS = {
    "unit-a": "name: unit-a\nintent: classify\nconcurrency: 4\nreplicas: 1\n",
    "unit-b": "name: unit-b\nintent: echo\nconcurrency: 4\nreplicas: 1\n",
}


@dataclass
class Core:
    """Real Postgres and Redis, migrated, with the module bots registered and their ACL users made; no control
    plane, no node host. ``db`` connects as the API's role (RLS applies) and ``redis`` as the admin."""

    engines: Engines
    home: Path
    db: Database
    redis: Redis
    signer: DispatchSigner

    def superuser(self) -> psycopg.Connection[Any]:
        assert self.engines.postgres is not None
        return psycopg.connect(self.engines.postgres.url(database="oshal"), autocommit=True)

    def bot_redis_url(self, bot: str) -> str:
        """The bot's own ACL identity, as its node host would connect."""
        urls: dict[str, str] = json.loads((self.home / "run" / "bot-credentials.json").read_text())
        return urls[bot]

    async def dispatched(self, tenant: UUID, bot: str, inputs: list[Any]) -> list[tuple[UUID, UUID]]:
        """Plain tickets committed with their first phase dispatched (attempt 1), as the ticket service commits them;
        nothing is appended to a lane. Returns their (ticket, phase) ids."""
        from oshal.store import tickets as repo
        from oshal.types import new_id

        rows = [repo.NewTicket(new_id(), new_id(), bot, repo.dumps(value), None, None) for value in inputs]
        inserted = await self.db.call(repo.insert_dispatched(tenant, None, rows))
        assert {r["id"] for r in inserted} == {r.id for r in rows}
        return [(r.id, r.phase_id) for r in rows]

    def row(self, sql: str, *params: Any) -> dict[str, Any]:
        """One row read past RLS (test housekeeping only)."""
        with self.superuser() as conn, conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
            found = cur.execute(sql, params).fetchone()
        assert found is not None, f"no row for {sql} {params}"
        return found

    async def new_tenant(self, name: str) -> UUID:
        from oshal.control.admin import AdminService

        tenant: UUID = (await AdminService(self.db).create_tenant(name, actor="test"))["id"]
        return tenant


@pytest.fixture(scope="session")
async def core_engines(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Core]:
    home = tmp_path_factory.mktemp("oshal-core")
    fleet_dir = home / "fleet"
    fleet_dir.mkdir()
    for name, text in MODULE_BOTS.items():
        (fleet_dir / f"{name}.yaml").write_text(text)
    settings = Settings(home=home, fleet_dir=fleet_dir, mode="dev")
    engines = start_engines(settings)
    try:
        await provision_fleet(engines, fleet_dir, home)
        await bootstrap_admin_key(engines, settings.admin_key_file)  # and with it the system tenant
        db = Database(engines.api_url, min_size=1, max_size=8, name="oshal-core-tests")
        await db.open()
        redis = connect(engines.redis_url)
        try:
            yield Core(engines, home, db, redis, DispatchSigner(engines.dispatch_key))
        finally:
            await redis.aclose()
            await db.close()
    finally:
        engines.stop()


@pytest.fixture
async def core(core_engines: Core) -> Core:
    """The engines as a fresh start: empty tables and an empty Redis, whose lane groups and kill-switch mirror
    are made again the way the control plane makes them."""
    from oshal.mesh import lanes
    from oshal.mesh.kill_gate import KillGate

    with core_engines.superuser() as conn:
        _truncate(conn)
        conn.execute("DELETE FROM api_keys WHERE tenant_id <> (SELECT id FROM tenants WHERE name = 'system')")
        conn.execute("DELETE FROM tenants WHERE name <> 'system'")
    await core_engines.redis.flushall()  # keys only: the bots' ACL users stay
    await lanes.ensure_groups(core_engines.redis, MODULE_BOTS)
    await KillGate(core_engines.db, core_engines.redis).rebuild()
    return core_engines


@pytest.fixture
def ops_key(platform: Platform) -> str:
    """A platform operator key of the test's own. The operations loop counts its hourly rate budgets per key from
    the audit log, so a shared key would let one test's actions spend another's budget."""
    with platform.client() as admin:
        created = admin.post("/v1/keys", json={"tenant": "system", "role": "operator",
                                               "name": f"ops-{uuid.uuid4().hex[:8]}"})
        assert created.status_code == 201, created.text
    return str(created.json()["key"])
