"""Kill switches: a global one and one per bot. Engaged, they stop new dispatch and tool calls at once.

Postgres holds the switches (the system of record, audited); the dispatcher's gate (:mod:`oshal.mesh.kill_gate`)
mirrors them in Redis and checks them atomically with each lane append, so no replica can slip a message past a
switch once ``engage`` returns. Held work is not lost or failed: its phases go back to ``queued`` and are
dispatched when the switch is released.
"""

from __future__ import annotations

import re
from typing import Any
from uuid import UUID

from oshal.audit import trail
from oshal.errors import Conflict, Invalid, NotFound
from oshal.logs import get_logger
from oshal.mesh.dispatcher import Dispatcher
from oshal.store import killswitches as repo
from oshal.store.db import Database

log = get_logger(__name__)
GLOBAL = "global"
_SCOPE = re.compile(r"^(global|bot:[a-z0-9][a-z0-9-]{0,62})$")


def scope_of(bot: str | None) -> str:
    return GLOBAL if bot is None else f"bot:{bot}"


class KillSwitches:
    def __init__(self, db: Database, dispatcher: Dispatcher) -> None:
        self.db = db
        self.dispatcher = dispatcher
        self.engaged: dict[str, dict[str, Any]] = {}

    def blocks(self, bot: str) -> str | None:
        """The reason ``bot`` may not work right now, from this process's view (refreshed on every change)."""
        for scope in (GLOBAL, scope_of(bot)):
            row = self.engaged.get(scope)
            if row is not None:
                return f"kill switch {scope} is engaged by {row['engaged_by']}: {row['reason']}"
        return None

    async def refresh(self) -> dict[str, dict[str, Any]]:
        """Reload from Postgres and rebuild the dispatch gate's mirror (at start and by the sweeper)."""
        self.engaged = await self.dispatcher.gate.rebuild()
        return self.engaged

    async def load(self) -> dict[str, dict[str, Any]]:
        """The engaged switches from Postgres, also kept as this process's view (see :meth:`blocks`)."""
        async with self.db.system() as conn:
            self.engaged = await repo.engaged(conn)
        return self.engaged

    async def engage(self, bot: str | None, *, reason: str, actor: str, tenant: UUID) -> dict[str, Any]:
        scope = _checked(scope_of(bot))
        if not reason.strip():
            raise Invalid("a kill switch needs a reason", hint="pass --reason 'what happened'")
        async with self.db.system() as conn:
            row = await repo.engage(conn, scope, reason.strip()[:500], actor)
            if row is None:
                raise Conflict(f"kill switch {scope} is already engaged", hint="release it first to change it")
            await trail.record(conn, trail.Entry(tenant, actor, "kill_switch.engage", scope, {"reason": reason}))
        await self._changed(scope, str(row["reason"]))
        log.warning("kill switch engaged", scope=scope, by=actor, reason=reason)
        return row

    async def release(self, bot: str | None, *, actor: str, tenant: UUID) -> int:
        """Release a switch and dispatch the work it held; returns how many phases were dispatched."""
        scope = _checked(scope_of(bot))
        async with self.db.system() as conn:
            if not await repo.release(conn, scope):
                raise NotFound(f"kill switch {scope} is not engaged")
            await trail.record(conn, trail.Entry(tenant, actor, "kill_switch.release", scope, {}))
        await self._changed(scope, None)
        log.warning("kill switch released", scope=scope, by=actor)
        return await self.dispatcher.resume_held(self.blocks)

    async def _changed(self, scope: str, reason: str | None) -> None:
        """After the change commits: the gate applies it, and this process's view is reloaded."""
        await self.dispatcher.gate.changed(scope, reason)
        await self.load()


def _checked(scope: str) -> str:
    if not _SCOPE.match(scope):
        raise Invalid(f"{scope!r} is not a kill-switch scope", hint="use 'global' or a bot name")
    return scope
