"""The bot registry as the control plane sees it: registration from manifests and a cached name set."""

from __future__ import annotations

import time

import psycopg

from oshal.bots.manifest import BotManifest
from oshal.errors import Invalid
from oshal.store import access
from oshal.store.db import Database


def register_fleet(owner_url: str, fleet: dict[str, BotManifest]) -> None:
    """Upsert every manifest into the ``bots`` table (owner connection; the API role can only read it)."""
    with psycopg.connect(owner_url) as conn:
        access.register_bots(conn, ({**m.model_dump(mode="json"), "provider": m.provider_name}
                                    for m in fleet.values()))


class BotRegistry:
    _REFRESH_S = 5.0

    def __init__(self, db: Database) -> None:
        self._db = db
        self._names: frozenset[str] = frozenset()
        self._capabilities: dict[str, list[str]] = {}
        self._loaded = 0.0

    async def refresh(self) -> frozenset[str]:
        async with self._db.system() as conn:
            rows = await access.bots(conn)
        self._names = frozenset(str(row["name"]) for row in rows)
        capabilities: dict[str, list[str]] = {}
        for row in rows:
            for capability in (row["manifest"] or {}).get("capabilities") or ():
                capabilities.setdefault(str(capability), []).append(str(row["name"]))
        self._capabilities = capabilities
        self._loaded = time.monotonic()
        return self._names

    @property
    def capabilities(self) -> dict[str, list[str]]:
        """Capability -> the bots that declare it, in name order."""
        return self._capabilities

    def capabilities_by_bot(self) -> dict[str, list[str]]:
        by_bot: dict[str, list[str]] = {name: [] for name in sorted(self._names)}
        for capability, bots in self._capabilities.items():
            for bot in bots:
                by_bot.setdefault(bot, []).append(capability)
        return by_bot

    def resolve(self, bot: str | None, capability: str | None) -> str:
        """The bot a workflow step addresses: by name, or the first bot (by name) with the capability."""
        if bot is not None:
            if bot not in self._names:
                raise Invalid(f"unknown bot {bot!r}", hint=f"known bots: {', '.join(sorted(self._names))}")
            return bot
        candidates = self._capabilities.get(capability or "", [])
        if not candidates:
            raise Invalid(f"no bot has the capability {capability!r}",
                          hint=f"capabilities: {', '.join(sorted(self._capabilities)) or 'none'}")
        return candidates[0]

    @property
    def names(self) -> frozenset[str]:
        return self._names

    async def require(self, names: set[str]) -> None:
        unknown = names - self._names
        if unknown and time.monotonic() - self._loaded > self._REFRESH_S:
            await self.refresh()
            unknown = names - self._names
        if unknown:
            raise Invalid(
                f"unknown bot {', '.join(sorted(repr(n) for n in unknown))}",
                hint=f"known bots: {', '.join(sorted(self._names)) or 'none registered'} (GET /v1/bots)",
            )
