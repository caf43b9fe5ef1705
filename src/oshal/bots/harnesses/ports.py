"""The harness port: the job a harness runs, the outcome it returns, and the protocol every adapter meets."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from oshal.mesh.envelopes import CallUsage

if TYPE_CHECKING:
    from oshal.bots.tools import ToolSession


@dataclass(frozen=True, slots=True)
class Job:
    phase_id: str
    attempt: int
    input: Any
    tools: ToolSession | None = None  # present when the node can reach the tool gateway
    delivery: int = 1  # how many times this envelope was delivered (a reclaim after a replica died adds one)

    def call_id(self, n: int) -> str:
        # One id per execution: a re-run (another attempt, or a reclaimed delivery) made its calls again and
        # is billed for them; a result delivered twice to the collector still carries the same ids.
        if self.delivery <= 1:
            return f"{self.phase_id}:{self.attempt}:{n}"
        return f"{self.phase_id}:{self.attempt}.{self.delivery}:{n}"


@dataclass(frozen=True, slots=True)
class Outcome:
    output: Any
    calls: tuple[CallUsage, ...]


class Harness(Protocol):
    async def run(self, job: Job) -> Outcome: ...

    async def aclose(self) -> None: ...
