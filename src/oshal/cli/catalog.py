"""Connector catalog commands that talk to the API: import, list, show, enable, configure, publish a signature;
plus tool policies, approvals and connections."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Column, Table

from oshal.cli.client import JsonFlag, WideFlag, cut, emit_json, out, print_rows, print_table, report, request
from oshal.cli.connectors import connector_app
from oshal.connectors.importer import load_document
from oshal.errors import Invalid

approval_app = typer.Typer(name="approval", no_args_is_help=True, help="Approve or reject `ask` tool calls.")
connection_app = typer.Typer(name="connection", no_args_is_help=True, help="Tenant credentials for connectors.")


_PUBLISHER_HELP = ("Publisher recorded in the manifest: whose key will sign it (a signature by any other publisher "
                   "is refused).")


def _show(row: dict[str, Any], as_json: bool) -> None:
    if as_json:
        emit_json(row)
        return
    why = row.get("quarantine_reason") or row.get("disabled_reason")
    state = row["state"] + (f" ({why})" if why else "")
    out.print(f"[bold]{escape(row['id'])}[/] {escape(row['version'])} by {escape(row['publisher'])} — "
              f"{row['category']}, {escape(state)}, {row['operations']} operations "
              f"({row['enabled_operations']} enabled)")


@connector_app.command("import")
def import_connector(
    source: Annotated[str, typer.Argument(metavar="PATH_OR_URL", help="OpenAPI 3.x / Swagger 2.0, JSON or YAML.")],
    connector_id: Annotated[str | None, typer.Option("--id", help="Connector id (default: from the title).")] = None,
    publisher: Annotated[str, typer.Option(help=_PUBLISHER_HELP)] = "imported",
    category: Annotated[str, typer.Option(help="commerce, travel, media, finance, ops, ...")] = "other",
    replace: Annotated[bool, typer.Option(help="Turn an existing connector back into a draft.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Import an API description as a draft connector (every operation disabled) and print its id."""
    document, origin = load_document(source)
    row = request("POST", "/v1/connectors/import", {"document": document, "origin": origin, "id": connector_id,
                                                    "publisher": publisher, "category": category, "replace": replace})
    _show(row, as_json)


