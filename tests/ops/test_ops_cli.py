"""`oshal ops ...` in processes of their own against a running platform: runbooks, incidents, bad input."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from conftest import Platform, free_port, run_cli
from oshal_ops.api import PlatformAPI
from oshal_ops.config import OpsConfig
from oshal_ops.heal import executor_for
from oshal_ops.service import OpsService


def test_runbooks_install_list_add_and_search(platform: Platform, tmp_path: Path) -> None:
    installed = run_cli(platform, "ops", "runbook", "install")
    assert installed.returncode == 0, installed.stderr
    assert "dead-bot" in installed.stdout and "poison-message" in installed.stdout
    listed = json.loads(run_cli(platform, "ops", "runbook", "list", "--json").stdout)
    assert {d["slug"] for d in listed} >= {"dead-bot", "stuck-lane", "poison-message", "exhausted-budget",
                                           "failing-credential", "engine-down", "endpoint-down"}
    own = tmp_path / "shop-cache.md"
    own.write_text("# Shop cache is cold\n\nWarm the shop cache after a deploy: call /warm.\n")
    added = run_cli(platform, "ops", "runbook", "add", str(own), "--tags", "shop, cache")
    assert added.returncode == 0 and "Shop cache is cold" in added.stdout, added.stderr
    found = json.loads(run_cli(platform, "ops", "runbook", "search", "cache deploy", "--json").stdout)
    assert found and found[0]["slug"] == "shop-cache"
    dead = json.loads(run_cli(platform, "ops", "runbook", "search", "heartbeat", "--json").stdout)
    assert dead and dead[0]["slug"] == "dead-bot"


def test_bad_input_is_a_clear_error_with_its_exit_code(platform: Platform, tmp_path: Path) -> None:
    missing = run_cli(platform, "ops", "runbook", "add", str(tmp_path / "nope.md"))
    assert missing.returncode == 2 and "cannot read" in missing.stderr
    page = tmp_path / "x.md"
    page.write_text("# x\n")
    bad_name = run_cli(platform, "ops", "runbook", "add", str(page), "--slug", "Not A Slug")
    assert bad_name.returncode == 2 and "not a valid runbook name" in bad_name.stderr
    config = tmp_path / "ops.yaml"
    config.write_text("endpoints:\n  - name: shop\n    url: ftp://nowhere\n")
    refused = run_cli(platform, "ops", "incidents", "--config", str(config))
    assert refused.returncode == 2 and "endpoints.0.url" in refused.stderr
    unknown = run_cli(platform, "ops", "show", "00000000-0000-7000-8000-000000000000")
    assert unknown.returncode == 4 and "not found" in unknown.stderr
    config.write_text("automatic: [everything]\n")
    assert "unknown failure modes" in run_cli(platform, "ops", "incidents", "--config", str(config)).stderr


async def test_incidents_show_and_approve_an_incident_the_loop_opened(platform: Platform) -> None:
    empty = run_cli(platform, "ops", "incidents")
    assert empty.returncode == 0 and "No incidents" in empty.stdout
    async with PlatformAPI(platform.url, platform.admin_key) as api:
        config = OpsConfig.model_validate({"bots": [], "endpoints": [
            {"name": "gone", "url": f"http://127.0.0.1:{free_port()}/", "timeout_s": 1}]})
        service = OpsService(api, config, executor_for(api, config))
        await service.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            await service.tick()
            incident = service.incidents.get("check:endpoint:gone")
            if incident is not None and incident.state == "awaiting_approval":
                break
            await asyncio.sleep(0.3)
        assert incident is not None and incident.state == "awaiting_approval"
    listed = json.loads(run_cli(platform, "ops", "incidents", "--json").stdout)
    assert [t["id"] for t in listed] == [incident.ticket]
    shown = run_cli(platform, "ops", "show", incident.ticket)
    assert shown.returncode == 0, shown.stderr
    assert "approval_required" in shown.stdout and "check:endpoint:gone" in shown.stdout
    assert "RCA (endpoint_down)" in shown.stdout and "GET http://127.0.0.1" in shown.stdout
    approved = run_cli(platform, "ops", "approve", incident.ticket, "--reason", "known outage")
    assert approved.returncode == 0, approved.stderr
    again = run_cli(platform, "ops", "approve", incident.ticket)
    assert again.returncode != 0 and again.stderr  # past its gate: the platform says why
