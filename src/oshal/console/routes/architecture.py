"""Architecture (platform operators): every view of the live platform, drawn in the browser by the vendored
Mermaid, each downloadable as SVG (the drawing) and as Mermaid, DOT or JSON (the source)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated
from uuid import UUID

from fastapi import Query, Request, Response

from oshal.console.render import page
from oshal.console.routes.common import console_router
from oshal.console.session import ConsolePlatform, plane_of
from oshal.topology import views
from oshal.topology.live import TopologySource
from oshal.topology.render import FORMATS, MEDIA_TYPES

router = console_router()
View = StrEnum("View", {name: name for name in views.VIEWS})  # type: ignore[misc]


class Download(StrEnum):
    MMD = "mmd"
    DOT = "dot"
    JSON = "json"


_FORMAT_OF = {Download.MMD: "mermaid", Download.DOT: "dot", Download.JSON: "json"}


def _source(request: Request) -> TopologySource:
    cp = plane_of(request)
    return TopologySource(cp.db, cp.redis, cp.kill, cp.health, cp.settings)


# Declared before the page route: a view's name never holds a dot, so "system.mmd" is a download.
@router.get("/architecture/{view}.{fmt}")
async def download(request: Request, view: View, fmt: Download, who: ConsolePlatform,
                   ticket: Annotated[UUID | None, Query()] = None) -> Response:
    diagram = views.view(str(view.value), await _source(request).build(who.tenant_id, ticket))
    name = _FORMAT_OF[fmt]
    return Response(FORMATS[name](diagram), media_type=MEDIA_TYPES[name],
                    headers={"Content-Disposition": f'attachment; filename="oshal-{view.value}.{fmt.value}"'})


@router.get("/architecture")
async def architecture(request: Request, who: ConsolePlatform) -> Response:
    return await _view_page(request, "system", None, who.tenant_id)


@router.get("/architecture/{view}")
async def architecture_view(request: Request, view: View, who: ConsolePlatform,
                            ticket: Annotated[UUID | None, Query()] = None) -> Response:
    return await _view_page(request, str(view.value), ticket, who.tenant_id)


async def _view_page(request: Request, name: str, ticket: UUID | None, tenant: UUID) -> Response:
    diagram = views.view(name, await _source(request).build(tenant, ticket))
    return await page(request, "architecture.html", title="Architecture", view=name, views=list(views.VIEWS),
                      diagram=diagram, source=FORMATS["mermaid"](diagram), ticket=ticket or "")
