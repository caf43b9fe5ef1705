"""/openapi.json, /docs (Swagger UI) and /redoc: the API's own description, for any authenticated caller."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse

from oshal.api.deps import Caller
from oshal.api.docs_ui import redoc_page, swagger_ui_page

router = APIRouter(include_in_schema=False)
_OPENAPI = "/openapi.json"


@router.get(_OPENAPI)
async def openapi(request: Request, who: Caller) -> JSONResponse:
    return JSONResponse(request.app.openapi())


@router.get("/docs")
async def docs(request: Request, who: Caller) -> HTMLResponse:
    return swagger_ui_page(f"{request.app.title} API", _OPENAPI)


@router.get("/redoc")
async def redoc(request: Request, who: Caller) -> HTMLResponse:
    return redoc_page(f"{request.app.title} API", _OPENAPI)
