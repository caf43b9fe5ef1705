"""``oshal up``: run the control plane and the node hosts as supervised children and stop them cleanly.

One node host per node group of the fleet: the bots of a group share a process, and the applications' bots (the
group ``apps``, which holds the operations loop's) have their own, so a hung fleet does not hang the bots that
diagnose it. Children that die unexpectedly are restarted with backoff, and so are the embedded engines (see
``embedded/keeper.py``); fleet-control orders are carried out (see ``fleet_reconciler``). SIGINT/SIGTERM stop
the node hosts first (they drain in-flight work and flush results), then the control plane, then the engines.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from oshal.errors import Unavailable
from oshal.launcher.fleet_reconciler import FleetReconciler, SharedHost, Unit
from oshal.launcher.node_seal import node_env, node_user, open_runtime_to, seal_home
from oshal.launcher.prepare import Engines
from oshal.logs import get_logger
from oshal.settings import Settings
from oshal.sysusers import SystemUser

log = get_logger(__name__)


def _die_with_parent() -> None:
    """Linux: deliver SIGTERM to the child if the supervisor dies without stopping it (e.g. SIGKILL)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


@dataclass
class Supervised:
    name: str
    argv: list[str]
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    started_at: float = field(default=0.0)
    user: SystemUser | None = None  # run as this user (the supervisor is root), with its group only
    cwd: Path | None = None

    def start(self) -> None:
        # Whatever a child creates later (objects, logs, anchors) is its user's only, like what `up` created.
        identity: dict[str, Any] = {"umask": 0o077}
        if self.user:
            identity.update({"user": self.user.uid, "group": self.user.gid, "extra_groups": []})
        # Own session: Ctrl-C reaches only the supervisor, which then stops children in order. The parent-death
        # signal is set after the switch of user (a change of credentials would clear it).
        self.process = subprocess.Popen(self.argv, env=self.env, stdin=subprocess.DEVNULL, cwd=self.cwd,
                                        start_new_session=True, preexec_fn=_die_with_parent, **identity)
        self.started_at = time.monotonic()

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout_s: float) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        self.process.send_signal(signal.SIGCONT)  # a stopped (hung) process handles the SIGTERM once resumed
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            log.warning("child did not stop in time; killing it", child=self.name)
            self.process.kill()
            self.process.wait()


def child_env(settings: Settings, engines: Engines) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OSHAL_")}
    env.update({
        "OSHAL_MODE": settings.mode, "OSHAL_HOME": str(settings.home), "OSHAL_LOG_LEVEL": settings.log_level,
        "OSHAL_LOG_JSON": str(settings.log_json).lower(),
        "OSHAL_MAX_INPUT_BYTES": str(settings.max_input_bytes), "OSHAL_MAX_BATCH": str(settings.max_batch),
        "OSHAL_MAX_DELIVERIES": str(settings.max_deliveries), "OSHAL_CLAIM_IDLE_MS": str(settings.claim_idle_ms),
        "OSHAL_STALE_AFTER_S": str(settings.stale_after_s), "OSHAL_HEARTBEAT_TTL_S": str(settings.heartbeat_ttl_s),
        "OSHAL_FLEET_DIR": str(settings.fleet_dir), "OSHAL_CONNECTORS_DIR": str(settings.connectors_dir),
        "OSHAL_DRAIN_TIMEOUT_S": str(settings.drain_timeout_s),
        "OSHAL_CONNECTOR_RATE_PER_S": str(settings.connector_rate_per_s),
        "OSHAL_CONNECTOR_BURST": str(settings.connector_burst),
    })
    if settings.prices_file:
        env["OSHAL_PRICES_FILE"] = str(settings.prices_file)
    for name in ("model_provider", "model", "model_base_url", "model_api_key_env"):  # names and URLs, never a key
        value = getattr(settings, name)
        if value:
            env[f"OSHAL_{name.upper()}"] = str(value)
    return env


