"""Catalog import: an OpenAPI 3.0/3.1 or Swagger 2.0 document becomes a draft ``ConnectorManifest``.

The draft has every operation of the document, each disabled: an operator reviews it and enables what a fleet
may call. ``$ref``s are resolved into self-contained schemas (see ``_refs``). Risk is never taken from the
document: DELETE operations declare the ``delete`` effect, and a small keyword heuristic (``money_effects``)
declares money effects, which make the manifest derive ``money`` risk.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import httpx
import yaml
from pydantic import ValidationError

from oshal import jsontext
from oshal.connectors.importer._errors import errors, manifest_hint
from oshal.connectors.importer._refs import Dialect, RefResolver, plain_json
from oshal.connectors.manifest import (
    CONNECTOR_ID_PATTERN,
    AuthKind,
    AuthScheme,
    ConnectorManifest,
    Method,
    Operation,
    Parameter,
)
from oshal.errors import Invalid, TooLarge

MAX_DOCUMENT_BYTES = 20 * 1024 * 1024
HTTP_METHODS: dict[str, Method] = {method.lower(): method for method in get_args(Method)}
SUPPORTED = "OpenAPI 3.0, OpenAPI 3.1 and Swagger 2.0"
_TOO_DEEP = "no real API description nests hundreds of levels deep; check how the document was generated."
_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_OAUTH_FLOWS: tuple[tuple[str, AuthKind], ...] = (
    ("clientCredentials", "oauth2_client_credentials"),
    ("authorizationCode", "oauth2_refresh_token"),  # the broker keeps the refresh token the code flow yields
)
# Transport headers are set by the runtime (content negotiation, the credential broker), never by a caller.
_TRANSPORT_HEADERS = frozenset({"accept", "content-type", "authorization"})
# Swagger 2.0 keeps a non-body parameter's schema in the parameter object itself.
_SWAGGER_SCHEMA_KEYS = (
    "type", "format", "items", "enum", "default", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
    "minLength", "maxLength", "pattern", "minItems", "maxItems", "uniqueItems", "multipleOf",
)

# The money heuristic: a word (singular or plural) in the operationId, summary or a static path segment of a
# non-read operation, mapped to the effect it declares. It errs towards "money" on purpose: a false positive
# costs one approval, a false negative lets money move unasked. An operator can edit effects on the draft.
MONEY_WORDS: dict[str, str] = {
    "order": "order",
    "payment": "payment",
    "pay": "payment",
    "charge": "charge",
    "refund": "refund",
    "payout": "payout",
    "checkout": "purchase",
    "purchase": "purchase",
    "trade": "trade",
    "transfer": "transfer",
}


# ---------------------------------------------------------------------------------------------------- loading


def load_document(path_or_url: str, *, timeout_s: float = 30) -> tuple[dict[str, Any], str]:
    """Read a JSON or YAML API description from a file or an http(s) URL; returns (document, origin)."""
    if re.match(r"(?i)^https?://", path_or_url):
        raw, content_type = _fetch(path_or_url, timeout_s)
        origin = path_or_url
    else:
        path = Path(path_or_url).expanduser()
        if not path.is_file():
            raise Invalid(f"no API description file at {str(path)!r}", hint="pass an existing file or an http(s) URL.")
        size = path.stat().st_size
        if size > MAX_DOCUMENT_BYTES:
            raise TooLarge(f"{str(path)!r} is {size:,} bytes; the limit is {MAX_DOCUMENT_BYTES:,}")
        raw, content_type = path.read_bytes(), ""
        origin = str(path.resolve())
    return parse_document(raw, origin, json_hint=origin.lower().endswith(".json") or "json" in content_type), origin


def _fetch(url: str, timeout_s: float) -> tuple[bytes, str]:
    try:
        with httpx.stream("GET", url, timeout=timeout_s, follow_redirects=True) as response:
            if response.status_code >= 400:
                raise Invalid(
                    f"fetching {url} failed: HTTP {response.status_code} {response.reason_phrase}",
                    hint="check the URL; the server must return the document itself.",
                )
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > MAX_DOCUMENT_BYTES:
                raise TooLarge(f"{url} is {int(declared):,} bytes; the limit is {MAX_DOCUMENT_BYTES:,}")
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > MAX_DOCUMENT_BYTES:
                    raise TooLarge(f"{url} is larger than the {MAX_DOCUMENT_BYTES:,}-byte limit")
            return bytes(body), response.headers.get("content-type", "").lower()
    except httpx.HTTPError as exc:
        raise Invalid(f"could not fetch {url}: {exc}", hint="check the URL and that the host is reachable.") from exc


def parse_document(raw: bytes, origin: str, *, json_hint: bool = False) -> dict[str, Any]:
    """Parse JSON (tried first when hinted or when the text starts with '{') or YAML into a plain-JSON mapping."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise Invalid(f"{origin} is not UTF-8 text: {exc}", hint="save the document as UTF-8.") from exc
    document: Any
    if json_hint or text.lstrip().startswith("{"):
        try:
            document = json.loads(text)
        except json.JSONDecodeError as exc:
            if json_hint:
                raise Invalid(f"{origin} is not valid JSON: {exc}", hint="fix the syntax at that position.") from exc
            document = _load_yaml(text, origin)
        except RecursionError as exc:
            raise Invalid(f"{origin} is nested too deeply to parse", hint=_TOO_DEEP) from exc
    else:
        document = _load_yaml(text, origin)
    if not isinstance(document, dict):
        raise Invalid(
            f"{origin} holds a {type(document).__name__}, not an API description",
            hint=f"the top level must be a mapping with an 'openapi' or 'swagger' key ({SUPPORTED}).",
        )
    plain: dict[str, Any] = plain_json(document)  # YAML dates and other non-JSON scalars: sendable as JSON
    return plain


