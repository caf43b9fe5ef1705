"""/v1/knowledge: a tenant's runbooks, incident reports and other markdown documents, with ranked full-text search.
Anyone in the tenant reads and searches; operators write."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Path, Query, Response
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

from oshal.api.deps import Caller, Db, Operator
from oshal.errors import NotFound
from oshal.store import knowledge as knowledge_repo

router = APIRouter(prefix="/v1/knowledge", tags=["knowledge"])

COLLECTION_PATTERN = r"^[a-z][a-z0-9-]{0,39}$"
SLUG_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,99}$"
TAG_PATTERN = r"^[a-z0-9](?:[a-z0-9 ._-]{0,38}[a-z0-9._-])?$"  # words may be spaced: "node host"
# "search" would be shadowed by GET /v1/knowledge/search, so no collection may take that name.
RESERVED_COLLECTIONS = frozenset({"search"})
TITLE_MAX = 200
BODY_MAX_BYTES = 256 * 1024
TAGS_MAX = 20
SOURCE_MAX = 500
QUERY_MAX = 500


def _collection(value: str) -> str:
    if not re.fullmatch(COLLECTION_PATTERN, value):
        raise PydanticCustomError(
            "collection_name", "a collection name is 1 to 40 lowercase letters, digits and '-', starting with a "
            "letter (e.g. runbooks, incidents); got {value}", {"value": repr(value[:60])})
    if value in RESERVED_COLLECTIONS:
        raise PydanticCustomError("collection_reserved", "{value} is reserved (it is a route of its own); name the "
                                  "collection otherwise", {"value": repr(value)})
    return value


def _slug(value: str) -> str:
    if not re.fullmatch(SLUG_PATTERN, value):
        raise PydanticCustomError(
            "document_slug", "a document slug is 1 to 100 lowercase letters, digits, '.', '_' and '-', starting "
            "with a letter or digit (e.g. dead-bot); got {value}", {"value": repr(value[:120])})
    return value


def _optional_collection(value: str | None) -> str | None:
    return None if value is None else _collection(value)


def _optional_slug(value: str | None) -> str | None:
    return None if value is None else _slug(value)


_COLLECTION_DOC = "Lowercase letters, digits and '-' (e.g. runbooks, incidents); not 'search'."
Collection = Annotated[str, Path(description=_COLLECTION_DOC, json_schema_extra={"pattern": COLLECTION_PATTERN}),
                       AfterValidator(_collection)]
Slug = Annotated[str, Path(description="The document's stable name in its collection, e.g. dead-bot.",
                           json_schema_extra={"pattern": SLUG_PATTERN}), AfterValidator(_slug)]


class DocumentIn(BaseModel):
    """A document's content; PUT it to its (collection, slug) to create it or replace it whole."""

    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=TITLE_MAX, description="One line; matches here rank highest.")
    body: str = Field(min_length=1, max_length=BODY_MAX_BYTES,
                      description=f"Markdown, at most {BODY_MAX_BYTES} bytes of UTF-8.")
    tags: list[str] = Field(default_factory=list, max_length=TAGS_MAX,
                            description=f"At most {TAGS_MAX}, each up to 40 lowercase letters, digits, spaces, '.', "
                                        "'_' and '-'. "
                                        "Matches here rank above matches in the body.")
    source: str = Field(default="", max_length=SOURCE_MAX,
                        description="Where the document comes from (a file, a URL, an incident ticket).")

    @field_validator("title")
    @classmethod
    def _one_line(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the title must not be blank")
        if "\n" in value or "\r" in value:
            raise ValueError("the title is one line: remove the line breaks")
        return value

    @field_validator("body")
    @classmethod
    def _body_size(cls, value: str) -> str:
        size = len(value.encode())
        if size > BODY_MAX_BYTES:
            raise ValueError(f"the body is {size} bytes of UTF-8; a document's body is at most {BODY_MAX_BYTES} "
                             "bytes (256 KiB): split it into several documents")
        return value

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: list[str]) -> list[str]:
        bad = [tag for tag in value if not re.fullmatch(TAG_PATTERN, tag)]
        if bad:
            raise ValueError(f"a tag is 1 to 40 lowercase letters, digits, spaces, '.', '_' and '-', starting with a "
                             f"letter or digit and not ending in a space; these are not: "
                             f"{', '.join(repr(t[:60]) for t in bad[:5])}")
        return list(dict.fromkeys(value))  # the first of each repeated tag, in order


