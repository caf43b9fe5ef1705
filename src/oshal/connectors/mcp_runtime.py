"""MCP servers as connectors: calling the tools of an imported (and pinned) MCP server.

``await McpRuntime().call(manifest, "add", {"body": {"a": 2, "b": 3}})`` runs one tool of the MCP server the
manifest's ``source`` describes (see :mod:`oshal.connectors.importer.mcp`, which writes it) and returns the same
:class:`~oshal.connectors.runtime.CallResult` the HTTP runtime does.

Each call:

1. refuses an unknown operation (NotFound) or a disabled one (Forbidden), exactly as the HTTP runtime does;
2. validates the arguments against the operation's ``body_schema`` (the tool's pinned input schema, JSON Schema
   Draft 2020-12, no format checks) before anything is started or sent (Invalid, naming the path);
3. opens a **short-lived session**: for stdio it starts the command recorded in the manifest (never one taken from
   the arguments), for streamable HTTP it connects to the recorded URL after the SSRF check (loopback and private
   addresses only with ``allow_private_network``; the SDK's own HTTP client then connects, so unlike the HTTP
   runtime there is no connect-time re-check against DNS rebinding, and it follows same-origin redirects only).
   One session per call is simple and correct: no session state, no stale connection, no process to babysit
   between calls; the price is a process start (stdio) or a handshake (HTTP) per call;
4. **re-lists the tools** and refuses (:class:`ToolDrift`, a Forbidden) if the called tool's hash (name,
   description, input schema) no longer matches the pinned one, so a server that quietly rewrites a tool's
   instructions or schema after it was reviewed and signed is caught before the tool runs (the connector service
   then quarantines the connector);
5. calls the tool and returns ``CallResult(status=200, or 500 when the tool reports isError, data=<structured
   content if any, else the text content joined by newlines>, headers={}, pages=1, elapsed_ms, truncated)``.

Arguments: the operation's ``body_schema`` is the tool's input schema, so the canonical shape is the HTTP runtime's
(and the tool gateway's) ``{"body": {...tool arguments...}}``. The tool arguments may also be given flat
(``{"a": 2, "b": 3}``) whenever the mapping is not exactly one key ``body``.

Secrets for stdio servers (API tokens the server reads from its environment) are never part of the signed manifest:
the manifest records only their names (``source.env_keys``) and the caller passes the values with ``env=``. The
server process gets those plus a minimal inherited environment (PATH, HOME, ...), not this process's environment.

Everything is bounded by ``timeout_s`` (default 30 s; Unavailable when it runs out). Stopping a stdio server that
ignores its closed stdin takes the SDK a few more seconds (it escalates to SIGTERM, then SIGKILL). Failures to
start, connect or talk to the server are Unavailable, with the tail of a stdio server's stderr in the hint.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import tempfile
import time
from collections.abc import Awaitable, Callable, Collection, Iterator, Mapping
from contextlib import AsyncExitStack, nullcontext
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any, Literal, TypeVar

import httpx
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError, best_match

from oshal import __version__, jsontext
from oshal.connectors._ssrf import check_url, private_ok_hosts, url_host
from oshal.connectors._validation import describe
from oshal.connectors.manifest import ConnectorManifest, Operation
from oshal.connectors.redaction import Redactor
from oshal.connectors.runtime import CallResult
from oshal.errors import ConfigError, Forbidden, Invalid, OshalError, Unavailable
from oshal.logs import get_logger

if TYPE_CHECKING:
    from mcp import Client
    from mcp.types import CallToolResult, Tool

log = get_logger(__name__)

DEFAULT_TIMEOUT_S = 30.0
MAX_TOOL_PAGES = 100
MAX_RESULT_BYTES = 5_000_000
TOOL_PATH_PREFIX = "/tools/"
SDK_HINT = "pip install 'oshal[mcp]'"
DRIFT_HINT = "re-import the MCP server, review what changed, and re-sign the manifest"


class ToolDrift(Forbidden):
    """A pinned tool changed or vanished on its server since it was reviewed and signed: the connector's signed
    manifest no longer describes the server, so the caller quarantines the connector (as for a changed manifest)."""

    def __init__(self, message: str, *, connector_id: str, tool: str) -> None:
        super().__init__(message, hint=DRIFT_HINT)
        self.connector_id = connector_id
        self.tool = tool

_STDERR_TAIL = 600
_T = TypeVar("_T")


# ------------------------------------------------------------------------------------------------------- targets


@dataclass(frozen=True)
class McpTarget:
    """Where an MCP server is: a command to run over stdio, or a streamable HTTP endpoint URL.

    Build one with :meth:`stdio` or :meth:`http` (or the fields directly: exactly one of ``command`` and ``url``).
    ``env`` (stdio only) is passed to the server process; it is never written into a manifest, only its names.
    """

    command: str | None = None
    args: tuple[str, ...] = ()
    env: Mapping[str, str] | None = field(default=None, repr=False, hash=False)
    url: str | None = None

    def __post_init__(self) -> None:
        if (self.command is None) == (self.url is None):
            raise Invalid("an MCP target is either a stdio command or an HTTP URL, not both or neither",
                          hint="use McpTarget.stdio(command, *args) or McpTarget.http(url)")
        if self.command is not None:
            if not isinstance(self.command, str) or not self.command.strip() or "\0" in self.command:
                raise Invalid("the MCP server command must be a non-empty string", hint="name the executable to run")
            if isinstance(self.args, str) or not all(isinstance(a, str) and "\0" not in a for a in self.args):
                raise Invalid("the MCP server arguments must be a sequence of strings",
                              hint='pass them as a tuple, e.g. ("server.py", "--flag")')
            object.__setattr__(self, "args", tuple(self.args))
            if self.env is not None:
                if not all(isinstance(k, str) and k and isinstance(v, str) for k, v in self.env.items()):
                    raise Invalid("the MCP server environment must map names to strings")
                object.__setattr__(self, "env", dict(self.env))
        else:
            if self.args or self.env:
                raise Invalid("args and env apply to stdio MCP servers only, not to an HTTP URL")
            try:
                parsed = httpx.URL(str(self.url))
            except httpx.InvalidURL as e:
                raise Invalid(f"{self.url!r} is not a valid URL", hint="pass the MCP endpoint, e.g. "
                              "https://example.com/mcp") from e
            if parsed.scheme not in ("http", "https") or not parsed.host:
                raise Invalid(f"the MCP server URL {self.url!r} is not an http(s) URL",
                              hint="pass the streamable HTTP endpoint, e.g. https://example.com/mcp")

    @classmethod
    def stdio(cls, command: str, *args: str, env: Mapping[str, str] | None = None) -> McpTarget:
        return cls(command=command, args=tuple(args), env=env)

    @classmethod
    def http(cls, url: str) -> McpTarget:
        return cls(url=url)

    @property
    def transport(self) -> Literal["stdio", "http"]:
        return "stdio" if self.command is not None else "http"

    @property
    def base_url(self) -> str:
        """What a manifest's ``base_url`` says: the URL, or ``mcp+stdio:<command>``."""
        return f"mcp+stdio:{self.command}" if self.command is not None else str(self.url)

    def describe(self) -> str:
        return f"MCP server {' '.join((self.command or '', *self.args))[:200]!r}" if self.command is not None \
            else f"MCP server at {self.url}"

    def source(self) -> dict[str, Any]:
        """The transport part of a manifest's ``source`` (secrets excluded: only env names)."""
        if self.command is not None:
            return {"transport": "stdio", "command": self.command, "args": list(self.args),
                    "env_keys": sorted(self.env or {})}
        return {"transport": "http", "url": self.url}

    @classmethod
    def from_source(cls, source: Mapping[str, Any], *, env: Mapping[str, str] | None = None,
                    what: str = "this connector") -> McpTarget:
        """The target a manifest's ``source`` records; ``env`` supplies the stdio server's environment values."""
        if not isinstance(source, Mapping) or source.get("kind") != "mcp":
            raise ConfigError(f"{what} was not imported from an MCP server (its source kind is "
                              f"{source.get('kind') if isinstance(source, Mapping) else None!r})",
                              hint="call HTTP connectors with ConnectorRuntime; import MCP servers with import_mcp")
        transport = source.get("transport")
        try:
            if transport == "stdio":
                args = source.get("args") or []
                if not isinstance(args, list):
                    raise Invalid("args must be a list")
                return cls(command=source.get("command"), args=tuple(args), env=env)
            if transport == "http":
                if env:
                    raise Invalid("env= applies to stdio MCP servers only")
                return cls(url=source.get("url"))
        except Invalid as e:
            raise ConfigError(f"{what}: the manifest's MCP source is malformed ({e.message})",
                              hint="re-import the MCP server") from e
        raise ConfigError(f"{what}: unknown MCP transport {transport!r} in the manifest",
                          hint="the transport must be 'stdio' or 'http'; re-import the MCP server")


