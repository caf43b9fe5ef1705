"""Carries out fleet-control orders for the node processes this machine runs, and records that it did.

Operators order restarts and replicas through the API (``oshal.control.fleet_control``); the orders wait in
``fleet_controls``. Whatever runs the nodes applies them. Here that is ``oshal up``'s supervisor (or any local
runner of node processes), reading the orders as the owner once per supervision pass:

- a **shared host** (the whole fleet in one node process, as ``oshal up`` runs it) is restarted, drained, for a
  restart of any of its bots, and restarted with ``OSHAL_NODE_REPLICAS`` for a change of replicas;
- a bot's **own processes** (one per replica) are restarted one at a time, so its lane never goes unconsumed when
  it has more than one, and scaled by starting or stopping processes.

An order is recorded as applied only after it was carried out, so a runner that dies meanwhile carries it out
again when it comes back (a restart more, never an order lost).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import psycopg
from psycopg.rows import dict_row

from oshal.logs import get_logger

log = get_logger(__name__)
REPLICAS_ENV = "OSHAL_NODE_REPLICAS"


class Process(Protocol):
    """One supervised child (``oshal.launcher.supervisor.Supervised``)."""

    name: str
    env: dict[str, str]
    restarts: int
    started_at: float  # time.monotonic() of its last start

    def start(self) -> None: ...
    def stop(self, timeout_s: float) -> None: ...
    def alive(self) -> bool: ...


class Unit(Protocol):
    """What runs some bots on this machine."""

    @property
    def bots(self) -> frozenset[str]: ...

    def configure(self, bot: str, replicas: int | None) -> None:
        """Take the ordered replicas into account before the unit starts."""

    def restart(self) -> str: ...
    def scale(self, bot: str, replicas: int | None) -> str: ...


@dataclass
class SharedHost:
    """One node process hosting many bots."""

    process: Process
    bots: frozenset[str]
    stop_timeout_s: float
    ordered: dict[str, int] = field(default_factory=dict)

    def restart(self) -> str:
        self.process.stop(self.stop_timeout_s)
        self.process.restarts = 0
        self.process.start()
        return f"restarted {self.process.name} (drained first)"

    def configure(self, bot: str, replicas: int | None) -> None:
        if replicas is None:
            self.ordered.pop(bot, None)
        else:
            self.ordered[bot] = replicas
        self.process.env[REPLICAS_ENV] = json.dumps(self.ordered, sort_keys=True)

    def scale(self, bot: str, replicas: int | None) -> str:
        self.configure(bot, replicas)
        return self.restart() + f" with {bot} at {'its manifest' if replicas is None else replicas} replica(s)"


@dataclass
class BotProcesses:
    """A bot's own node processes, one per replica. ``spawn`` makes (not starts) a process for a replica index."""

    bot: str
    spawn: Callable[[int], Process]
    replicas: int
    stop_timeout_s: float
    processes: list[Process] = field(default_factory=list)

    @property
    def bots(self) -> frozenset[str]:
        return frozenset({self.bot})

    def start(self) -> None:
        self._resize(self.replicas)

    def _resize(self, count: int) -> None:
        while len(self.processes) < count:
            process = self.spawn(len(self.processes))
            process.start()
            self.processes.append(process)
        while len(self.processes) > count:
            self.processes.pop().stop(self.stop_timeout_s)

    def restart(self) -> str:
        for process in self.processes:  # one at a time: with two or more, the lane always has a consumer
            process.stop(self.stop_timeout_s)
            process.restarts = 0
            process.start()
        return f"restarted {len(self.processes)} process(es) of {self.bot}, one at a time"

    def configure(self, bot: str, replicas: int | None) -> None:
        if replicas is not None:
            self.replicas = replicas

    def scale(self, bot: str, replicas: int | None) -> str:
        target = self.replicas if replicas is None else replicas
        before = len(self.processes)
        self._resize(target)
        return f"{self.bot}: {before} -> {target} process(es)"

    def stop(self) -> None:
        self._resize(0)


