"""How a connector call that cannot be made is reported and handled, end to end through a real ticket: a host that
does not resolve says so (not "refused"), and an MCP server whose pinned tool changed quarantines its connector
exactly as a changed manifest does."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from conftest import REPO, Platform, make_tenant, wait_done
from oshal.connectors.manifest import ConnectorManifest
from oshal.connectors.publisher_keys import generate_keypair, private_key_pem, public_key_text
from oshal.connectors.signing import sign_manifest
from oshal.connectors.trust import TrustStore
from shopfront import SHOP_SPEC

# Longer than DNS allows (255), so the resolver refuses it locally: a real resolution failure, no packet sent.
UNRESOLVABLE = ".".join(["no-such-host-" + "x" * 45] * 5) + ".invalid"
MCP_SERVER = REPO / "tests" / "external" / "mcp_demo_server.py"


def _sign_and_enable(platform: Platform, connector_id: str) -> None:
    admin = platform.client()
    manifest = ConnectorManifest.model_validate(admin.get(f"/v1/connectors/{connector_id}").json()["manifest"])
    private, public = generate_keypair()
    TrustStore.in_home(platform.home).trust("acme", public_key_text(public))
    signature = sign_manifest(manifest, private_key_pem(private), "acme")
    enabled = admin.post(f"/v1/connectors/{connector_id}/signature", json={"signature": signature.to_dict()})
    assert enabled.status_code == 200 and enabled.json()["state"] == "enabled", enabled.text


def _tool_ticket(http: Any, connector: str, operation: str, arguments: dict[str, Any]) -> dict[str, Any]:
    script = {"tool_calls": [{"connector": connector, "operation": operation, "arguments": arguments}]}
    created = http.post("/v1/tickets", json={"bot": "echo", "input": script})
    assert created.status_code == 201, created.text
    return wait_done(http, created.json()["id"], timeout=60)


def test_a_host_that_does_not_resolve_is_reported_as_such(platform: Platform) -> None:
    assert len(UNRESOLVABLE) > 255
    admin = platform.client()
    spec = {**SHOP_SPEC, "servers": [{"url": f"https://{UNRESOLVABLE}/v3"}]}
    assert admin.post("/v1/connectors/import", json={"document": spec, "id": "shop", "publisher": "acme"}
                      ).status_code == 201
    assert admin.post("/v1/connectors/shop/operations", json={"enable": ["listProducts"]}).status_code == 200
    _sign_and_enable(platform, "shop")
    ops = make_tenant(platform, "retail", role="operator")
    assert ops.http.post("/v1/connections", json={"connector": "shop", "secret": "k"}).status_code == 201
    assert ops.http.put("/v1/bots/echo/tools", json={"connector": "shop", "operation": "listProducts",
                                                      "mode": "auto"}).status_code == 200

    ticket = _tool_ticket(ops.http, "shop", "listProducts", {"limit": 5})
    assert ticket["status"] in ("failed", "dead_letter"), ticket
    assert f"could not resolve {UNRESOLVABLE}" in ticket["error"], ticket["error"]
    assert "refused" not in ticket["error"], ticket["error"]


def _drifting_server(folder: Path) -> tuple[str, Path]:
    """A stdio command whose server changes when the marker file appears: the same command, a new tool text."""
    marker = folder / "drift"
    script = folder / "server.sh"
    script.write_text(f'#!/bin/sh\nif [ -e "{marker}" ]; then exec "{sys.executable}" "{MCP_SERVER}" --drift; fi\n'
                      f'exec "{sys.executable}" "{MCP_SERVER}"\n')
    script.chmod(0o755)
    return f"sh {script}", marker


def test_mcp_tool_drift_quarantines_the_connector(platform: Platform, tmp_path: Path) -> None:
    command, marker = _drifting_server(tmp_path)
    env = {**os.environ, "OSHAL_API_URL": platform.url, "OSHAL_API_KEY": platform.admin_key,
           "OSHAL_HOME": str(platform.home)}
    imported = subprocess.run([sys.executable, "-m", "oshal.cli.main", "connector", "import-mcp", "--id", "notes",
                               "--stdio", command, "--publisher", "acme", "--json"],
                              env=env, capture_output=True, text=True, timeout=120)
    assert imported.returncode == 0, imported.stderr
    admin = platform.client()
    assert admin.post("/v1/connectors/notes/operations", json={"enable": ["add", "lookup_order"]}).status_code == 200
    _sign_and_enable(platform, "notes")
    for operation in ("add", "lookup_order"):
        assert admin.put("/v1/bots/echo/tools", json={"connector": "notes", "operation": operation,
                                                      "mode": "auto"}).status_code == 200
    before = _tool_ticket(admin, "notes", "lookup_order", {"order_id": "o-1"})
    assert before["status"] == "done" and before["result"]["tool_results"][0]["status"] == 200, before

    marker.touch()  # the server now describes lookup_order differently from what was reviewed and signed
    drifted = _tool_ticket(admin, "notes", "lookup_order", {"order_id": "o-1"})
    assert "changed since it was pinned" in str(drifted["result"] or drifted["error"]), drifted
    row = admin.get("/v1/connectors/notes").json()
    assert row["state"] == "quarantined", row
    assert "MCP tool drift" in row["quarantine_reason"] and "lookup_order" in row["quarantine_reason"]
    # every tool of the connector is now refused, even one that did not change, until it is re-signed
    unchanged = _tool_ticket(admin, "notes", "add", {"body": {"a": 2, "b": 3}})
    assert "quarantined" in str(unchanged["result"] or unchanged["error"]), unchanged
