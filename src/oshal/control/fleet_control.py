"""Fleet control as operators use it: restart a bot's processes, set how many replicas consume its lane.

These are orders, kept in Postgres and audited; the platform does not run processes itself. Whatever runs the
nodes carries them out and records that it did: ``oshal up``'s supervisor does so at once (see
``oshal.launcher.fleet_reconciler``); another orchestrator reads ``GET /v1/bots/{bot}/control`` and reports back the
same way. An order is therefore visible twice: as asked (``restart_seq``, ``replicas``) and as applied
(``applied_seq``, ``applied_replicas``), which is how a caller verifies it took effect.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from oshal.audit import trail
from oshal.errors import Invalid, NotFound
from oshal.logs import get_logger
from oshal.store import access
from oshal.store import fleet_controls as repo
from oshal.store.db import Database

log = get_logger(__name__)
MAX_REPLICAS = 64
MAX_REASON = 500


def _reason(reason: str) -> str:
    text = reason.strip()
    if not text:
        raise Invalid("a fleet order needs a reason", hint="say why, e.g. --reason 'bot stopped heart-beating'")
    return text[:MAX_REASON]


class FleetControl:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def _known(self, bot: str) -> None:
        async with self.db.system() as conn:
            names = {str(r["name"]) for r in await access.bots(conn)}
        if bot not in names:
            raise NotFound(f"no bot named {bot!r} is registered", hint="see GET /v1/bots for the fleet")

    async def state(self, bot: str) -> dict[str, Any]:
        """The bot's orders and what was applied (zeros and nulls when nothing was ever ordered)."""
        await self._known(bot)
        async with self.db.system() as conn:
            row = await repo.control(conn, bot)
        return row or {"bot": bot, "replicas": None, "restart_seq": 0, "reason": "", "updated_by": "",
                       "updated_at": None, "applied_seq": 0, "applied_replicas": None, "applied_at": None,
                       "applied_note": ""}

    async def restart(self, bot: str, *, reason: str, actor: str, tenant: UUID) -> dict[str, Any]:
        await self._known(bot)
        why = _reason(reason)
        async with self.db.system() as conn:
            row = await repo.order_restart(conn, bot, why, actor)
            await trail.record(conn, trail.Entry(tenant, actor, "fleet.restart", bot,
                                                 {"reason": why, "restart_seq": row["restart_seq"]}))
        log.warning("bot restart ordered", bot=bot, by=actor, seq=row["restart_seq"], reason=why)
        return row

    async def scale(self, bot: str, replicas: int | None, *, reason: str, actor: str, tenant: UUID
                    ) -> dict[str, Any]:
        if replicas is not None and not 0 <= replicas <= MAX_REPLICAS:
            raise Invalid(f"replicas must be between 0 and {MAX_REPLICAS}, not {replicas}",
                          hint="0 stops the bot's processes; null returns to the manifest's number")
        await self._known(bot)
        why = _reason(reason)
        async with self.db.system() as conn:
            row = await repo.order_replicas(conn, bot, replicas, why, actor)
            await trail.record(conn, trail.Entry(tenant, actor, "fleet.scale", bot,
                                                 {"reason": why, "replicas": replicas}))
        log.warning("bot replicas ordered", bot=bot, by=actor, replicas=replicas, reason=why)
        return row