def _backoff_s(process: Process) -> float:
    """1 s for a process that ran a while; doubling up to 30 s while it keeps dying young."""
    if time.monotonic() - process.started_at >= 60:
        return 1.0
    return float(min(2 ** process.restarts, 30))


@dataclass
class Tender:
    """Restarts processes that died, with backoff (1, 2, 4 … 30 s while they keep dying young)."""

    due: dict[int, float] = field(default_factory=dict)

    def tend(self, processes: Iterable[Process]) -> None:
        now = time.monotonic()
        for process in processes:
            if process.alive():
                continue
            key = id(process)
            if key not in self.due:
                self.due[key] = now + _backoff_s(process)
                log.warning("node process exited; restarting", child=process.name,
                            in_s=round(self.due[key] - now, 1))
            elif now >= self.due[key]:
                del self.due[key]
                process.restarts += 1
                process.start()


class FleetReconciler:
    """Reads the orders as the owner and applies those for bots one of ``units`` runs."""

    def __init__(self, owner_url: str, units: list[Unit]) -> None:
        self.owner_url = owner_url
        self.units = units
        self._conn: psycopg.Connection[dict[str, Any]] | None = None

    def _connection(self) -> psycopg.Connection[dict[str, Any]]:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self.owner_url, autocommit=True, row_factory=dict_row, connect_timeout=5)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()

    def unit_of(self, bot: str) -> Unit | None:
        return next((unit for unit in self.units if bot in unit.bots), None)

    def prime(self) -> None:
        """Before the units start: take up the replicas ordered so far, and count every pending restart as done
        (what starts now starts fresh)."""
        try:
            conn = self._connection()
            for row in conn.execute("SELECT bot, replicas FROM fleet_controls").fetchall():
                unit = self.unit_of(str(row["bot"]))
                if unit is None:
                    continue
                unit.configure(str(row["bot"]), row["replicas"])
                conn.execute("UPDATE fleet_controls SET applied_seq = restart_seq, applied_replicas = replicas, "
                             "applied_at = now(), applied_note = 'taken up at start' WHERE bot = %s", (row["bot"],))
        except psycopg.Error as e:
            log.warning("fleet orders unreadable at start; the manifests' replicas apply", error=str(e))
            self.close()
            self._conn = None

    def reconcile(self) -> list[str]:
        """One pass; what was done. Database trouble is logged and retried on the next pass."""
        try:
            return self._reconcile()
        except psycopg.Error as e:
            log.warning("fleet orders unreadable; retrying", error=str(e))
            self.close()
            self._conn = None
            return []

    def _reconcile(self) -> list[str]:
        conn = self._connection()
        rows = conn.execute("SELECT bot, replicas, restart_seq, applied_seq, applied_replicas FROM fleet_controls "
                            "WHERE restart_seq > applied_seq OR replicas IS DISTINCT FROM applied_replicas").fetchall()
        done: list[str] = []
        restarted: set[int] = set()
        for row in rows:
            bot = str(row["bot"])
            unit = self.unit_of(bot)
            if unit is None:
                continue  # another runner's bot
            notes = []
            if row["replicas"] != row["applied_replicas"]:
                notes.append(unit.scale(bot, row["replicas"]))
                if isinstance(unit, SharedHost):
                    restarted.add(id(unit))
            if row["restart_seq"] > row["applied_seq"]:
                if id(unit) in restarted:  # the host of several bots restarts once per pass
                    notes.append("restarted in this pass already")
                else:
                    notes.append(unit.restart())
                    if isinstance(unit, SharedHost):
                        restarted.add(id(unit))
            note = "; ".join(notes)
            conn.execute("UPDATE fleet_controls SET applied_seq = %s, applied_replicas = %s, applied_at = now(), "
                         "applied_note = %s WHERE bot = %s",
                         (row["restart_seq"], row["replicas"], note[:500], bot))
            log.warning("fleet order applied", bot=bot, note=note)
            done.append(f"{bot}: {note}")
        return done