def _load_yaml(text: str, origin: str) -> Any:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        return yaml.load(text, Loader=loader)  # noqa: S506  # nosec B506 - a safe loader
    except yaml.YAMLError as exc:
        raise Invalid(f"{origin} is neither valid JSON nor valid YAML: {exc}", hint="fix the syntax there.") from exc
    except RecursionError as exc:
        raise Invalid(f"{origin} is nested too deeply to parse", hint=_TOO_DEEP) from exc


# --------------------------------------------------------------------------------------------------- importing


def import_openapi(
    document: Mapping[str, Any],
    *,
    connector_id: str | None = None,
    publisher: str = "imported",
    category: str = "other",
    source: str = "",
) -> ConnectorManifest:
    """Turn an OpenAPI 3.0/3.1 or Swagger 2.0 document into a draft manifest with every operation disabled."""
    if not isinstance(document, Mapping):
        raise Invalid(
            f"an API description must be a mapping, not {type(document).__name__}",
            hint=f"pass the parsed document ({SUPPORTED}).",
        )
    try:
        doc: dict[str, Any] = plain_json(document)
        kind, spec_version = _spec_kind(doc)
        paths = doc.get("paths")
        if not isinstance(paths, dict):
            raise Invalid(
                "the document has no 'paths' mapping" if paths is None else "'paths' must be a mapping",
                hint="an importable description lists its operations under 'paths'.",
            )
        nullable = kind == "swagger" or spec_version.startswith("3.0")
        ctx = _Context(RefResolver(doc), Dialect(nullable=nullable), swagger=kind == "swagger")
        info = _dict(doc.get("info"))
        title = _text(info.get("title"))
        operations = _operations(paths, ctx)
        auth, skipped = _auth_schemes(doc, ctx)
        fields: dict[str, Any] = {
            "id": connector_id if connector_id is not None else _connector_id(title),
            "version": (_text(info.get("version")) or "unversioned")[:50],
            "publisher": publisher,
            "category": category,
            "title": title,
            "description": _text(info.get("description")),
            "base_url": _swagger_base_url(doc) if kind == "swagger" else _oas3_base_url(doc),
            "auth": auth,
            "operations": operations,
            "source": {
                "kind": kind,
                "spec_version": spec_version,
                "title": title,
                "sha256": document_sha256(doc),
                "origin": source,
                "skipped_auth": skipped,
            },
        }
    except RecursionError as exc:
        raise Invalid("the document is nested too deeply to import", hint=_TOO_DEEP) from exc
    try:
        return ConnectorManifest(**fields)
    except ValidationError as exc:
        raise Invalid(f"the imported manifest is invalid: {errors(exc)}",
                      hint=manifest_hint(exc, "the document")) from exc


