"""/v1/topology/{view}: the platform drawn from its live state, as Mermaid, Graphviz DOT or JSON."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query, Response

from oshal.api.deps import PlatformOperator, TopologyLive
from oshal.topology import views
from oshal.topology.render import FORMATS, MEDIA_TYPES

router = APIRouter(prefix="/v1/topology", tags=["topology"])

View = StrEnum("View", {name: name for name in views.VIEWS})  # type: ignore[misc]
Format = StrEnum("Format", {name: name for name in FORMATS})  # type: ignore[misc]
_MERMAID = Format("mermaid")


@router.get("/{view}", response_class=Response,
            responses={200: {"content": {t: {} for t in MEDIA_TYPES.values()},
                             "description": "The view, in the format asked for"}})
async def topology_view(
    view: View, source: TopologyLive, who: PlatformOperator,
    fmt: Annotated[Format, Query(alias="format", description="mermaid, dot or json")] = _MERMAID,
    ticket: Annotated[UUID | None, Query(description="routing: the hops and timings of this plain ticket (of "
                                                     "your tenant) instead of the recent p50/p99")] = None,
) -> Response:
    """One view of the live platform: system, deployment, routing, integration, workflows, security or business.
    Built from what runs now (bots and their heartbeats, lanes, stores, connectors, controls, scans, workflows);
    ticket counts and route timings are the caller's tenant's. Equal states give byte-identical output."""
    model = await source.build(who.tenant_id, ticket)
    diagram = views.view(str(view.value), model)
    return Response(FORMATS[str(fmt.value)](diagram), media_type=MEDIA_TYPES[str(fmt.value)])
