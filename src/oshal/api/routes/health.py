"""Unauthenticated probes: liveness, readiness (Postgres and Redis) and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from oshal.api.deps import Health

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(health: Health) -> JSONResponse:
    """503 while an engine is down: ``checks`` says which and since when, ``engines`` the same as fields."""
    states = await health.current()
    ready = all(state.ready for state in states.values())
    return JSONResponse({"status": "ready" if ready else "unavailable",
                         "checks": {name: state.summary() for name, state in states.items()},
                         "engines": {name: state.as_dict() for name, state in states.items()}},
                        status_code=200 if ready else 503)


@router.get("/metrics", response_class=PlainTextResponse,
            responses={200: {"description": "Prometheus text exposition format"}})
async def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
