"""Arguments -> HTTP request: parameters by location, JSON Schema checks, reserved headers, the JSON body.

Pure: no I/O. The connector runtime authenticates, sends, retries and pages the request built here.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError, best_match

from oshal import jsontext
from oshal.connectors._validation import describe
from oshal.connectors.manifest import ConnectorManifest, Operation, Parameter
from oshal.errors import ConfigError, Invalid

_RESERVED_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "host", "content-length",
                               "transfer-encoding", "connection", "te", "upgrade"})
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_SECTIONS = ("path", "query", "header")
_BODYLESS = frozenset({"GET", "HEAD", "OPTIONS"})


def _parameters(op: Operation) -> list[tuple[Parameter, bool]]:
    """Each parameter with whether it is required; path placeholders are always required, declared or not."""
    template = set(op.path_parameters())
    params = [(p, p.required or (p.location == "path" and p.name in template)) for p in op.parameters]
    declared = {p.name for p in op.parameters if p.location == "path"}
    params += [(Parameter(name=n, location="path", required=True), True) for n in sorted(template - declared)]
    return params


def build_request(manifest: ConnectorManifest, op: Operation, arguments: Mapping[str, Any]
                  ) -> tuple[str, list[tuple[str, str]], dict[str, str], bytes | None]:
    """(path, query, headers, body) for a call, every argument checked against the operation's schemas.

    Arguments are flat ({"id": 3, "limit": 5, "body": {...}}) or structured by location
    ({"path": {...}, "query": {...}, "header": {...}, "body": ...}); no argument may set the auth headers.
    """
    what = f"connector {manifest.id} operation {op.name}"
    if not isinstance(arguments, Mapping):
        raise Invalid(f"{what}: arguments must be an object")
    params = _parameters(op)
    by_key: dict[tuple[str, str], tuple[Parameter, bool]] = {(p.location, p.name): (p, r) for p, r in params}
    accepted = ", ".join(f"{p.name} ({p.location}{', required' if r else ''})" for p, r in params[:30])
    accepted = (accepted + ", body" if op.body_schema is not None or op.method not in _BODYLESS else accepted)
    keys = set(arguments)
    sections = keys & set(_SECTIONS)
    structured = bool(sections) and keys <= {*_SECTIONS, "body"} and not (sections & {p.name for p, _ in params})
    given: dict[tuple[str, str], Any] = {}
    if structured:
        for section in _SECTIONS:
            group = arguments.get(section) or {}
            if not isinstance(group, Mapping):
                raise Invalid(f"{what}: arguments.{section} must be an object of parameter names to values")
            for name, value in group.items():
                if (section, name) not in by_key:
                    raise Invalid(f"{what} has no {section} parameter {str(name)[:60]!r}",
                                  hint=f"it takes: {accepted or '(nothing)'}")
                given[(section, name)] = value
    else:
        for name, value in arguments.items():
            if name == "body":
                continue
            matches = [p for p, _ in params if p.name == name]
            if not matches:
                raise Invalid(f"{what} has no parameter {str(name)[:60]!r}",
                              hint=f"it takes: {accepted or '(nothing)'}")
            if len(matches) > 1:
                raise Invalid(f"{what}: parameter {name!r} exists in more than one location",
                              hint='use the structured form {"path": {...}, "query": {...}, "header": {...}}')
            given[(matches[0].location, name)] = value
    given = {k: v for k, v in given.items() if v is not None}
    body = arguments.get("body")
    missing = [p.name for p, required in params if required and (p.location, p.name) not in given]
    if op.body_required and body is None:
        missing.append("body")
    if missing:
        raise Invalid(f"{what} is missing required argument(s): {', '.join(missing)}",
                      hint=f"it takes: {accepted}")
    reserved_headers = _RESERVED_HEADERS | {s.name.lower() for s in manifest.auth
                                            if s.kind == "api_key" and s.location == "header" and s.name}
    reserved_query = {s.name for s in manifest.auth if s.kind == "api_key" and s.location == "query"}
    path_values: dict[str, str] = {}
    query: list[tuple[str, str]] = []
    headers = {"Accept": "application/json", "User-Agent": "oshal-connector"}
    for (location, name), value in given.items():
        param, _ = by_key[(location, name)]
        _validate(param.json_schema, value, name, what)
        if location == "path":
            text = _scalar(value, name, what)
            if text in ("", ".", ".."):
                raise Invalid(f"{what}: path parameter {name} cannot be empty, '.' or '..'")
            path_values[name] = quote(text, safe="")
        elif location == "query":
            if name in reserved_query:
                raise Invalid(f"{what}: argument {name!r} would set the query parameter the connector's auth uses")
            values = value if isinstance(value, list) else [value]
            query += [(name, _scalar(v, name, what)) for v in values]
        else:
            if name.lower() in reserved_headers or not _HEADER_NAME.fullmatch(name):
                raise Invalid(f"{what}: argument {name[:60]!r} may not set that header; Authorization, Cookie, Host, "
                              "hop-by-hop headers and the auth scheme's header are set by the runtime only")
            text = _scalar(value, name, what)
            if any(c in text for c in "\r\n\0"):
                raise Invalid(f"{what}: header parameter {name} contains a line break or NUL")
            for existing in [k for k in headers if k.lower() == name.lower()]:
                del headers[existing]
            headers[name] = text
    content = None
    if body is not None:
        if op.body_schema is None and op.method in _BODYLESS:
            raise Invalid(f"{what} takes no body ({op.method})")
        if op.body_schema is not None:
            _validate(op.body_schema, body, "body", what)
        try:
            content = json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()
        except (TypeError, ValueError) as e:
            raise Invalid(f"{what}: body is not JSON-serialisable ({type(e).__name__})") from e
        headers["Content-Type"] = "application/json"
    path = re.sub(r"{([^{}]+)}", lambda m: path_values[m.group(1)], op.path)
    return path, query, headers, content


def _scalar(value: Any, name: str, what: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    raise Invalid(f"{what}: parameter {name} must be a string, number or boolean here")


@functools.lru_cache(maxsize=2048)
def _validator(schema_json: str) -> Draft202012Validator | SchemaError:
    """A checked validator per distinct schema (checking a schema against the metaschema costs more than a
    call's own validation, so it is done once, not per call)."""
    schema = json.loads(schema_json)
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as e:
        return e
    return Draft202012Validator(schema)


def _validate(schema: Mapping[str, Any], value: Any, label: str, what: str) -> None:
    if not schema:
        return
    validator = _validator(jsontext.canonical(schema))
    if isinstance(validator, SchemaError):
        raise ConfigError(f"{what}: the JSON schema for {label} is invalid ({validator.message[:200]})",
                          hint="fix the connector manifest")
    error = best_match(validator.iter_errors(value))
    if error is not None:
        raise Invalid(f"{what}: {label}{error.json_path[1:]}: {describe(error)}",
                      hint="fix the value and call again")
