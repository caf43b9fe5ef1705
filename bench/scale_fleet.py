"""The scale bench's fleet: N echo bots, one manifest each, and how tickets are spread over their lanes.

Every bot is the demo ``echo`` bot under another name (deterministic, no model, no tools), so what the bench measures
is the platform's own cost per ticket and per lane. The first bot is the one that runs in two processes (two replicas
on one lane); the last is the lane the fairness run floods, and the one before it the lane it watches.
"""

from __future__ import annotations

import math
from pathlib import Path

import yaml

NAME_WIDTH = 3  # echo-000 .. echo-999: sorted by name = sorted by number


def bot_names(n: int) -> list[str]:
    if not 2 <= n <= 10 ** NAME_WIDTH:
        raise ValueError(f"the scale bench runs 2 to {10 ** NAME_WIDTH} bots, not {n}")
    return [f"echo-{i:0{NAME_WIDTH}d}" for i in range(n)]


def manifest(name: str, concurrency: int) -> dict[str, object]:
    return {"name": name, "description": "Scale bench: the echo bot under another name.",
            "persona": "You repeat exactly what you are given.", "harness": "deterministic", "intent": "echo",
            "model": "deterministic-echo", "capabilities": ["echo"], "concurrency": concurrency, "replicas": 1,
            "node_group": name}  # a group per bot: `oshal up` on this fleet would run each bot in its own process


def write_fleet(folder: Path, n: int, concurrency: int = 256) -> list[str]:
    """``n`` manifests in ``folder`` (created; it must not hold other manifests); returns the bots' names."""
    folder.mkdir(parents=True, exist_ok=True)
    if any(folder.glob("*.y*ml")):
        raise ValueError(f"{folder} already holds bot manifests: give the scale bench a folder of its own")
    names = bot_names(n)
    for name in names:
        (folder / f"{name}.yaml").write_text(yaml.safe_dump(manifest(name, concurrency), sort_keys=False))
    return names


def spread(bots: list[str], tickets: int) -> list[str]:
    """The bot of each of ``tickets`` tickets, round robin: every lane gets the same number, give or take one."""
    return [bots[i % len(bots)] for i in range(tickets)]


class Pacer:
    """How many tickets each lane gets per tick to offer ``rate`` tickets/s per lane (a lane's own rate where
    ``rates`` gives one), carrying the fractions over so that low rates still come out right on average."""

    def __init__(self, bots: list[str], rate: float, tick_s: float, rates: dict[str, float] | None = None) -> None:
        if rate <= 0 or tick_s <= 0:
            raise ValueError("the rate and the tick must be positive")
        self.per_tick = {bot: (rates or {}).get(bot, rate) * tick_s for bot in bots}
        self.carried = dict.fromkeys(bots, 0.0)

    def tick(self) -> list[str]:
        batch: list[str] = []
        for bot, share in self.per_tick.items():
            owed = self.carried[bot] + share
            whole = math.floor(owed)
            self.carried[bot] = owed - whole
            batch.extend([bot] * whole)
        return batch
