"""CPU per ticket of each process during the throughput run (bench/run.py's): where the cores go.

Starts `oshal up` in a scratch folder, then runs BENCH_TPCPU_ROUNDS (default 2) throughput rounds of BENCH_N tickets,
and for each prints tickets/s and the CPU milliseconds per ticket of Postgres (all its processes), Redis, the control
plane (`oshal serve`: API, dispatcher, collector, sweeper), the node hosts, `oshal up` itself (the launcher) and this
load generator, plus the machine's busy cores (other work on the machine counts too). On 2 cores, a pipeline that is
CPU-bound keeps ~2.0 cores busy; less means something waits. The last line is one JSON object with the medians over
the rounds (``cpu_ms_per_ticket_<process>``).

Run: `.venv/bin/python bench/throughput_cpu.py` (or call :func:`measure` on a running platform, as run.py does).
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from proc_stats import busy_share, children, cpu_seconds, machine_jiffies, tree_cpu_seconds  # bench/proc_stats.py

ROUNDS = int(os.environ.get("BENCH_TPCPU_ROUNDS", "2"))


def _role(pid: int) -> str:
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    command = b" ".join(argv).decode(errors="replace")
    if "postgres" in command:
        return "postgres"
    if "redis" in command:
        return "redis"
    if "oshal.cli.main serve" in command:
        return "control"  # `oshal serve`: API, dispatcher, collector, sweeper
    if "oshal.cli.main node" in command:
        return "node"
    return "other"


def _tree(up_pid: int) -> dict[str, float]:
    """CPU seconds so far of `oshal up` and of each of its direct children's trees, summed by role."""
    out: dict[str, float] = {"launcher": cpu_seconds(up_pid)}
    direct = [pid for pid in children(up_pid) if _parent(pid) == up_pid]
    for pid in direct:
        try:
            out[_role(pid)] = out.get(_role(pid), 0.0) + tree_cpu_seconds(pid)
        except OSError:
            continue
    return out


def _parent(pid: int) -> int:
    text = Path(f"/proc/{pid}/stat").read_text()
    return int(text[text.rindex(")") + 2:].split()[1])


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass(frozen=True, slots=True)
class Reading:
    """CPU seconds so far: of each process role under `oshal up`, of this process, and of the whole machine."""

    processes: dict[str, float]
    own: float
    jiffies: tuple[int, int]

    @classmethod
    def now(cls, up_pid: int) -> Reading:
        return cls(_tree(up_pid), _own_cpu(), machine_jiffies())

    def per_ticket(self, later: Reading, tickets: int) -> dict[str, float]:
        """CPU milliseconds per ticket of each role (and of this load generator) from this reading to ``later``, and
        the machine's busy cores meanwhile."""
        row = {f"cpu_ms_per_ticket_{name}": 1000 * (spent - self.processes.get(name, 0.0)) / tickets
               for name, spent in later.processes.items()}
        row["cpu_ms_per_ticket_load_generator"] = 1000 * (later.own - self.own) / tickets
        row["busy_cores"] = busy_share(self.jiffies, later.jiffies) * (os.cpu_count() or 1)
        return row


def describe(row: dict[str, float]) -> str:
    figures = ", ".join(f"{k.removeprefix('cpu_ms_per_ticket_')} {v:.3f}" for k, v in row.items()
                        if k.startswith("cpu_ms"))
    return f"{row['busy_cores']:.2f} cores busy; CPU ms per ticket: {figures}"


def measure(url: str, keys: Callable[[], str], up_pid: int, tickets: int,
            throughput: Callable[[str, str], Coroutine[Any, Any, dict[str, float]]], rounds: int = ROUNDS,
            log: Callable[[str], object] = print) -> dict[str, float]:
    """``rounds`` throughput rounds (``throughput``: run.py's coroutine function), each in a fresh tenant (an API key
    of ``keys()``: the run counts its tenant's tickets), with the CPU each process spent per ticket; returns the
    medians."""
    per_round: list[dict[str, float]] = []
    for n in range(rounds):
        key = keys()
        time.sleep(2)  # let the previous round's stragglers (autovacuum, the WAL writer) settle
        before = Reading.now(up_pid)
        result = asyncio.run(throughput(url, key))
        row = {"tickets_per_s": result["tickets_per_s"], **before.per_ticket(Reading.now(up_pid), tickets)}
        per_round.append(row)
        log(f"round {n + 1}: {row['tickets_per_s']:,.0f} tickets/s, {describe(row)}")
    return {k: statistics.median(r[k] for r in per_round) for k in per_round[0]}


def main() -> None:
    import run  # bench/run.py

    home = Path(tempfile.mkdtemp(prefix="oshal-tpcpu-"))
    port = run.free_port()
    proc = run.start_platform(home, port)
    try:
        url = f"http://127.0.0.1:{port}"
        admin = (home / "admin.key").read_text().strip()
        medians = measure(url, lambda: run.bench_tenant(url, admin, label=f"tpcpu-{time.monotonic_ns()}"), proc.pid,
                          run.N, run.throughput, log=run.log)
        print(json.dumps({k: round(v, 4) for k, v in medians.items()}))
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(60)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
