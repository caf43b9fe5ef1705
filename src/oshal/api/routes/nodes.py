"""/v1/nodes: remote nodes that enroll (platform operators), join (with their code) and are revoked."""

from __future__ import annotations

import datetime as dt
from typing import Any
from uuid import UUID

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from oshal.api.deps import Nodes, PlatformOperator
from oshal.api.validation import INT4_MAX
from oshal.control.node_enrollment import MAX_TTL_S, JoinRequest
from oshal.mesh.redis_keys import BOT_NAME_PATTERN

router = APIRouter(prefix="/v1/nodes", tags=["fleet"])


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EnrollIn(_In):
    bot: str = Field(pattern=BOT_NAME_PATTERN, description="The bot whose lane the node will serve.")
    # bounded loosely here: the service says what the range is and how to pick a value in it
    ttl_s: int = Field(default=600, ge=0, le=INT4_MAX,
                       description=f"How long the code may be redeemed (1 s to {MAX_TTL_S} s).")
    label: str = Field(default="", max_length=100, description="A note for `oshal node list`, e.g. the machine.")


class EnrollOut(BaseModel):
    node_id: UUID
    bot: str
    label: str
    code: str = Field(description="The enrollment code: shown once, kept only as a digest; it works once.")
    expires_at: dt.datetime


class JoinIn(_In):
    code: str = Field(min_length=1, max_length=200)
    bot: str | None = Field(default=None, pattern=BOT_NAME_PATTERN,
                            description="The bot the node expects to serve; a code for another bot is refused.")
    hostname: str = Field(default="", max_length=255)


class WorkerSettings(BaseModel):
    heartbeat_ttl_s: float
    claim_idle_ms: int
    max_deliveries: int
    drain_timeout_s: float


class JoinOut(BaseModel):
    node_id: UUID
    bot: str
    redis_url: str = Field(description="Redis, logged in as the node's own ACL user (its bot's permissions).")
    gateway_token: str = Field(description="The node's tool-gateway token (X-Oshal-Bot-Token).")
    consumer_prefix: str
    manifest: dict[str, Any]
    worker: WorkerSettings


class NodeOut(BaseModel):
    id: UUID
    bot: str
    label: str
    state: str = Field(description="pending (code not redeemed yet), expired, online, offline or revoked")
    replicas: int = Field(description="Its workers with a live heartbeat.")
    last_heartbeat: dt.datetime | None
    created_at: dt.datetime
    created_by: str
    code_expires_at: dt.datetime
    joined_at: dt.datetime | None
    joined_from: str
    hostname: str
    revoked_at: dt.datetime | None
    revoked_by: str | None


class RevokedOut(NodeOut):
    connections_closed: int


@router.post("/enrollments", status_code=201, response_model=EnrollOut)
async def enroll(body: EnrollIn, nodes: Nodes, who: PlatformOperator) -> EnrollOut:
    """Mint a short-lived, single-use enrollment code for a node of one bot (platform operators only)."""
    return EnrollOut.model_validate(await nodes.enroll(body.bot, body.ttl_s, body.label, who.actor))


@router.post("/join", response_model=JoinOut)
async def join(body: JoinIn, nodes: Nodes, request: Request) -> JoinOut:
    """Redeem an enrollment code (once) for the node's identity. No API key: the code is the credential."""
    source = request.client.host if request.client else ""
    return JoinOut.model_validate(await nodes.join(JoinRequest(body.code, body.bot, body.hostname, source)))


@router.get("", response_model=list[NodeOut])
async def list_nodes(nodes: Nodes, who: PlatformOperator) -> list[NodeOut]:
    """Every node, newest first, with its state and last heartbeat."""
    return [NodeOut.model_validate(row) for row in await nodes.nodes()]


@router.post("/{node_id}/revoke", response_model=RevokedOut)
async def revoke(node_id: UUID, nodes: Nodes, who: PlatformOperator) -> RevokedOut:
    """Cut a node off: its Redis user disabled and its connections closed, its gateway token refused."""
    return RevokedOut.model_validate(await nodes.revoke(node_id, who.actor))