def document_sha256(document: Mapping[str, Any]) -> str:
    """SHA-256 of the document's canonical JSON (sorted keys, no whitespace): equal documents, equal hashes."""
    canonical = jsontext.canonical(plain_json(document), ascii_only=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _spec_kind(doc: dict[str, Any]) -> tuple[Literal["openapi", "swagger"], str]:
    if "openapi" in doc:
        version = _text(doc["openapi"])
        if re.match(r"^3\.[01](\.|$)", version):
            return "openapi", version
        raise Invalid(f"OpenAPI version {version!r} is not supported", hint=f"supported: {SUPPORTED}.")
    if "swagger" in doc:
        version = _text(doc["swagger"])
        if version in ("2", "2.0"):
            return "swagger", version
        raise Invalid(f"Swagger version {version!r} is not supported", hint=f"supported: {SUPPORTED}.")
    if "swaggerVersion" in doc:
        version = _text(doc["swaggerVersion"])
        raise Invalid(f"Swagger version {version!r} is not supported", hint=f"supported: {SUPPORTED}.")
    raise Invalid(
        "the document has neither an 'openapi' nor a 'swagger' key, so it is not an API description",
        hint=f"supported: {SUPPORTED}.",
    )


@dataclass(frozen=True)
class _Context:
    resolver: RefResolver
    dialect: Dialect
    swagger: bool


def _operations(paths: dict[str, Any], ctx: _Context) -> list[Operation]:
    operations: list[Operation] = []
    taken: set[str] = set()
    for path, raw_item in paths.items():
        item = _dict(None if path.startswith("x-") else ctx.resolver.shallow(raw_item))
        shared = _parameter_list(item.get("parameters"), ctx, where=f"path {path}")
        for method, op in item.items():
            if method not in HTTP_METHODS or not isinstance(op, dict):
                continue
            where = f"{method.upper()} {path}"
            merged = {(p["name"], p["in"]): p for p in shared}
            merged.update({(p["name"], p["in"]): p for p in _parameter_list(op.get("parameters"), ctx, where)})
            name = _unique(_operation_name(op.get("operationId"), method, path), taken)
            try:
                operations.append(_operation(name, method, path, item, op, list(merged.values()), ctx))
            except ValidationError as exc:
                raise Invalid(
                    f"operation {where} cannot be imported: {errors(exc)}", hint="fix that operation in the document."
                ) from exc
    return operations


def _parameter_list(raw: Any, ctx: _Context, where: str) -> list[dict[str, Any]]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise Invalid(f"'parameters' of {where} must be a list", hint="list parameter objects or $refs to them.")
    params: list[dict[str, Any]] = []
    for entry in raw:
        param = ctx.resolver.resolve(entry)
        if not isinstance(param, dict) or not isinstance(param.get("name"), str) or "in" not in param:
            raise Invalid(f"a parameter of {where} has no 'name' or 'in'", hint="every parameter needs both.")
        params.append(param)
    return params


def _operation(
    name: str,
    method: str,
    path: str,
    item: dict[str, Any],
    op: dict[str, Any],
    params: list[dict[str, Any]],
    ctx: _Context,
) -> Operation:
    swagger, dialect = ctx.swagger, ctx.dialect
    parameters: list[Parameter] = []
    body_schema: dict[str, Any] | None = None
    body_required = False
    form_fields: list[dict[str, Any]] = []
    for param in params:
        location = param["in"]
        if location == "body":
            body_schema, body_required = _schema(param.get("schema")), bool(param.get("required"))
        elif location == "formData":
            form_fields.append(param)
        elif location in ("path", "query", "header"):
            if location == "header" and param["name"].lower() in _TRANSPORT_HEADERS:
                continue
            schema = _swagger_param_schema(param) if swagger else _oas3_param_schema(param)
            parameters.append(
                Parameter(
                    name=param["name"],
                    location=location,
                    required=location == "path" or bool(param.get("required")),  # path parameters always are
                    description=_text(param.get("description") or schema.get("description")).strip(),
                    schema=dialect.schema(schema),
                )
            )
        # cookie parameters (and unknown locations) are skipped: the runtime sends no cookies
    if swagger and body_schema is None and form_fields:
        body_schema = {
            "type": "object",
            "properties": {field["name"]: _swagger_param_schema(field) for field in form_fields},
        }
        required = [field["name"] for field in form_fields if field.get("required")]
        if required:
            body_schema["required"] = required
        body_required = bool(required)
    if not swagger and isinstance(op.get("requestBody"), dict):
        request = ctx.resolver.resolve(op["requestBody"])
        body_schema = _schema(_pick_media(request.get("content")).get("schema"))
        body_required = bool(request.get("required"))
    http_method = HTTP_METHODS[method]
    return Operation(
        name=name,
        method=http_method,
        path=path,
        summary=_text(op.get("summary") or item.get("summary")).strip(),
        description=_text(op.get("description") or item.get("description")).strip(),
        parameters=tuple(parameters),
        body_schema=dialect.schema(body_schema),
        body_required=body_required,
        output_schema=dialect.schema(_output_schema(op.get("responses"), ctx)),
        effects=_effects(http_method, path, op),
        enabled=False,
    )


def _schema(raw: Any) -> dict[str, Any]:
    return raw if isinstance(raw, dict) else {}


def _oas3_param_schema(param: dict[str, Any]) -> dict[str, Any]:
    if isinstance(param.get("schema"), dict):
        return dict(param["schema"])
    return _schema(_pick_media(param.get("content")).get("schema"))


def _swagger_param_schema(param: dict[str, Any]) -> dict[str, Any]:
    return {key: param[key] for key in _SWAGGER_SCHEMA_KEYS if key in param}  # Dialect turns type: file to binary


def _pick_media(content: Any) -> dict[str, Any]:
    """The JSON media type of an OAS3 content map if there is one, else the first."""
    if not isinstance(content, dict) or not content:
        return {}
    ordered = sorted(content, key=lambda media: (media.split(";")[0].strip() != "application/json",
                                                  "json" not in media.lower()))
    chosen = content[ordered[0]]
    return chosen if isinstance(chosen, dict) else {}


def _output_schema(responses: Any, ctx: _Context) -> dict[str, Any] | None:
    """The schema of the first 2xx response (by status code, '2XX' last) that declares one."""
    if not isinstance(responses, dict):
        return None
    for code in sorted((c for c in responses if re.match(r"^2(\d\d|XX)$", c, re.IGNORECASE)), key=str.upper):
        response = ctx.resolver.shallow(responses[code])
        if not isinstance(response, dict):
            continue
        raw = response.get("schema") if ctx.swagger else _pick_media(response.get("content")).get("schema")
        if isinstance(raw, dict):
            schema = ctx.resolver.resolve(raw)
            if isinstance(schema, dict):
                return schema
    return None


def _words(text: str) -> list[str]:
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", text)
    return [word.lower() for word in re.split(r"[^A-Za-z0-9]+", spaced) if word]


def money_effects(method: str, path: str, operation_id: str = "", summary: str = "") -> tuple[str, ...]:
    """Money effects a non-read operation obviously has, from the words of its id, summary and path."""
    if method.upper() in _READ_METHODS:
        return ()
    static = " ".join(segment for segment in path.split("/") if "{" not in segment)
    found: set[str] = set()
    for word in _words(f"{operation_id} {summary} {static}"):
        effect = MONEY_WORDS.get(word) or (MONEY_WORDS.get(word[:-1]) if word.endswith("s") else None)
        if effect:
            found.add(effect)
    return tuple(sorted(found))


def _effects(method: str, path: str, op: dict[str, Any]) -> tuple[str, ...]:
    effects = money_effects(method, path, _text(op.get("operationId")), _text(op.get("summary")))
    return ("delete", *effects) if method == "DELETE" else effects


# ------------------------------------------------------------------------------------------------ names & ids


def _operation_name(operation_id: Any, method: str, path: str) -> str:
    return _sanitize(_text(operation_id)) or _sanitize(f"{method}_{path}") or method


def _sanitize(raw: str) -> str:
    name = re.sub(r"_+", "_", re.sub(r"[^A-Za-z0-9_.-]+", "_", raw.strip())).strip("_.-")
    if name and not re.match(r"[A-Za-z]", name):
        name = f"op_{name}"
    return name[:128].rstrip("_.-")


def _unique(name: str, taken: set[str]) -> str:
    candidate, n = name, 1
    while candidate in taken:
        n += 1
        suffix = f"_{n}"
        candidate = name[: 128 - len(suffix)] + suffix
    taken.add(candidate)
    return candidate


def _connector_id(title: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")
    if slug and not slug[0].isalpha():
        slug = f"api-{slug}"
    slug = slug[:63].rstrip("-")
    if not re.match(CONNECTOR_ID_PATTERN, slug):
        raise Invalid(
            f"cannot derive a connector id from info.title {title!r}",
            hint=f"pass connector_id= matching {CONNECTOR_ID_PATTERN}.",
        )
    return slug


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str:
    return "" if value is None else value if isinstance(value, str) else str(value)


# -------------------------------------------------------------------------------------------- servers & auth


def _oas3_base_url(doc: dict[str, Any]) -> str:
    servers = doc.get("servers")
    server = _dict(servers[0] if isinstance(servers, list) and servers else None)
    url = _text(server.get("url")) or "/"
    for var, spec in _dict(server.get("variables")).items():
        if isinstance(spec, dict) and "default" in spec:
            url = url.replace(f"{{{var}}}", _text(spec["default"]))
    return url.rstrip("/") or "/"


def _swagger_base_url(doc: dict[str, Any]) -> str:
    base_path = _text(doc.get("basePath")) or ""
    if base_path and not base_path.startswith("/"):
        base_path = f"/{base_path}"
    host = _text(doc.get("host"))
    if not host:
        return base_path.rstrip("/") or "/"
    schemes = doc.get("schemes")
    scheme = _text(schemes[0]) if isinstance(schemes, list) and schemes else "https"
    return f"{scheme}://{host}{base_path}".rstrip("/")


def _auth_schemes(doc: dict[str, Any], ctx: _Context) -> tuple[list[AuthScheme], list[str]]:
    """Supported schemes in document order, and 'name (type)' of the ones that cannot be represented."""
    if ctx.swagger:
        raw = doc.get("securityDefinitions")
    else:
        components = doc.get("components")
        raw = components.get("securitySchemes") if isinstance(components, dict) else None
    schemes: list[AuthScheme] = []
    skipped: list[str] = []
    for name, entry in _dict(raw).items():
        spec = ctx.resolver.shallow(entry)
        found = _auth_scheme(spec, ctx.swagger) if isinstance(spec, dict) else []
        if found:
            schemes.extend(found)
        else:
            kind = spec.get("type") if isinstance(spec, dict) else None
            skipped.append(f"{name} ({kind or 'unknown'})")
    return (schemes or [AuthScheme(kind="none")]), skipped


def _auth_scheme(spec: dict[str, Any], swagger: bool) -> list[AuthScheme]:
    kind = _text(spec.get("type")).lower()
    if kind == "apikey" and spec.get("in") in ("header", "query") and spec.get("name"):
        return [AuthScheme(kind="api_key", name=_text(spec["name"]), location=spec["in"])]
    if kind == "basic":  # Swagger 2.0
        return [AuthScheme(kind="basic")]
    if kind == "http":
        http = _text(spec.get("scheme")).lower()
        if http == "bearer":
            return [AuthScheme(kind="bearer")]
        if http == "basic":
            return [AuthScheme(kind="basic")]
        return []
    if kind != "oauth2":
        return []
    if swagger:  # one flow per definition: application (client credentials) or accessCode (authorization code)
        flow = {"application": "clientCredentials", "accessCode": "authorizationCode"}.get(_text(spec.get("flow")))
        flows = {flow: spec} if flow else {}
    else:
        flows = _dict(spec.get("flows"))
    schemes: list[AuthScheme] = []
    for flow_name, flow_kind in _OAUTH_FLOWS:
        flow_spec = flows.get(flow_name)
        if isinstance(flow_spec, dict) and flow_spec.get("tokenUrl"):
            scopes = tuple(_dict(flow_spec.get("scopes")))
            schemes.append(AuthScheme(kind=flow_kind, token_url=_text(flow_spec["tokenUrl"]), scopes=scopes))
    return schemes


# ------------------------------------------------------------------------------------------------------ errors


