"""Input checks that apply to every route at once, so no single field can be forgotten.

Postgres refuses the NUL character in text and in jsonb (``\\u0000``), and a lone UTF-16 surrogate (``\\ud800``,
which JSON can spell but UTF-8 cannot encode) fails before it even reaches the server. Either would surface as a
500 from deep inside a query; :func:`reject_unstorable` turns both into a 422 that names the field, for path and
query parameters and for every string (and object key) of a JSON body, however deeply nested. It runs as an
app-wide dependency, before the route's own validation; the raw tool-call route calls :func:`check_json_body`.

The integer bounds of the columns behind parameters are here too, for routes to use in ``Query``/``Field``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any, TypeVar

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, model_validator

INT4_MAX = 2**31 - 1  # Postgres int / integer
INT8_MAX = 2**63 - 1  # Postgres bigint
_Model = TypeVar("_Model", bound=BaseModel)

# A JSON body can only carry a refused character as an escape (raw control characters are invalid JSON), so
# bodies without one of these escapes, nearly all of them, are not parsed a second time.
_ESCAPE = re.compile(rb"\\u(?:0000|[dD][89a-fA-F])")
_REFUSED = re.compile("[\x00\ud800-\udfff]")
_HINT = "remove the NUL character (\\u0000) or the unpaired surrogate; Postgres cannot store it"


def refused_character(text: str) -> str | None:
    """A description of the first character in ``text`` that Postgres cannot store, or None."""
    found = _REFUSED.search(text)
    if found is None:
        return None
    char = found.group()
    return "the NUL character (\\u0000)" if char == "\x00" else f"an unpaired surrogate (\\u{ord(char):04x})"


def _error(loc: tuple[str | int, ...], what: str, value: str) -> dict[str, Any]:
    return {"loc": loc, "msg": f"must not contain {what}: Postgres cannot store it", "type": "string_unstorable",
            "input": value[:100]}


def _walk(value: Any, loc: tuple[str | int, ...]) -> Iterator[dict[str, Any]]:
    if isinstance(value, str):
        what = refused_character(value)
        if what is not None:
            yield _error(loc, what, value)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _walk(item, (*loc, index))
    elif isinstance(value, dict):
        for key, item in value.items():
            what = refused_character(key)
            if what is not None:
                yield _error((*loc, key), what + " in a key", key)
            yield from _walk(item, (*loc, key))


def check_json_body(raw: bytes) -> None:
    """Raise a 422 (RequestValidationError) naming every field of a JSON body that Postgres could not store."""
    if not _ESCAPE.search(raw):
        return
    try:
        parsed = json.loads(raw)
    except ValueError:
        return  # not JSON: the route's own validation says so
    errors = list(_walk(parsed, ("body",)))[:10]
    if errors:
        raise RequestValidationError(errors)


_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


async def reject_unstorable(request: Request) -> None:
    """App-wide dependency: path and query parameters (names too) and JSON bodies without refused characters."""
    errors = [_error(("path", name), what, value) for name, value in request.path_params.items()
              if isinstance(value, str) and (what := refused_character(value)) is not None]
    for name, value in request.query_params.multi_items():
        what = refused_character(name + value)
        if what is not None:
            errors.append(_error(("query", name), what, value))
    if errors:
        raise RequestValidationError(errors[:10])
    # Only a body the route reads (JSON, or a console form): a raw upload (an artifact) may hold any bytes.
    if getattr(request.scope.get("route"), "body_field", None) is None:
        return
    if request.headers.get("content-type", "").startswith(_FORM_TYPES):
        form = await request.form()  # already parsed (and kept) by FastAPI; the stream is gone
        errors = [_error(("body", name), what, value) for name, value in form.multi_items()
                  if isinstance(value, str) and (what := refused_character(name + value)) is not None]
        if errors:
            raise RequestValidationError(errors[:10])
        return
    check_json_body(await request.body())


# -- cross-field rules, stated in the JSON Schema too (a model's json_schema_extra) ----------------------------------
def exactly_one_of(*names: str) -> dict[str, Any]:
    """Exactly one of these fields is given, and not as null."""
    return {"oneOf": [{"required": [name], "properties": {name: {"not": {"type": "null"}}}} for name in names]}


def one_given(first: str, second: str, message: str) -> Any:
    """A model validator (assign it in the class body): exactly one of the two fields is not None, or a 422
    with ``message``. State the rule in the schema as well, with :func:`exactly_one_of`."""
    def check(model: _Model) -> _Model:
        if (getattr(model, first) is None) == (getattr(model, second) is None):
            raise ValueError(message)
        return model

    return model_validator(mode="after")(check)


def required_when(field: str, value: str, *required: str) -> dict[str, Any]:
    """``required`` fields must be given (not null) when ``field`` is ``value``."""
    return {"if": {"required": [field], "properties": {field: {"const": value}}},
            "then": {"required": list(required), "properties": {name: {"not": {"type": "null"}} for name in required}}}
