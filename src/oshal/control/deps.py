"""FastAPI dependencies: the control plane instance and the authenticated principal."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from oshal.control.auth import Principal, credential_from_headers
from oshal.control.runtime import ControlPlane


async def plane(request: Request) -> ControlPlane:
    # async on purpose: FastAPI runs plain-def dependencies in a thread pool, a thread hop per request.
    return request.app.state.plane  # type: ignore[no-any-return]


async def principal(
    request: Request,
    authorization: Annotated[str | None, Header()] = None,
    x_api_key: Annotated[str | None, Header()] = None,
) -> Principal:
    cp: ControlPlane = request.app.state.plane
    return await cp.auth.authenticate(credential_from_headers(authorization, x_api_key))


async def operator(who: Annotated[Principal, Depends(principal)]) -> Principal:
    who.require_operator()
    return who


Plane = Annotated[ControlPlane, Depends(plane)]
Caller = Annotated[Principal, Depends(principal)]
Operator = Annotated[Principal, Depends(operator)]
