"""CPU time and memory of processes, read from /proc (Linux): what the scale bench charges to each engine and bot."""

from __future__ import annotations

import os
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int, proc: Path) -> list[str]:
    """The fields of /proc/PID/stat after the command name (which may hold spaces and parentheses): field 3 on."""
    text = (proc / str(pid) / "stat").read_text()
    return text[text.rindex(")") + 2:].split()


def cpu_seconds(pid: int, *, reaped_children: bool = False, proc: Path = Path("/proc")) -> float:
    """User + system CPU seconds of ``pid``; with ``reaped_children``, plus those of its children that exited and
    were waited for (a Postgres backend's, once the postmaster reaped it)."""
    fields = _stat_fields(pid, proc)
    utime, stime, cutime, cstime = (int(v) for v in fields[11:15])  # stat fields 14-17
    return (utime + stime + (cutime + cstime if reaped_children else 0)) / _TICKS


def children(pid: int, proc: Path = Path("/proc")) -> list[int]:
    """Every live descendant of ``pid``."""
    parents: dict[int, list[int]] = {}
    for entry in proc.iterdir():
        if entry.name.isdigit():
            try:
                parent = int(_stat_fields(int(entry.name), proc)[1])  # stat field 4, ppid
            except (OSError, ValueError, IndexError):
                continue  # gone since the listing
            parents.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def tree_cpu_seconds(pid: int, proc: Path = Path("/proc")) -> float:
    """CPU seconds of a server and all its processes, living and exited (a forking server such as Postgres)."""
    total = cpu_seconds(pid, reaped_children=True, proc=proc)
    for child in children(pid, proc):
        try:
            total += cpu_seconds(child, reaped_children=True, proc=proc)
        except OSError:
            continue  # exited between the listing and the read: its time is in its parent's reaped children now
    return total


def rss_mb(pid: int, proc: Path = Path("/proc")) -> float:
    """Resident set size in MiB (VmRSS)."""
    for line in (proc / str(pid) / "status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise ValueError(f"/proc/{pid}/status has no VmRSS line (a kernel thread?)")


def pss_mb(pid: int, proc: Path = Path("/proc")) -> float:
    """Proportional set size in MiB (each page shared with other processes counted by its share), from smaps_rollup:
    what a group of processes that share pages (e.g. forked from one parent) take together is the sum of theirs."""
    for line in (proc / str(pid) / "smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) / 1024
    raise ValueError(f"/proc/{pid}/smaps_rollup has no Pss line")


def machine_jiffies(proc: Path = Path("/proc")) -> tuple[int, int]:
    """(busy, total) clock ticks of all CPUs together since boot, from the first line of /proc/stat. Idle and iowait
    count as not busy; guest time is already inside user time, so only the first eight fields are summed."""
    fields = [int(v) for v in (proc / "stat").read_text().splitlines()[0].split()[1:9]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def busy_share(before: tuple[int, int], after: tuple[int, int]) -> float:
    """The machine's CPU busy share (0..1, all cores) between two :func:`machine_jiffies` readings."""
    busy, total = after[0] - before[0], after[1] - before[1]
    return busy / total if total > 0 else 0.0
