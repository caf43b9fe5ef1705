"""Workflow definitions as an API: list, show, publish a new version, and generate one from words."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import yaml

from oshal.control.bot_registry import BotRegistry
from oshal.control.tickets import TicketRequest, TicketService
from oshal.errors import Invalid, NotFound
from oshal.store import workflows as repo
from oshal.store.db import Database
from oshal.types import new_id
from oshal.workflows.definition import WorkflowDefinition, definition_schema, parse_definition
from oshal.workflows.generator import describe_definition, diff_definitions, generate_definition
from oshal.workflows.runner import WorkflowRunner


class WorkflowService:
    def __init__(self, db: Database, runner: WorkflowRunner, registry: BotRegistry, tickets: TicketService) -> None:
        self.tickets = tickets
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

    async def _ask_bot(self, tenant: UUID, principal: UUID | None, bot: str, description: str,
                       name: str | None) -> WorkflowDefinition:
        fleet = "; ".join(f"{b}: {', '.join(c) or '-'}" for b, c in self.registry.capabilities_by_bot().items())
        request = TicketRequest(bot, {"text": _INSTRUCTION.format(bots=fleet, what=description),
                                      "response_schema": definition_schema(), "response_name": "workflow"})
        _, ticket = await self.tickets.create_and_wait(tenant, principal, request, _GENERATE_WAIT_S)
        if ticket["status"] != "done":
            raise Invalid(f"bot {bot} did not produce a definition (its ticket {ticket['id']} is {ticket['status']}"
                          f"{': ' + str(ticket['error']) if ticket.get('error') else ''})",
                          hint="check the bot with `oshal ticket show`, or generate offline without --bot")
        result = ticket.get("result")
        document = result.get("json") if isinstance(result, dict) else None
        if not isinstance(document, dict):
            raise Invalid(f"bot {bot} answered without a JSON definition (ticket {ticket['id']})",
                          hint="use a model-backed bot (openai harness) that supports structured output")
        if name is not None:
            document = {**document, "name": name}
        return parse_definition(document, source=f"the definition bot {bot} wrote")

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
                       publish: bool, bot: str | None = None) -> dict[str, Any]:
        """A definition from words: always validated and previewed; published only when asked and valid.

        Offline, the deterministic generator maps the words onto the step kinds. With ``bot`` (a model-backed
        bot), that bot is asked for a definition as structured output against the definition's JSON Schema,
        as a ticket of its own (so its cost lands in the ledger); its answer is validated like any other.
        """
        try:
            if bot is None:
                definition = generate_definition(description, name=name, bots=self.registry.capabilities_by_bot())
            else:
                definition = await self._ask_bot(tenant, principal, bot, description, name)
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


_GENERATE_WAIT_S = 120.0
_INSTRUCTION = (
    "Write an oshal workflow definition for the process below, as JSON meeting the given schema. Use only these "
    "bots (name: capabilities): {bots}. Steps run in order; only a loop step may jump back.\n\nProcess: {what}")


def _digest_ignoring_version(definition: WorkflowDefinition, version: int) -> str:
    return parse_definition({**definition.to_document(), "version": version}).digest()
