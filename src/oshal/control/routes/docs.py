"""/openapi.json and /docs (Swagger UI): the API's own description, for any authenticated caller."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse

from oshal.control.deps import Caller

router = APIRouter(include_in_schema=False)


@router.get("/openapi.json")
async def openapi(request: Request, who: Caller) -> JSONResponse:
    return JSONResponse(request.app.openapi())


@router.get("/docs")
async def docs(who: Caller) -> HTMLResponse:
    return get_swagger_ui_html(openapi_url="/openapi.json", title="oshal API")