@connector_app.command("import-mcp")
def import_mcp_server(
    connector_id: Annotated[str, typer.Option("--id", help="Connector id.")],
    url: Annotated[str | None, typer.Option(help="Streamable HTTP endpoint of the MCP server.")] = None,
    stdio: Annotated[str | None, typer.Option(help="Command line that starts the server on stdio.")] = None,
    publisher: Annotated[str, typer.Option(help=_PUBLISHER_HELP)] = "imported",
    category: Annotated[str, typer.Option(help="commerce, travel, media, finance, ops, ...")] = "other",
    replace: Annotated[bool, typer.Option(help="Turn an existing connector back into a draft.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Import an MCP server's tools as a draft connector, each tool pinned by the hash of its definition."""
    import asyncio
    import shlex

    from oshal.connectors.importer.mcp import import_mcp
    from oshal.connectors.mcp_runtime import McpTarget

    if (url is None) == (stdio is None):
        raise Invalid("give exactly one of --url or --stdio")
    target = McpTarget.http(url) if url else McpTarget.stdio(*shlex.split(stdio or ""))
    manifest = asyncio.run(import_mcp(target, connector_id=connector_id, publisher=publisher, category=category))
    row = request("POST", "/v1/connectors", {"manifest": manifest.model_dump(mode="json", by_alias=True),
                                             "replace": replace})
    _show(row, as_json)


@connector_app.command("list")
def list_connectors(wide: WideFlag = False, as_json: JsonFlag = False) -> None:
    """The catalog: every connector with its state and operation counts."""
    table = Table("id", "version", "publisher", "category", "state", "ops", "enabled", title="connectors")
    print_rows(request("GET", "/v1/connectors"), table, lambda r: (
        escape(r["id"]), escape(r["version"]), escape(r["publisher"]), r["category"], r["state"],
        str(r["operations"]), str(r["enabled_operations"])), wide=wide, as_json=as_json)


@connector_app.command("show")
def show_connector(
    connector_id: str,
    manifest: Annotated[bool, typer.Option(
        "--manifest", help="Print only the manifest as JSON: the file `oshal connector sign` takes.")] = False,
    wide: WideFlag = False,
    as_json: JsonFlag = False,
) -> None:
    """One connector with its operations and their risk (--manifest: its exact current manifest, to sign)."""
    row = request("GET", f"/v1/connectors/{connector_id}")
    if manifest:
        emit_json(row["manifest"])
        return
    if as_json:
        emit_json(row)
        return
    _show(row, False)
    table = Table("operation", "method", "path", "risk", "enabled")
    for op in row["manifest"]["operations"]:
        table.add_row(escape(op["name"]), op["method"], escape(op["path"]), op["risk"], "yes" if op["enabled"] else "")
    print_table(table, wide)


@connector_app.command("enable")
def enable_operations(
    connector_id: str,
    operations: Annotated[list[str], typer.Argument(help="Operation names to enable.")],
    disable: Annotated[bool, typer.Option("--disable", help="Disable them instead.")] = False,
    allow_risky: Annotated[bool, typer.Option(help="Required for write, money or destructive operations.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Enable (or disable) operations; the connector returns to draft until its new manifest is signed."""
    body = {"disable" if disable else "enable": operations, "allow_risky": allow_risky}
    _show(request("POST", f"/v1/connectors/{connector_id}/operations", body), as_json)


@connector_app.command("disable")
def disable_connector(connector_id: str, reason: Annotated[str, typer.Option(help="Why; shown and audited.")],
                      as_json: JsonFlag = False) -> None:
    """Take an enabled connector out of service: every call through it is refused until `restore`."""
    _show(request("POST", f"/v1/connectors/{connector_id}/disable", {"reason": reason}), as_json)


@connector_app.command("restore")
def restore_connector(connector_id: str, as_json: JsonFlag = False) -> None:
    """Put a disabled connector back in service (its signature is checked again; a broken one is quarantined)."""
    _show(request("POST", f"/v1/connectors/{connector_id}/enable"), as_json)


@connector_app.command("publish")
def publish_signature(
    connector_id: str,
    signature: Annotated[Path, typer.Argument(help="The .sig.json from `oshal connector sign`.")],
    as_json: JsonFlag = False,
) -> None:
    """Enable a connector with a trusted publisher's signature over its current manifest."""
    try:
        body = json.loads(signature.read_text())
    except (OSError, ValueError) as e:
        raise Invalid(f"cannot read signature {signature}: {e}") from e
    _show(request("POST", f"/v1/connectors/{connector_id}/signature", {"signature": body}), as_json)


@connector_app.command("policy")
def set_policy(
    bot: str, connector_id: str, operation: str,
    mode: Annotated[str, typer.Argument(help="auto, ask or off")],
    as_json: JsonFlag = False,
) -> None:
    """Set a bot's tool policy for one operation (default off; ask needs an approval per call)."""
    row = request("PUT", f"/v1/bots/{bot}/tools", {"connector": connector_id, "operation": operation, "mode": mode})
    report(row, as_json, f"{escape(bot)}: {escape(connector_id)}.{escape(operation)} = {mode}")


@approval_app.command("list")
def list_approvals(
    status: Annotated[str | None, typer.Option(help="pending, approved or rejected")] = "pending",
    ticket: Annotated[str | None, typer.Option("--ticket", help="Only this ticket's calls.")] = None,
    quiet: Annotated[bool, typer.Option(
        "--quiet", "-q", help="Print only the ids, one per line: APPROVAL=$(oshal approval list --ticket T -q).")]
        = False,
    wide: WideFlag = False,
    as_json: JsonFlag = False,
) -> None:
    """Approval requests for `ask` tool calls."""
    rows = request("GET", "/v1/approvals", status=status)
    if ticket is not None:
        rows = [r for r in rows if str(r["ticket_id"]) == ticket]
    if quiet:
        sys.stdout.write("".join(f"{r['id']}\n" for r in rows))
        return
    table = Table(Column("id", no_wrap=True), Column("ticket", no_wrap=True), "bot", "call", "arguments", "status")
    print_rows(rows, table, lambda r: (
        str(r["id"]), str(r["ticket_id"]), r["bot"], f"{r['connector_id']}.{r['operation']}",
        escape(cut(json.dumps(r["arguments"]), 80, wide)), r["status"]), wide=wide, as_json=as_json)


@approval_app.command("approve")
def approve(approval_id: str, as_json: JsonFlag = False) -> None:
    """Approve one pending tool call (its ticket can then be requeued)."""
    report(request("POST", f"/v1/approvals/{approval_id}/approve", {}), as_json, f"approved {approval_id}")


@approval_app.command("reject")
def reject(approval_id: str, reason: Annotated[str, typer.Option(help="Why, for the record.")],
           as_json: JsonFlag = False) -> None:
    """Reject one pending tool call, with a reason."""
    report(request("POST", f"/v1/approvals/{approval_id}/reject", {"reason": reason}), as_json,
           f"rejected {approval_id}")


@connection_app.command("add")
def add_connection(
    connector_id: str,
    secret_file: Annotated[Path, typer.Option("--secret-file", help="File holding the API key or token "
                                              "(read once; keeps it out of shell history).")],
    client_id: Annotated[str | None, typer.Option(help="OAuth2 client id.")] = None,
    expires_at: Annotated[str | None, typer.Option(
        "--expires-at", help="When the credential stops working (ISO 8601 with zone); calls after it fail closed.")]
        = None,
    user: Annotated[str | None, typer.Option(
        "--user", help="Store it for one user (an API key id); their tickets use it instead of the tenant's.")]
        = None,
    as_json: JsonFlag = False,
) -> None:
    """Store this tenant's (or one user's) credential for a connector, encrypted at rest. Never shown again."""
    try:
        secret = secret_file.read_text().strip()
    except OSError as e:
        raise Invalid(f"cannot read {secret_file}: {e.strerror}") from e
    body = {"connector": connector_id, "secret": secret, "client_id": client_id, "expires_at": expires_at,
            "user": user}
    report(request("POST", "/v1/connections", body), as_json, f"connected {escape(connector_id)}")


@connection_app.command("list")
def list_connections(wide: WideFlag = False, as_json: JsonFlag = False) -> None:
    """Connections with credential health (never the credential)."""
    table = Table("connector", "health", "expires", "user credentials", "last success", "last error", "error")
    print_rows(request("GET", "/v1/connections"), table, lambda r: (
        r["connector_id"], r["health"], str(r["expires_at"] or "-"), str(r["user_credentials"]),
        str(r["last_success_at"] or "-"), str(r["last_error_at"] or "-"), escape(r["last_error"] or "")),
        wide=wide, as_json=as_json)


secrets_app = typer.Typer(name="secrets", no_args_is_help=True, help="The encrypted credential store.")


@secrets_app.command("rotate")
def rotate_secrets(as_json: JsonFlag = False) -> None:
    """Re-wrap every tenant's data key under the current key-encryption key; prints counts, never keys."""
    counts = request("POST", "/v1/secrets/rotate", {})
    report(counts, as_json, f"{counts['data_keys_rewrapped']} data keys re-wrapped, {counts['data_keys_current']} "
                            f"already current, {counts['tenants']} tenants (KEK {counts['kek_id']})")


def register(app: typer.Typer) -> None:
    app.add_typer(approval_app)
    app.add_typer(connection_app)
    app.add_typer(secrets_app)