class Supervisor:
    def __init__(self, settings: Settings, engines: Engines) -> None:
        self.settings = settings
        self.engines = engines
        base = child_env(settings, engines)
        python = sys.executable
        # The control plane gets the operator's configuration (secrets backend, security and rate-limit settings),
        # but not the owner's database URL (it connects as the API role), the bootstrap key (used once, by `up`)
        # or TLS (`oshal up` serves plain HTTP to its own node host on loopback).
        withheld = {"OSHAL_DATABASE_URL", "OSHAL_BOOTSTRAP_KEY", "OSHAL_TLS_CERT_FILE", "OSHAL_TLS_KEY_FILE"}
        passed = {k: v for k, v in os.environ.items() if k.startswith("OSHAL_") and k not in withheld}
        control_env = {**passed, **base, "OSHAL_API_DATABASE_URL": engines.api_url,
                       "OSHAL_REDIS_URL": engines.redis_url, "OSHAL_DISPATCH_KEY": engines.dispatch_key.decode()}
        # The node host runs bot code: it gets its bots' own credentials file and manifests, no OSHAL_HOME, no
        # database URL, no admin Redis URL; as root, it runs as the node user, which cannot read the platform's files.
        assert engines.node is not None
        user = node_user()
        self.control = Supervised("control-plane", [
            python, "-m", "oshal.cli.main", "serve", "--host", settings.api_host, "--port", str(settings.api_port),
        ], control_env)
        groups: dict[str, list[str]] = {}
        for name, manifest in sorted(engines.fleet.items()):
            groups.setdefault(manifest.node_group, []).append(name)
        self.nodes: list[Supervised] = []
        hosts: list[Unit] = []
        for group, bots in sorted(groups.items()):
            selection = [arg for bot in bots for arg in ("--bot", bot)] if len(groups) > 1 else []
            node = Supervised("node-host" if group == "fleet" else f"node-host-{group}",
                              [python, "-m", "oshal.cli.main", "node", *selection],
                              node_env(settings, engines.node, self.url_for(settings), user, engines.fleet),
                              user=user, cwd=engines.node.work_dir)
            self.nodes.append(node)
            hosts.append(SharedHost(node, frozenset(bots), stop_timeout_s=settings.drain_timeout_s + 5))
        self.children = [self.control, *self.nodes]
        self._stop = threading.Event()
        self.fleet = FleetReconciler(engines.owner_url, hosts)

    @property
    def url(self) -> str:
        return self.url_for(self.settings)

    @staticmethod
    def url_for(settings: Settings) -> str:
        return f"http://{settings.api_host}:{settings.api_port}"

    def start(self, ready_timeout_s: float = 60.0) -> None:
        assert self.engines.node is not None
        shared = [self.engines.node.dir]
        if self.engines.redis:
            shared.append(self.engines.redis.socket_dir)
        seal_home(self.settings.home, shared=tuple(shared))
        if self.nodes and self.nodes[0].user:
            open_runtime_to(self.nodes[0].user)
        self.engines.supervise()
        self.fleet.prime()
        for child in self.children:
            child.start()
        deadline = time.monotonic() + ready_timeout_s
        while time.monotonic() < deadline:
            if self.control.process and self.control.process.poll() is not None:
                raise Unavailable(f"the control plane exited with code {self.control.process.returncode}",
                                  hint="see the log lines above; is the port in use? try --port")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise Unavailable(f"the control plane did not become ready at {self.url} in {ready_timeout_s:.0f}s")

    def request_stop(self, *_: object) -> None:
        self._stop.set()

    def supervise(self) -> None:
        """Block until asked to stop, restarting children that die, then stop everything in order."""
        while not self._stop.wait(0.5):
            self.fleet.reconcile()
            for child in self.children:
                if child.process is not None and child.process.poll() is not None:
                    code = child.process.returncode
                    delay = min(2 ** child.restarts, 30) if time.monotonic() - child.started_at < 60 else 1
                    log.warning("child exited; restarting", child=child.name, code=code, in_s=delay)
                    if self._stop.wait(delay):
                        break
                    child.restarts += 1
                    child.start()
        self.shutdown()

    def shutdown(self) -> None:
        log.info("stopping: draining the node host, then the control plane")
        for node in self.nodes:
            node.stop(self.settings.drain_timeout_s + 5)
        self.control.stop(self.settings.drain_timeout_s + 5)
        self.fleet.close()
        self.engines.stop()
        log.info("stopped")
