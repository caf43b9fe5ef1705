"""/v1/apps/{app}/records: immutable JSON records the applications built on the platform keep, per tenant.

A record is named (app, collection, key) and written once. ``PUT`` creates it if absent: 201 when it was created,
200 with the stored record when an equal body is already there (a retried write), 409 when a different body holds
the name — so an application's retried step can never record two different things under one name (the trading
desk's orders and fills are idempotent this way). Anyone in the tenant reads; operators write (an application's
service runs with an operator key)."""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Body, Path, Query, Response
from pydantic import AfterValidator, BaseModel, Field
from pydantic_core import PydanticCustomError

from oshal.api.deps import Caller, Db, Operator
from oshal.errors import Conflict, Invalid, NotFound, TooLarge
from oshal.store import records as records_repo

router = APIRouter(prefix="/v1/apps", tags=["records"])

NAME_PATTERN = r"^[a-z][a-z0-9-]{0,39}$"
KEY_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,199}$"
BODY_MAX_BYTES = 256 * 1024
PAGE_MAX = 200


def _name(what: str, example: str) -> Any:
    def check(value: str) -> str:
        if not re.fullmatch(NAME_PATTERN, value):
            raise PydanticCustomError(
                "record_name", "{what} name is 1 to 40 lowercase letters, digits and '-', starting with a letter "
                "(e.g. {example}); got {value}", {"what": what, "example": example, "value": repr(value[:60])})
        return value
    return check


def _key(value: str) -> str:
    if not re.fullmatch(KEY_PATTERN, value):
        raise PydanticCustomError(
            "record_key", "a record key is 1 to 200 lowercase letters, digits, '.', '_' and '-', starting with a "
            "letter or digit (e.g. main.2016-03-01); got {value}", {"value": repr(value[:220])})
    return value


def _optional_key(value: str | None) -> str | None:
    return None if value is None else _key(value)


App = Annotated[str, Path(description="The application, e.g. trading.", json_schema_extra={"pattern": NAME_PATTERN}),
                AfterValidator(_name("an app", "trading"))]
Collection = Annotated[str, Path(description="A collection of the app's records, e.g. fills.",
                                 json_schema_extra={"pattern": NAME_PATTERN}),
                       AfterValidator(_name("a collection", "fills"))]
Key = Annotated[str, Path(description="The record's name in its collection.",
                          json_schema_extra={"pattern": KEY_PATTERN}), AfterValidator(_key)]


class RecordOut(BaseModel):
    app: str
    collection: str
    key: str
    body: dict[str, Any]
    created_by: UUID | None = Field(description="The key that wrote it.")
    created_at: dt.datetime


class RecordPage(BaseModel):
    items: list[RecordOut] = Field(description="In the order they were written (or newest first), bodies included.")
    next_cursor: str | None = Field(description="Pass as after for the next page; null on the last.")


@router.put("/{app}/records/{collection}/{key}", response_model=RecordOut,
            responses={201: {"model": RecordOut, "description": "Created."},
                       409: {"description": "A record with a different body already holds this name."}})
async def put_record(app: App, collection: Collection, key: Key, db: Db, who: Operator, response: Response,
                     body: Annotated[dict[str, Any], Body(description=f"Any JSON object up to {BODY_MAX_BYTES} "
                                                                      "bytes; records are immutable.")]) -> RecordOut:
    """Create the record if absent: 201; the same body again: 200 with the stored record; a different body: 409."""
    size = len(json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode())
    if size > BODY_MAX_BYTES:
        raise TooLarge(f"the record body is {size} bytes of JSON; a record holds at most {BODY_MAX_BYTES} bytes "
                       "(256 KiB)", hint="split it into several records")
    async with db.tenant(who.tenant_id) as conn:
        row, outcome = await records_repo.create(conn, tenant_id=who.tenant_id, app=app, collection=collection,
                                                 key=key, body=body, by=who.key_id)
    if outcome == "different":
        raise Conflict(f"record {key!r} in {app}/{collection} already exists with a different body; records are "
                       "immutable", hint="write the new content under a new key (a retry of the same write is safe)")
    response.status_code = 201 if outcome == "created" else 200
    return RecordOut(**row)


@router.get("/{app}/records/{collection}", response_model=RecordPage)
async def list_records(
    app: App, collection: Collection, db: Db, who: Caller,
    after: Annotated[str | None, Query(description="next_cursor of the previous page (a record's key)",
                                       json_schema_extra={"pattern": KEY_PATTERN}),
                     AfterValidator(_optional_key)] = None,
    limit: Annotated[int, Query(ge=1, le=PAGE_MAX)] = 50,
    order: Annotated[Literal["asc", "desc"], Query(description="asc: oldest first; desc: newest first")] = "asc",
) -> RecordPage:
    """A collection's records in write order (an unknown collection is empty)."""
    async with db.tenant(who.tenant_id) as conn:
        if after is not None and not await records_repo.exists(conn, app, collection, after):
            raise Invalid(f"after: no record {after!r} in {app}/{collection}",
                          hint="pass the next_cursor of the previous page")
        rows = await records_repo.listing(conn, app, collection, after=after, limit=limit + 1,
                                          newest_first=order == "desc")
    page = rows[:limit]
    return RecordPage(items=[RecordOut(**row) for row in page],
                      next_cursor=page[-1]["key"] if len(rows) > limit else None)


@router.get("/{app}/records/{collection}/{key}", response_model=RecordOut)
async def show_record(app: App, collection: Collection, key: Key, db: Db, who: Caller) -> RecordOut:
    async with db.tenant(who.tenant_id) as conn:
        row = await records_repo.get(conn, app, collection, key)
    if row is None:
        raise NotFound(f"no record {key!r} in {app}/{collection}",
                       hint=f"GET /v1/apps/{app}/records/{collection} lists the collection")
    return RecordOut(**row)
