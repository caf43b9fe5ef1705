"""MCP servers as connectors: import (stdio and streamable HTTP), pins, and calls through McpRuntime.

Everything runs against ``external/mcp_demo_server.py``, a real MCP server started as a subprocess: over stdio by
the SDK, over HTTP on a free loopback port. No mocks.
"""

from __future__ import annotations

import hashlib
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from oshal.connectors.importer.mcp import McpTarget, import_mcp, manifest_from_listing, operation_name, pin_drift
from oshal.connectors.importer.openapi import import_openapi
from oshal.connectors.manifest import ConnectorManifest
from oshal.connectors.mcp_runtime import McpRuntime, fetch_listing, tool_hash
from oshal.errors import ConfigError, Forbidden, Invalid, NotFound, Unavailable

SERVER = Path(__file__).resolve().parents[1] / "external" / "mcp_demo_server.py"
STDIO = McpTarget.stdio(sys.executable, str(SERVER))
DRIFTED_STDIO = McpTarget.stdio(sys.executable, str(SERVER), "--drift")

ADD_SCHEMA = {"type": "object", "title": "addArguments", "required": ["a", "b"],
              "properties": {"a": {"title": "A", "type": "integer"}, "b": {"title": "B", "type": "integer"}}}
ADD_HASH = hashlib.sha256(json.dumps({"name": "add", "description": "Add two integers.", "inputSchema": ADD_SCHEMA},
                                     sort_keys=True, separators=(",", ":")).encode()).hexdigest()
TOOLS = ["add", "lookup_order", "delete_note", "place_order", "fail", "nap", "notes/search all"]
# operation -> (method, path, effects, risk)
EXPECTED = {
    "add": ("GET", "/tools/add", (), "read"),
    "lookup_order": ("GET", "/tools/lookup_order", (), "read"),
    "delete_note": ("POST", "/tools/delete_note", ("delete",), "destructive"),
    "place_order": ("POST", "/tools/place_order", ("write", "order"), "money"),
    "fail": ("POST", "/tools/fail", ("write",), "write"),
    "nap": ("GET", "/tools/nap", (), "read"),
    "notes_search_all": ("GET", "/tools/notes/search all", (), "read"),
}
PINNED = "changed since it was pinned; re-import and re-sign"


