"""The one way work reaches a bot's lane: signed envelopes, appended through the kill-switch gate.

Callers commit their phases as dispatched first, then send. What a kill switch holds goes back to queued (its
attempt unspent) and is sent again when the switch is released. A Redis error after the commit loses nothing:
the sweeper re-sends dispatched phases that make no progress, so work just committed is sent with
:meth:`Dispatcher.send_committed`, which leaves it to the sweeper when Redis is down.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any
from uuid import UUID

from redis.asyncio import Redis
from redis.exceptions import RedisError

from oshal.logs import get_logger
from oshal.mesh.envelopes import Envelope
from oshal.mesh.kill_gate import KillGate
from oshal.mesh.signing import DispatchSigner
from oshal.store import killswitches as kill_repo
from oshal.store import tickets as ticket_repo
from oshal.store.db import Database
from oshal.types import PhaseStatus

log = get_logger(__name__)


class Dispatcher:
    def __init__(self, db: Database, redis: Redis, signer: DispatchSigner) -> None:
        self.db = db
        self.signer = signer
        self.gate = KillGate(db, redis)

    def envelope(self, tenant: UUID | str, ticket: UUID | str, phase: UUID | str, bot: str, value: Any,
                 attempt: int = 1) -> Envelope:
        """A signed envelope for one delivery of a phase."""
        env = Envelope(str(ticket), str(phase), attempt, str(tenant), bot, value)
        return env.signed(self.signer.sign(env))

    def envelopes(self, tenant: UUID, rows: Iterable[Mapping[str, Any]]) -> list[Envelope]:
        """Signed envelopes of phase rows (ticket_id, phase_id, attempt, bot, input), as the dispatching updates of
        ``store.tickets`` return them."""
        return [self.envelope(tenant, r["ticket_id"], r["phase_id"], str(r["bot"]), r["input"], int(r["attempt"]))
                for r in rows]

    async def send(self, envelopes: Sequence[Envelope]) -> int:
        """Append to lanes through the gate; envelopes a switch holds go back to queued. Returns how many were held.

        A Redis error is raised: the caller decides whether its work waits for the sweeper.
        """
        held = await self.gate.append(envelopes)
        if held:
            await self._hand_back(held)
            if not await self.gate.loaded():
                await self.gate.rebuild()  # Redis lost the mirror: rebuild it; the sweeper re-drives what was held
        return len(held)

    async def send_committed(self, envelopes: Sequence[Envelope]) -> None:
        """:meth:`send` for phases just committed as dispatched: a Redis error leaves them to the sweeper."""
        try:
            await self.send(envelopes)
        except RedisError as e:
            log.warning("dispatch deferred to sweeper", phases=len(envelopes), error=str(e))

    async def _hand_back(self, held: Sequence[Envelope]) -> None:
        by_tenant: dict[str, list[Envelope]] = defaultdict(list)
        for env in held:
            by_tenant[env.tenant_id].append(env)
        for tenant, envs in by_tenant.items():
            async with self.db.tenant(UUID(tenant)) as conn:
                await ticket_repo.undispatch(conn, [(UUID(e.phase_id), e.attempt) for e in envs])
        log.info("dispatch held by a kill switch", phases=len(held))

    async def resume_held(self, blocks: Callable[[str], str | None], limit: int = 5000) -> int:
        """Send the queued phases a switch held whose bot ``blocks`` no longer stops; returns how many were sent."""
        async with self.db.platform() as conn:
            rows = [r for r in await kill_repo.held_phases(conn, limit) if blocks(str(r["bot"])) is None]
        by_tenant: dict[UUID, list[UUID]] = defaultdict(list)
        for row in rows:
            by_tenant[row["tenant_id"]].append(row["phase_id"])
        envelopes: list[Envelope] = []
        for tenant, phases in by_tenant.items():
            async with self.db.tenant(tenant) as conn:
                rows = await ticket_repo.redispatch(conn, phases, from_status=[PhaseStatus.QUEUED])
                envelopes += self.envelopes(tenant, rows)
        held = await self.send(envelopes)
        return len(envelopes) - held
