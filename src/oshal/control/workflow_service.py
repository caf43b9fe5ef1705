"""Workflow definitions as an API: list, show, publish a new version, and generate one from words."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import yaml

from oshal.control.bots import BotRegistry
from oshal.errors import Invalid, NotFound
from oshal.store import workflows as repo
from oshal.store.db import Database
from oshal.types import new_id
from oshal.workflows.definition import WorkflowDefinition, parse_definition
from oshal.workflows.generator import describe_definition, diff_definitions, generate_definition
from oshal.workflows.runner import WorkflowRunner


class WorkflowService:
    def __init__(self, db: Database, runner: WorkflowRunner, registry: BotRegistry) -> None:
        self.db = db
        self.runner = runner
        self.registry = registry

    async def list(self, tenant: UUID) -> list[dict[str, Any]]:
        async with self.db.tenant(tenant) as conn:
            return await repo.definitions(conn)

    async def show(self, tenant: UUID, name: str, version: int | None) -> dict[str, Any]:
        async with self.db.tenant(tenant) as conn:
            definition = await self.runner.definition(conn, name, version)
            versions = await repo.versions(conn, name)
        return {"name": definition.name, "version": definition.version, "versions": versions,
                "digest": definition.digest(), "definition": definition.to_document(),
                "preview": describe_definition(definition)}

    async def _current(self, tenant: UUID, name: str) -> WorkflowDefinition | None:
        async with self.db.tenant(tenant) as conn:
            try:
                return await self.runner.definition(conn, name)
            except NotFound:
                return None

    def _check_addresses(self, definition: WorkflowDefinition) -> None:
        """Every bot and capability a definition names must exist now, or its tickets could never run."""
        problems = []
        for step in definition.steps:
            for target in (step, *getattr(step, "branches", ())):
                bot, capability = getattr(target, "bot", None), getattr(target, "capability", None)
                if bot is None and capability is None:
                    continue
                try:
                    self.registry.resolve(bot, capability)
                except Invalid as e:
                    problems.append(f"step {target.id}: {e.message}")
        if problems:
            raise Invalid("; ".join(problems), hint="GET /v1/bots lists the bots and their capabilities")

    async def publish(self, tenant: UUID, principal: UUID | None, document: Any) -> dict[str, Any]:
        """Validate and store as the next version of its name (running tickets stay on their version)."""
        draft = parse_definition(document, source="the definition")
        self._check_addresses(draft)
        current = await self._current(tenant, draft.name)
        version = (current.version + 1) if current else 1
        definition = parse_definition({**draft.to_document(), "version": version}, source="the definition")
        if current is not None and current.digest() == _digest_ignoring_version(definition, current.version):
            return {"name": definition.name, "version": current.version, "published": False,
                    "reason": "identical to the current version"}
        async with self.db.tenant(tenant) as conn:
            await repo.insert_definition(conn, new_id(), tenant, definition.name, version, definition.to_document(),
                                         definition.digest(), principal)
        return {"name": definition.name, "version": version, "published": True}

    async def generate(self, tenant: UUID, principal: UUID | None, description: str, *, name: str | None,
                       publish: bool) -> dict[str, Any]:
        """A definition from words: always validated and previewed; published only when asked and valid."""
        try:
            definition = generate_definition(description, name=name, bots=self.registry.capabilities_by_bot())
            self._check_addresses(definition)
        except Invalid as e:
            return {"valid": False, "error": e.message, "hint": e.hint, "published": False}
        current = await self._current(tenant, definition.name)
        result: dict[str, Any] = {
            "valid": True, "name": definition.name, "definition": definition.to_document(),
            "yaml": yaml.safe_dump(definition.to_document(), sort_keys=False),
            "preview": describe_definition(definition), "diff": diff_definitions(current, definition),
            "published": False}
        if publish:
            result |= await self.publish(tenant, principal, definition.to_document())
        return result


def _digest_ignoring_version(definition: WorkflowDefinition, version: int) -> str:
    return parse_definition({**definition.to_document(), "version": version}).digest()