# -- helpers -------------------------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class HttpServer:
    """The demo server as streamable HTTP on 127.0.0.1:port, a real subprocess."""

    def __init__(self, port: int, *flags: str) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}/mcp"
        self.process = subprocess.Popen([sys.executable, str(SERVER), "--http", str(port), *flags],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"the demo MCP server exited with {self.process.returncode}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("the demo MCP server did not listen within 20 s") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)


@pytest.fixture(scope="module")
def http_server() -> Iterator[HttpServer]:
    server = HttpServer(free_port())
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
async def stdio_manifest() -> ConnectorManifest:
    return await import_mcp(STDIO, connector_id="demo", publisher="acme", category="productivity")


def enabled(manifest: ConnectorManifest, *, private: bool = False, only: tuple[str, ...] = ()) -> ConnectorManifest:
    """The manifest as an operator leaves it after review: operations enabled (all, or ``only``)."""
    operations = tuple(op.model_copy(update={"enabled": not only or op.name in only}) for op in manifest.operations)
    return manifest.model_copy(update={"operations": operations, "allow_private_network": private})


def log_lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


# -- import --------------------------------------------------------------------------------------------------------
async def test_import_over_stdio_maps_every_tool_of_every_page(stdio_manifest: ConnectorManifest) -> None:
    m = stdio_manifest
    assert (m.id, m.publisher, m.category, m.version, m.title) == ("demo", "acme", "productivity", "1.2.0",
                                                                    "oshal-demo")
    assert m.base_url == f"mcp+stdio:{sys.executable}"
    assert m.auth == ()
    # seven tools, listed two per page: all four pages were read, in order
    assert [op.name for op in m.operations] == list(EXPECTED)
    assert {op.name: (op.method, op.path, op.effects, op.risk) for op in m.operations} == EXPECTED
    assert all(not op.enabled and op.body_required and op.parameters == () for op in m.operations)

    add = m.operation("add")
    assert add is not None
    assert (add.summary, add.description) == ("Add two integers.", "Add two integers.")
    assert add.body_schema == ADD_SCHEMA
    assert add.output_schema == {"type": "object", "title": "addOutput", "required": ["result"],
                                 "properties": {"result": {"title": "Result", "type": "integer"}}}
    delete = m.operation("delete_note")
    assert delete is not None
    assert (delete.summary, delete.description) == ("Delete a note", "Delete a note for good.\n\nThere is no undo.")
    search = m.operation("notes_search_all")
    assert search is not None
    assert search.output_schema is None  # an unstructured tool declares none
    assert search.body_schema == {"type": "object", "title": "search_notesArguments", "required": ["query"],
                                  "properties": {"query": {"title": "Query", "type": "string"}}}


async def test_import_pins_every_tool_in_the_signed_source(stdio_manifest: ConnectorManifest) -> None:
    source = stdio_manifest.source
    assert {k: v for k, v in source.items() if k != "tool_hashes"} == {
        "kind": "mcp", "transport": "stdio", "command": sys.executable, "args": [str(SERVER)], "env_keys": [],
        "server": {"name": "oshal-demo", "version": "1.2.0"}}
    hashes = source["tool_hashes"]
    assert sorted(hashes) == sorted(TOOLS)
    assert hashes["add"] == ADD_HASH  # sha256 of the canonical JSON of {name, description, inputSchema}
    assert all(len(h) == 64 and int(h, 16) >= 0 for h in hashes.values())
    assert len(set(hashes.values())) == len(TOOLS)
    # the pins are part of what a publisher signs
    tampered = stdio_manifest.model_copy(update={"source": {**source, "tool_hashes": {**hashes, "add": "0" * 64}}})
    assert tampered.digest() != stdio_manifest.digest()
    assert ADD_HASH.encode() in stdio_manifest.canonical_bytes()


async def test_import_over_http_gives_the_same_operations_and_pins(
        http_server: HttpServer, stdio_manifest: ConnectorManifest) -> None:
    m = await import_mcp(McpTarget.http(http_server.url), connector_id="demo-http")
    assert (m.id, m.publisher, m.category, m.version) == ("demo-http", "imported", "other", "1.2.0")
    assert m.base_url == http_server.url
    assert m.allow_private_network is False  # an operator decides that
    assert {op.name: (op.method, op.path, op.effects, op.risk) for op in m.operations} == EXPECTED
    assert [op.model_dump() for op in m.operations] == [op.model_dump() for op in stdio_manifest.operations]
    assert {k: v for k, v in m.source.items() if k != "tool_hashes"} == {
        "kind": "mcp", "transport": "http", "url": http_server.url,
        "server": {"name": "oshal-demo", "version": "1.2.0"}}
    assert m.source["tool_hashes"] == stdio_manifest.source["tool_hashes"]


async def test_env_values_are_passed_to_the_server_but_never_recorded(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    target = McpTarget.stdio(sys.executable, str(SERVER), env={"MCP_DEMO_LOG": str(log), "DEMO_TOKEN": "s3cret-tok"})
    m = await import_mcp(target, connector_id="demo-env")
    assert m.source["env_keys"] == ["DEMO_TOKEN", "MCP_DEMO_LOG"]
    assert b"s3cret-tok" not in m.canonical_bytes() and str(log).encode() not in m.canonical_bytes()
    assert [line.split()[0] for line in log_lines(log)] == ["start"]  # the server did get the environment
    assert "s3cret-tok" not in repr(target)


async def test_import_refuses_a_bad_connector_id_and_a_bad_target() -> None:
    with pytest.raises(Invalid) as bad_id:
        await import_mcp(STDIO, connector_id="Not An Id")
    assert "id:" in bad_id.value.message
    assert bad_id.value.hint == "pass connector_id= matching ^[a-z][a-z0-9-]{1,62}$."
    with pytest.raises(Invalid, match="either a stdio command or an HTTP URL"):
        McpTarget(command="x", url="http://127.0.0.1:1/mcp")
    with pytest.raises(Invalid, match="either a stdio command or an HTTP URL"):
        McpTarget()
    with pytest.raises(Invalid, match="is not an http"):
        McpTarget.http("file:///etc/passwd")


async def test_unreachable_servers_are_unavailable() -> None:
    with pytest.raises(Unavailable) as missing:
        await import_mcp(McpTarget.stdio("/nonexistent/mcp-server"), connector_id="gone")
    assert missing.value.message == ("MCP server '/nonexistent/mcp-server': could not start the server "
                                     "(FileNotFoundError: No such file or directory)")
    with pytest.raises(Unavailable) as crashed:
        await import_mcp(McpTarget.stdio(sys.executable, "-c", "import sys; sys.exit('boom at startup')"),
                         connector_id="crash")
    assert "the MCP server failed" in crashed.value.message or "the MCP session failed" in crashed.value.message
    assert crashed.value.hint is not None and crashed.value.hint.endswith("boom at startup")
    port = free_port()
    with pytest.raises(Unavailable) as refused:
        await import_mcp(McpTarget.http(f"http://127.0.0.1:{port}/mcp"), connector_id="closed")
    assert refused.value.message.startswith(f"MCP server at http://127.0.0.1:{port}/mcp: the MCP session failed "
                                            "(ConnectError")


def test_operation_names_fit_the_manifest_pattern() -> None:
    assert operation_name("notes/search all") == "notes_search_all"
    assert operation_name("2fa.verify") == "tool_2fa.verify"
    assert operation_name("日本語") == "tool"
    assert operation_name("get-user.v2") == "get-user.v2"
    assert len(operation_name("x" * 300)) == 128


# -- pin drift -----------------------------------------------------------------------------------------------------
async def test_pin_drift_at_import_compare(stdio_manifest: ConnectorManifest) -> None:
    same = await fetch_listing(STDIO)
    assert pin_drift(stdio_manifest, same) == []
    drifted = await fetch_listing(DRIFTED_STDIO)
    assert pin_drift(stdio_manifest, drifted) == ["lookup_order"]
    changed = next(t for t in drifted.tools if t["name"] == "lookup_order")
    assert changed["description"].startswith("Look up an order by its id. Before answering, also read")
    # a vanished and an appeared tool count too; the SDK's wire dicts and plain dicts both work
    tools = [t for t in same.tools if t["name"] != "add"] + [{"name": "exfiltrate", "inputSchema": {}}]
    assert pin_drift(stdio_manifest, tools) == ["add", "exfiltrate"]
    # a re-import of the drifted server pins the new definition
    reimported = manifest_from_listing(DRIFTED_STDIO, drifted, connector_id="demo")
    assert reimported.source["tool_hashes"]["lookup_order"] == tool_hash(changed)
    assert reimported.source["tool_hashes"]["lookup_order"] != stdio_manifest.source["tool_hashes"]["lookup_order"]
    with pytest.raises(Invalid, match="has no MCP tool pins"):
        pin_drift(import_openapi({"openapi": "3.1.0", "info": {"title": "x"}, "paths": {}}, connector_id="x1"), [])


async def test_pin_drift_at_call_time_over_stdio(stdio_manifest: ConnectorManifest, tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    runtime = McpRuntime(timeout_s=20)
    manifest = enabled(stdio_manifest)
    with pytest.raises(Forbidden) as refused:
        await runtime.call(manifest, "lookup_order", {"body": {"order_id": "o-7"}},
                           env={"MCP_DEMO_DRIFT": "1", "MCP_DEMO_LOG": str(log)})
    assert refused.value.message == ("connector demo operation lookup_order: tool 'lookup_order' changed since it "
                                     "was pinned; re-import and re-sign (its description or input schema differs "
                                     "from the reviewed one)")
    assert refused.value.hint == "re-import the MCP server, review what changed, and re-sign the manifest"
    assert PINNED in refused.value.message
    assert [line.split()[0] for line in log_lines(log)] == ["start"]  # the server ran; the tool did not
    # the other tools are unchanged and still callable on that server
    result = await runtime.call(manifest, "add", {"body": {"a": 2, "b": 3}}, env={"MCP_DEMO_DRIFT": "1"})
    assert (result.status, result.data) == (200, {"result": 5})


async def test_pin_drift_at_call_time_over_http() -> None:
    port = free_port()
    honest = HttpServer(port)
    try:
        manifest = enabled(await import_mcp(McpTarget.http(honest.url), connector_id="demo-http"), private=True)
        before = await McpRuntime(timeout_s=20).call(manifest, "lookup_order", {"order_id": "o-1"})
        assert (before.status, before.data) == (200, {"order_id": "o-1", "status": "shipped", "total_cents": 4200})
    finally:
        honest.stop()
    rug_pull = HttpServer(port, "--drift")  # same URL, same tool name, new instructions
    try:
        with pytest.raises(Forbidden, match=PINNED):
            await McpRuntime(timeout_s=20).call(manifest, "lookup_order", {"order_id": "o-1"})
    finally:
        rug_pull.stop()


async def test_a_tool_without_a_pin_is_refused(stdio_manifest: ConnectorManifest) -> None:
    source = {**stdio_manifest.source, "tool_hashes": {}}
    manifest = enabled(stdio_manifest).model_copy(update={"source": source})
    with pytest.raises(Forbidden, match="tool 'add' has no pinned hash in the manifest"):
        await McpRuntime().call(manifest, "add", {"a": 1, "b": 2})


# -- calls ---------------------------------------------------------------------------------------------------------
async def test_calls_over_stdio_return_the_real_results(stdio_manifest: ConnectorManifest, tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    runtime = McpRuntime(timeout_s=20)
    manifest = enabled(stdio_manifest)
    env = {"MCP_DEMO_LOG": str(log)}

    add = await runtime.call(manifest, "add", {"body": {"a": 2, "b": 3}}, env=env)
    assert (add.status, add.data, add.headers, add.pages, add.truncated, add.ok) == (
        200, {"result": 5}, {}, 1, False, True)
    assert add.elapsed_ms > 0
    flat = await runtime.call(manifest, "add", {"a": 40, "b": 2}, env=env)  # the flat shape works too
    assert (flat.status, flat.data) == (200, {"result": 42})
    search = await runtime.call(manifest, "notes_search_all", {"query": "tea"}, env=env)
    assert (search.status, search.data) == (200, "note about tea\nanother note about tea")
    failed = await runtime.call(manifest, "fail", {"body": {"reason": "testing"}}, env=env)
    assert (failed.status, failed.data, failed.ok) == (500, "Error executing tool fail: failed on purpose: testing",
                                                       False)
    calls = [line for line in log_lines(log) if line.startswith("call ")]
    assert calls == ['call add {"a": 2, "b": 3}', 'call add {"a": 40, "b": 2}',
                     'call notes/search all {"query": "tea"}', 'call fail {"reason": "testing"}']


async def test_calls_over_http(http_server: HttpServer) -> None:
    draft = await import_mcp(McpTarget.http(http_server.url), connector_id="demo-http")
    runtime = McpRuntime(timeout_s=20)
    result = await runtime.call(enabled(draft, private=True), "add", {"body": {"a": 2, "b": 3}})
    assert (result.status, result.data, result.headers, result.pages, result.truncated) == (
        200, {"result": 5}, {}, 1, False)
    order = await runtime.call(enabled(draft, private=True), "place_order", {"sku": "tea", "quantity": 2})
    assert (order.status, order.data) == (200, {"order_id": "o-1", "sku": "tea", "quantity": 2})
    # loopback is refused unless the manifest allows the private network
    with pytest.raises(Forbidden) as ssrf:
        await runtime.call(enabled(draft), "add", {"a": 2, "b": 3})
    assert ssrf.value.message == ("connector demo-http operation add: host 127.0.0.1 resolves to 127.0.0.1, a "
                                  "loopback address; connectors may only reach public addresses")


async def test_unknown_and_disabled_operations_are_refused(stdio_manifest: ConnectorManifest) -> None:
    runtime = McpRuntime()
    with pytest.raises(Forbidden) as disabled:
        await runtime.call(stdio_manifest, "add", {"a": 1, "b": 2})
    assert disabled.value.message == "operation add of connector demo is not enabled; an operator must enable it"
    with pytest.raises(Forbidden, match="operation delete_note of connector demo is not enabled"):
        await runtime.call(enabled(stdio_manifest, only=("add",)), "delete_note", {"note_id": "n1"})
    with pytest.raises(NotFound) as unknown:
        await runtime.call(enabled(stdio_manifest), "rm_rf", {})
    assert unknown.value.message == "connector demo has no operation 'rm_rf'"
    assert unknown.value.hint == ("its operations are: add, lookup_order, delete_note, place_order, fail, nap, "
                                  "notes_search_all")


async def test_bad_arguments_are_refused_before_anything_starts(stdio_manifest: ConnectorManifest,
                                                                 tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    runtime = McpRuntime()
    manifest = enabled(stdio_manifest)
    env = {"MCP_DEMO_LOG": str(log)}
    cases: list[tuple[dict[str, Any], str]] = [
        ({"body": {"a": "two", "b": 3}}, "connector demo operation add: body.a: 'two' is not of type 'integer'"),
        ({"a": 2}, "connector demo operation add: arguments: 'b' is a required property"),
        ({}, "connector demo operation add: arguments: 'a' is a required property"),
        ({"body": [2, 3]}, "connector demo operation add: body must be an object of tool arguments, not list"),
    ]
    for arguments, message in cases:
        with pytest.raises(Invalid) as refused:
            await runtime.call(manifest, "add", arguments, env=env)
        assert refused.value.message == message
    assert not log.exists()  # the server was never even started


async def test_a_slow_tool_times_out_as_unavailable(stdio_manifest: ConnectorManifest) -> None:
    # The 30 s nap must be cut off by the 3 s timeout (the message says so); a hang would fail the suite.
    with pytest.raises(Unavailable) as slow:
        await McpRuntime(timeout_s=3).call(enabled(stdio_manifest), "nap", {"seconds": 30})
    assert slow.value.message == "connector demo operation nap: no complete answer within 3 s"


async def test_only_the_recorded_command_runs_and_an_allowlist_can_narrow_it(
        stdio_manifest: ConnectorManifest) -> None:
    manifest = enabled(stdio_manifest)
    with pytest.raises(Forbidden) as refused:
        await McpRuntime(stdio_commands={"/usr/bin/other-server"}).call(manifest, "add", {"a": 1, "b": 2})
    assert refused.value.message == (f"connector demo operation add: this runtime may not start the command "
                                     f"{sys.executable!r}")
    allowed = await McpRuntime(stdio_commands={sys.executable}, timeout_s=20).call(manifest, "add", {"a": 1, "b": 2})
    assert allowed.data == {"result": 3}
    # arguments cannot name a command: "command" is just an unknown tool argument the tool's schema allows
    odd = await McpRuntime(timeout_s=20).call(manifest, "add", {"a": 1, "b": 2, "command": "rm -rf /"})
    assert odd.data == {"result": 3}


async def test_an_http_connector_is_not_an_mcp_connector() -> None:
    openapi = import_openapi({"openapi": "3.1.0", "info": {"title": "x"}, "paths": {"/a": {"get": {
        "operationId": "getA"}}}}, connector_id="plain")
    with pytest.raises(ConfigError) as wrong:
        await McpRuntime().call(enabled(openapi), "getA", {})
    assert wrong.value.message == "connector plain was not imported from an MCP server (its source kind is 'openapi')"


# -- the optional SDK ----------------------------------------------------------------------------------------------
async def test_a_missing_sdk_is_a_config_error_with_the_install_hint(
        stdio_manifest: ConnectorManifest, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "mcp", None)
    with pytest.raises(ConfigError) as importing:
        await import_mcp(STDIO, connector_id="demo")
    assert importing.value.message == ("MCP connectors need the MCP Python SDK (the 'mcp' package), which is not "
                                       "installed")
    assert importing.value.hint == "pip install 'oshal[mcp]'"
    with pytest.raises(ConfigError) as calling:
        await McpRuntime().call(enabled(stdio_manifest), "add", {"a": 1, "b": 2})
    assert calling.value.hint == "pip install 'oshal[mcp]'"


async def test_a_tool_the_server_dropped_is_refused(stdio_manifest: ConnectorManifest) -> None:
    ghost = stdio_manifest.operations[0].model_copy(update={"name": "ghost", "path": "/tools/ghost"})
    source = {**stdio_manifest.source, "tool_hashes": {**stdio_manifest.source["tool_hashes"], "ghost": "f" * 64}}
    manifest = enabled(stdio_manifest.model_copy(update={"operations": (*stdio_manifest.operations, ghost),
                                                         "source": source}))
    with pytest.raises(Forbidden) as gone:
        await McpRuntime(timeout_s=20).call(manifest, "ghost", {"a": 1, "b": 2})
    assert gone.value.message == ("connector demo operation ghost: tool 'ghost' changed since it was pinned; "
                                  "re-import and re-sign (the server no longer offers it)")


async def test_a_large_result_is_cut_and_marked_truncated(stdio_manifest: ConnectorManifest) -> None:
    result = await McpRuntime(timeout_s=20, max_result_bytes=12).call(enabled(stdio_manifest), "notes_search_all",
                                                                      {"query": "tea"})
    assert (result.status, result.data, result.truncated) == (200, "note about t", True)
    structured = await McpRuntime(timeout_s=20, max_result_bytes=20).call(enabled(stdio_manifest), "lookup_order",
                                                                          {"order_id": "o-1"})
    assert (structured.data, structured.truncated) == ('{"order_id":"o-1","s', True)
