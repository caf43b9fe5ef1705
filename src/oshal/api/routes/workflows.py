"""/v1/workflows: the ticket types (workflow definitions), publishing new versions, and the generator."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from oshal.api.deps import Caller, Operator, Registry, Workflows
from oshal.api.validation import INT4_MAX
from oshal.workflows.definition import definition_schema

router = APIRouter(prefix="/v1/workflows", tags=["workflows"])


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PublishIn(_In):
    definition: dict[str, Any] = Field(description="The definition document (what the YAML files hold).")


class GenerateIn(_In):
    description: str = Field(min_length=3, max_length=4000, description="The process, in words.")
    name: str | None = Field(default=None, pattern=r"^[a-z][a-z0-9-]{0,39}$")
    publish: bool = Field(default=False, description="Publish it as a ticket type if it validates.")
    bot: str | None = Field(default=None, min_length=1, max_length=40,
                            description="A model-backed bot to write it (structured output); default: offline.")


@router.get("")
async def list_workflows(workflows: Workflows, who: Caller) -> list[dict[str, Any]]:
    """Every ticket type with its newest version (a tenant's own definitions shadow built-ins)."""
    return await workflows.list(who.tenant_id)


@router.get("/schema")
async def workflow_schema(who: Caller) -> dict[str, Any]:
    """The JSON Schema a definition document must meet."""
    return definition_schema()


@router.get("/{name}")
async def show_workflow(name: str, workflows: Workflows, who: Caller,
                        version: Annotated[int | None, Query(ge=1, le=INT4_MAX)] = None) -> dict[str, Any]:
    return await workflows.show(who.tenant_id, name, version)


@router.post("", status_code=201)
async def publish_workflow(body: PublishIn, workflows: Workflows, who: Operator) -> dict[str, Any]:
    """Publish a definition as the next version of its name; tickets already running stay on theirs."""
    return await workflows.publish(who.tenant_id, who.key_id, body.definition)


@router.post("/generate")
async def generate_workflow(body: GenerateIn, workflows: Workflows, registry: Registry,
                            who: Operator) -> dict[str, Any]:
    """Generate a definition from a description: validated, previewed with a diff, published only on request."""
    if body.bot is not None:
        await registry.require({body.bot})
    return await workflows.generate(who.tenant_id, who.key_id, body.description, name=body.name,
                                       publish=body.publish, bot=body.bot)