# ----------------------------------------------------------------------------------------------------- tool pins


def tool_hash(tool: Mapping[str, Any] | Any) -> str:
    """SHA-256 of the canonical JSON (sorted keys, no whitespace) of a tool's ``{name, description, inputSchema}``.

    ``tool`` is a tool in wire form (a mapping with ``inputSchema``) or the SDK's ``Tool``. A missing description
    counts as the empty string.
    """
    if isinstance(tool, Mapping):
        name, description = tool.get("name"), tool.get("description")
        schema = tool.get("inputSchema", tool.get("input_schema"))
    else:
        name, description, schema = tool.name, tool.description, tool.input_schema
    canonical = jsontext.canonical({"name": name, "description": description or "", "inputSchema": schema},
                                   ascii_only=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class McpListing:
    """What a server says about itself and its tools (each tool in wire form: name, description, inputSchema...)."""

    server_name: str
    server_version: str
    server_title: str
    instructions: str
    protocol_version: str
    tools: tuple[dict[str, Any], ...]


async def fetch_listing(target: McpTarget, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> McpListing:
    """Connect, initialize, and list every tool (all pages) of the server ``target`` names."""

    async def work(client: Client) -> McpListing:
        tools = await list_all_tools(client, target.describe())
        info = client.server_info
        return McpListing(
            server_name=info.name if info else "",
            server_version=info.version if info else "",
            server_title=(info.title or "") if info else "",
            instructions=client.instructions or "",
            protocol_version=client.protocol_version,
            tools=tuple(tool.model_dump(mode="json", by_alias=True, exclude_none=True) for tool in tools),
        )

    return await run_session(target, work, timeout_s=timeout_s, what=target.describe())


async def list_all_tools(client: Client, what: str) -> list[Tool]:
    """Every tool the server lists, following ``nextCursor`` (at most MAX_TOOL_PAGES pages)."""
    tools: list[Tool] = []
    names: set[str] = set()
    cursor: str | None = None
    seen: set[str] = set()
    for _ in range(MAX_TOOL_PAGES):
        page = await client.list_tools(cursor=cursor)
        for tool in page.tools:
            if tool.name in names:
                raise Unavailable(f"{what} lists the tool {tool.name[:80]!r} twice",
                                  hint="tool names must be unique; fix the server")
            names.add(tool.name)
            tools.append(tool)
        cursor = page.next_cursor
        if not cursor:
            return tools
        if cursor in seen:
            raise Unavailable(f"{what} repeats the tools/list cursor {cursor[:40]!r}", hint="fix the server's paging")
        seen.add(cursor)
    raise Unavailable(f"{what} lists more than {MAX_TOOL_PAGES} pages of tools",
                      hint="that is more than any connector should expose; fix the server's paging")


# ------------------------------------------------------------------------------------------------------ sessions


def require_sdk() -> None:
    """Raise ConfigError unless the optional MCP SDK is importable."""
    try:
        import mcp
        import mcp.client.stdio
        import mcp.client.streamable_http  # noqa: F401
    except ImportError as e:
        raise ConfigError("MCP connectors need the MCP Python SDK (the 'mcp' package), which is not installed",
                          hint=SDK_HINT) from e


async def run_session(target: McpTarget, work: Callable[[Client], Awaitable[_T]], *,
                      timeout_s: float = DEFAULT_TIMEOUT_S, what: str) -> _T:
    """Open one session with the server, run ``work`` on the initialized client, close it; all within timeout_s.

    Errors come out as oshal errors: those ``work`` raises as they are, everything else as Unavailable.
    """
    require_sdk()
    from mcp import Client, StdioServerParameters
    from mcp.client.stdio import stdio_client
    from mcp.client.streamable_http import streamable_http_client
    from mcp.types import Implementation

    if timeout_s <= 0:
        raise ConfigError("the MCP timeout must be positive")
    secrets = Redactor((target.env or {}).values())
    stdio = target.command is not None
    # The stdio server's stderr goes to a temporary file whose tail explains a failed start or a crash.
    with tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace") if stdio else nullcontext() as errlog:
        try:
            async with AsyncExitStack() as stack:
                if target.command is not None and errlog is not None:
                    params = StdioServerParameters(command=target.command, args=list(target.args),
                                                   env=dict(target.env) if target.env is not None else None)
                    transport: Any = stdio_client(params, errlog=errlog)
                else:
                    import httpx2

                    http = await stack.enter_async_context(
                        httpx2.AsyncClient(trust_env=False, timeout=httpx2.Timeout(timeout_s)))
                    transport = streamable_http_client(str(target.url), http_client=http)
                async with asyncio.timeout(timeout_s):
                    async with Client(transport, cache=None, read_timeout_seconds=timeout_s,
                                      client_info=Implementation(name="oshal", version=__version__)) as client:
                        return await work(client)
        except BaseException as e:
            mapped = _map_error(e, what, errlog, secrets, timeout_s)
            if mapped is None or mapped is e:
                raise
            if mapped in _leaves(e):  # raised by ``work`` (inside a task group): re-raise it as it was
                raise mapped from mapped.__cause__
            raise mapped from e


def _leaves(exc: BaseException) -> Iterator[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            yield from _leaves(inner)
    else:
        yield exc


def _map_error(exc: BaseException, what: str, errlog: IO[str] | None, secrets: Redactor,
               timeout_s: float) -> OshalError | None:
    """The oshal error for a failure inside a session (None: let it propagate, e.g. a cancellation)."""
    from mcp import MCPError
    from mcp.types import INVALID_PARAMS, REQUEST_TIMEOUT

    leaves = list(_leaves(exc))
    if any(isinstance(leaf, KeyboardInterrupt | SystemExit | asyncio.CancelledError) for leaf in leaves):
        return None
    ours = next((leaf for leaf in leaves if isinstance(leaf, OshalError)), None)
    if ours is not None:
        return ours
    leaf = leaves[0] if leaves else exc
    hint = _stderr_hint(errlog, secrets)
    if isinstance(leaf, TimeoutError) or (isinstance(leaf, MCPError) and leaf.code == REQUEST_TIMEOUT):
        return Unavailable(f"{what}: no complete answer within {timeout_s:g} s",
                           hint="retry later, or raise the runtime's timeout_s" + hint)
    if isinstance(leaf, MCPError):
        message = secrets.text(leaf.message)[:300]
        if leaf.code == INVALID_PARAMS:
            return Invalid(f"{what}: the MCP server refused the request ({message})",
                           hint="check the arguments against the tool's input schema")
        return Unavailable(f"{what}: the MCP server failed (error {leaf.code}: {message})",
                           hint="check that the server runs and speaks MCP" + hint)
    if isinstance(leaf, FileNotFoundError | PermissionError):
        return Unavailable(f"{what}: could not start the server ({type(leaf).__name__}: {leaf.strerror or leaf})",
                           hint="check that the recorded command exists and is executable on this machine")
    if isinstance(leaf, Exception):
        detail = secrets.text(str(leaf))[:300]
        return Unavailable(f"{what}: the MCP session failed ({type(leaf).__name__}: {detail})",
                           hint="check that the server is running and reachable, then retry" + hint)
    return None


def _stderr_hint(errlog: IO[str] | None, secrets: Redactor) -> str:
    if errlog is None:
        return ""
    try:
        errlog.flush()
        errlog.seek(0)
        text = errlog.read()
    except (OSError, ValueError):
        return ""
    tail = secrets.text(" ".join(text.split()))[-_STDERR_TAIL:]  # whitespace collapsed: logs are boxy
    return f"; the server's stderr ends with: {tail}" if tail else ""


# ------------------------------------------------------------------------------------------------------- runtime


@dataclass
class _Refused:
    reason: str


class McpRuntime:
    """Calls tools of MCP servers described by imported manifests; one short-lived session per call.

    ``stdio_commands``, when given, is the only set of commands a stdio manifest may make this runtime start
    (exact strings as recorded); ``None`` allows any command a manifest records.
    """

    def __init__(self, *, timeout_s: float = DEFAULT_TIMEOUT_S, max_result_bytes: int = MAX_RESULT_BYTES,
                 stdio_commands: Collection[str] | None = None) -> None:
        if timeout_s <= 0 or max_result_bytes < 1:
            raise ConfigError("MCP runtime limits must be positive (timeout_s, max_result_bytes)")
        self.timeout_s = timeout_s
        self.max_result_bytes = max_result_bytes
        self.stdio_commands = frozenset(stdio_commands) if stdio_commands is not None else None

    async def call(self, manifest: ConnectorManifest, operation_name: str, arguments: Mapping[str, Any], *,
                   env: Mapping[str, str] | None = None) -> CallResult:
        started = time.monotonic()
        op = manifest.callable_operation(operation_name)
        what = f"connector {manifest.id} operation {op.name}"
        target = McpTarget.from_source(manifest.source, env=env, what=f"connector {manifest.id}")
        tool_name = _tool_name(op, what)
        pins = manifest.source.get("tool_hashes")
        pinned = pins.get(tool_name) if isinstance(pins, Mapping) else None
        if not isinstance(pinned, str):
            raise Forbidden(f"{what}: tool {tool_name[:80]!r} has no pinned hash in the manifest",
                            hint=DRIFT_HINT)
        tool_arguments = _arguments(op, arguments, what)
        if target.command is not None and self.stdio_commands is not None \
                and target.command not in self.stdio_commands:
            raise Forbidden(f"{what}: this runtime may not start the command {target.command[:200]!r}",
                            hint="add it to the runtime's stdio_commands if this server is trusted here")

        async def work(client: Client) -> CallToolResult | _Refused:
            current = next((t for t in await list_all_tools(client, what) if t.name == tool_name), None)
            if current is None:
                return _Refused(f"{what}: tool {tool_name[:80]!r} changed since it was pinned; re-import and "
                                "re-sign (the server no longer offers it)")
            if tool_hash(current) != pinned:
                return _Refused(f"{what}: tool {tool_name[:80]!r} changed since it was pinned; re-import and "
                                "re-sign (its description or input schema differs from the reviewed one)")
            return await client.call_tool(tool_name, tool_arguments, read_timeout_seconds=self.timeout_s)

        reset = None
        if target.url is not None:
            url = httpx.URL(target.url)
            reset = private_ok_hosts.set(frozenset({url_host(url)}) if manifest.allow_private_network
                                         else frozenset())
        try:
            if target.url is not None:
                await check_url(httpx.URL(target.url), what=what)
            outcome = await run_session(target, work, timeout_s=self.timeout_s, what=what)
        finally:
            if reset is not None:
                private_ok_hosts.reset(reset)
        if isinstance(outcome, _Refused):
            log.warning("connector.mcp.pin_mismatch", connector=manifest.id, operation=op.name, tool=tool_name)
            raise ToolDrift(outcome.reason, connector_id=manifest.id, tool=tool_name)
        # The server's own credentials (its env values) never come back in a result, in any encoding.
        data, truncated = self._limit(Redactor((target.env or {}).values()).value(_result_data(outcome)))
        result = CallResult(status=500 if outcome.is_error else 200, data=data, headers={}, pages=1,
                            elapsed_ms=(time.monotonic() - started) * 1000, truncated=truncated)
        log.info("connector.call", connector=manifest.id, operation=op.name, status=result.status, pages=1,
                 truncated=truncated, elapsed_ms=round(result.elapsed_ms, 1))
        return result

    def _limit(self, data: Any) -> tuple[Any, bool]:
        text = data if isinstance(data, str) else jsontext.compact(data, ascii_only=False)
        if len(text.encode()) <= self.max_result_bytes:
            return data, False
        return text.encode()[: self.max_result_bytes].decode("utf-8", "ignore"), True


def _tool_name(op: Operation, what: str) -> str:
    if not op.path.startswith(TOOL_PATH_PREFIX) or len(op.path) == len(TOOL_PATH_PREFIX):
        raise ConfigError(f"{what}: the operation path {op.path[:100]!r} does not name an MCP tool",
                          hint=f"MCP operations have the path {TOOL_PATH_PREFIX}<tool name>; re-import the server")
    return op.path[len(TOOL_PATH_PREFIX):]


def _arguments(op: Operation, arguments: Mapping[str, Any], what: str) -> dict[str, Any]:
    """The tool arguments: ``{"body": {...}}`` (the HTTP runtime's shape) or the arguments flat, validated."""
    if not isinstance(arguments, Mapping):
        raise Invalid(f"{what}: arguments must be an object")
    wrapped = set(arguments) == {"body"}
    label = "body" if wrapped else "arguments"
    value = arguments["body"] if wrapped else dict(arguments)
    if value is None:
        value = {}
    if not isinstance(value, Mapping):
        raise Invalid(f"{what}: {label} must be an object of tool arguments, not {type(value).__name__}",
                      hint='pass {"body": {...tool arguments...}} or the tool arguments themselves')
    if op.body_schema:
        try:
            Draft202012Validator.check_schema(op.body_schema)
        except SchemaError as e:
            raise ConfigError(f"{what}: the tool's input schema is invalid ({e.message[:200]})",
                              hint="fix the connector manifest") from e
        error = best_match(Draft202012Validator(op.body_schema).iter_errors(dict(value)))
        if error is not None:
            raise Invalid(f"{what}: {label}{error.json_path[1:]}: {describe(error)}",
                          hint="fix the value and call again")
    try:
        return dict(json.loads(json.dumps(dict(value), allow_nan=False)))
    except (TypeError, ValueError) as e:
        raise Invalid(f"{what}: {label} is not JSON-serialisable ({type(e).__name__})") from e


def _result_data(result: CallToolResult) -> Any:
    """The structured content when there is any, else the text of the content blocks joined by newlines."""
    from mcp.types import EmbeddedResource, TextContent, TextResourceContents

    if result.structured_content is not None:
        return result.structured_content
    parts: list[str] = []
    for block in result.content:
        if isinstance(block, TextContent):
            parts.append(block.text)
        elif isinstance(block, EmbeddedResource) and isinstance(block.resource, TextResourceContents):
            parts.append(block.resource.text)
        else:
            parts.append(f"[{block.type} content omitted]")
    return "\n".join(parts) if parts else None
