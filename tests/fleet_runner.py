"""A local runner of one bot's node processes that carries out fleet-control orders, as `oshal up`'s supervisor does
for its node host (the same reconciler, tending dead processes with the same backoff)."""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from conftest import Platform
from oshal.launcher.fleet_reconciler import BotProcesses, FleetReconciler, Tender
from oshal.launcher.supervisor import Supervised


def node_env(platform: Platform, log_level: str = "warning") -> dict[str, str]:
    """A test node process's environment: short heartbeats, claims and drains, so failures show within seconds."""
    return {**os.environ, "OSHAL_HOME": str(platform.home), "OSHAL_CLAIM_IDLE_MS": "1000",
            "OSHAL_MAX_DELIVERIES": "3", "OSHAL_HEARTBEAT_TTL_S": "2", "OSHAL_LOG_LEVEL": log_level,
            "OSHAL_DRAIN_TIMEOUT_S": "5"}


def node_argv(platform: Platform, bot: str, *extra: str) -> list[str]:
    """`oshal node` for one bot of the test fleet, with the bots' own Redis credentials."""
    return [sys.executable, "-m", "oshal.cli.main", "node", "--fleet", str(platform.fleet_dir), "--bot", bot,
            *extra, "--credentials", str(platform.home / "run" / "bot-credentials.json")]


@contextmanager
def fleet_runner(platform: Platform, bot: str, replicas: int = 1) -> Iterator[BotProcesses]:
    argv = node_argv(platform, bot)
    env = node_env(platform)
    unit = BotProcesses(bot, lambda i: Supervised(f"{bot}-{i}", argv, env), replicas, stop_timeout_s=15)
    reconciler = FleetReconciler(platform.engines.owner_url, [unit])
    reconciler.prime()
    unit.start()
    tender = Tender()
    stop = threading.Event()

    def run() -> None:
        while not stop.wait(0.2):
            reconciler.reconcile()
            tender.tend(unit.processes)

    thread = threading.Thread(target=run, name=f"fleet-runner-{bot}", daemon=True)
    thread.start()
    try:
        yield unit
    finally:
        stop.set()
        thread.join(30)
        unit.stop()
        reconciler.close()
        with platform.owner() as conn:  # the next test starts from the manifest's replicas
            conn.execute("DELETE FROM fleet_controls WHERE bot = %s", (bot,))