class DocumentSummary(BaseModel):
    id: UUID
    collection: str
    slug: str
    title: str
    tags: list[str]
    source: str
    created_by: UUID | None = Field(description="The key that created it.")
    updated_by: UUID | None = Field(description="The key that last wrote it.")
    created_at: dt.datetime
    updated_at: dt.datetime


class DocumentOut(DocumentSummary):
    body: str


class DocumentPage(BaseModel):
    items: list[DocumentSummary] = Field(description="By slug; without bodies.")
    next_cursor: str | None = Field(description="Pass as cursor for the next page; null on the last.")


class SearchHit(DocumentSummary):
    rank: float = Field(description="Higher is better: title matches weigh most, then tags, then the body.")
    snippet: str = Field(description="The body's best fragments, the matched words in **bold**.")


class SearchOut(BaseModel):
    query: str
    collection: str | None
    results: list[SearchHit] = Field(description="Best first (not a page: at most limit, no cursor).")


@router.get("/search", response_model=SearchOut)
async def search_documents(
    db: Db, who: Caller,
    q: Annotated[str, Query(min_length=1, max_length=QUERY_MAX, description='Words, "a phrase", or, -word '
                            "(web-search syntax); English stemming, so restarts finds restart.")],
    collection: Annotated[str | None, Query(description="Only this collection.",
                                            json_schema_extra={"pattern": COLLECTION_PATTERN}),
                          AfterValidator(_optional_collection)] = None,
    limit: Annotated[int, Query(ge=1, le=50)] = 10,
) -> SearchOut:
    """Ranked full-text search over the tenant's documents (Postgres full text; no embeddings)."""
    async with db.tenant(who.tenant_id) as conn:
        rows = await knowledge_repo.search(conn, q, collection=collection, limit=limit)
    return SearchOut(query=q, collection=collection, results=[SearchHit(**row) for row in rows])


@router.get("/{collection}", response_model=DocumentPage)
async def list_documents(
    collection: Collection, db: Db, who: Caller,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page",
                                        json_schema_extra={"pattern": SLUG_PATTERN}),
                      AfterValidator(_optional_slug)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> DocumentPage:
    """The collection's documents by slug, without their bodies (an unknown collection is empty)."""
    async with db.tenant(who.tenant_id) as conn:
        rows = await knowledge_repo.listing(conn, collection, after=cursor, limit=limit + 1)
    page = rows[:limit]
    return DocumentPage(items=[DocumentSummary(**row) for row in page],
                        next_cursor=page[-1]["slug"] if len(rows) > limit else None)


@router.get("/{collection}/{slug}", response_model=DocumentOut)
async def show_document(collection: Collection, slug: Slug, db: Db, who: Caller) -> DocumentOut:
    async with db.tenant(who.tenant_id) as conn:
        row = await knowledge_repo.get(conn, collection, slug)
    if row is None:
        raise _not_found(collection, slug)
    return DocumentOut(**row)


@router.put("/{collection}/{slug}", response_model=DocumentOut,
            responses={201: {"model": DocumentOut, "description": "Created."}})
async def put_document(collection: Collection, slug: Slug, body: DocumentIn, db: Db, who: Operator,
                       response: Response) -> DocumentOut:
    """Create the document (201) or replace its title, body, tags and source (200); its name and id stay."""
    async with db.tenant(who.tenant_id) as conn:
        row, created = await knowledge_repo.upsert(
            conn, tenant_id=who.tenant_id, collection=collection, slug=slug, title=body.title, body=body.body,
            tags=body.tags, source=body.source, by=who.key_id)
    response.status_code = 201 if created else 200
    return DocumentOut(**row)


@router.delete("/{collection}/{slug}", status_code=204)
async def delete_document(collection: Collection, slug: Slug, db: Db, who: Operator) -> Response:
    async with db.tenant(who.tenant_id) as conn:
        if not await knowledge_repo.delete(conn, collection, slug):
            raise _not_found(collection, slug)
    return Response(status_code=204)


def _not_found(collection: str, slug: str) -> NotFound:
    return NotFound(f"no document {slug!r} in collection {collection!r}",
                    hint=f"GET /v1/knowledge/{collection} lists the collection's documents")

