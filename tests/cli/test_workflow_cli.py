"""``oshal workflow`` and the ticket lifecycle commands, as a user runs them against the live platform."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

from cli.test_cli import run, run_json
from conftest import Platform


def test_workflow_list_and_show(platform: Platform) -> None:
    listed = run_json(platform, "workflow", "list", "--json")
    assert {(w["name"], w["version"]) for w in listed} >= {("build", 1), ("ticket", 1), ("video", 1)}
    shown = run(platform, "workflow", "show", "video")
    assert shown.returncode == 0, shown.stderr
    assert "script_gate" in shown.stdout and "approval" in shown.stdout
    missing = run(platform, "workflow", "show", "nope")
    assert missing.returncode != 0 and "no workflow nope" in missing.stderr


def test_workflow_generate_previews_and_publishes_only_when_confirmed(platform: Platform) -> None:
    description = "summarize the report, then review it and revise at most 2 rounds, then get approval"
    preview = run(platform, "workflow", "generate", description, "--name", "report", stdin="y\n")
    assert preview.returncode == 0, preview.stderr  # no terminal: no prompt (the "y" on stdin is never read)
    assert "loop back" in preview.stdout and "(new workflow)" in preview.stdout
    assert "not published: no terminal to confirm on; run it again with --yes" in preview.stderr
    assert "report" not in {w["name"] for w in run_json(platform, "workflow", "list", "--json")}
    published = run_json(platform, "workflow", "generate", description, "--name", "report", "--yes", "--json")
    assert published["published"] is True and published["version"] == 1
    assert "report" in {w["name"] for w in run_json(platform, "workflow", "list", "--json")}


def _on_a_terminal(platform: Platform, *args: str, answer: bytes) -> subprocess.CompletedProcess[str]:
    """The CLI with a pseudo-terminal as stdin, ``answer`` typed into it."""
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("OSHAL_")},
           "OSHAL_API_URL": platform.url, "OSHAL_API_KEY": platform.admin_key, "COLUMNS": "200"}
    controller, terminal = pty.openpty()
    try:
        proc = subprocess.Popen([sys.executable, "-m", "oshal.cli.main", *args], stdin=terminal,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        os.write(controller, answer)  # buffered by the terminal until the prompt reads it
        out, err = proc.communicate(timeout=120)
    finally:
        os.close(terminal)
        os.close(controller)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_workflow_generate_asks_on_a_terminal(platform: Platform) -> None:
    description = "summarize the report, then review it and revise at most 2 rounds, then get approval"
    declined = _on_a_terminal(platform, "workflow", "generate", description, "--name", "asked", answer=b"n\n")
    assert declined.returncode == 0, declined.stderr
    assert "publish as ticket type asked?" in declined.stdout and "not published" in declined.stderr
    assert "asked" not in {w["name"] for w in run_json(platform, "workflow", "list", "--json")}
    accepted = _on_a_terminal(platform, "workflow", "generate", description, "--name", "asked", answer=b"y\n")
    assert accepted.returncode == 0, accepted.stderr
    assert "published asked version 1" in accepted.stdout
    assert "asked" in {w["name"] for w in run_json(platform, "workflow", "list", "--json")}


def test_an_invalid_generated_workflow_is_never_published(platform: Platform) -> None:
    refused = run(platform, "workflow", "generate", "1234 5678 !!!", "--yes")
    assert refused.returncode != 0 and "does not validate" in refused.stderr
    with platform.client() as api:
        body = api.post("/v1/workflows/generate", json={"description": "??? !!! ...", "publish": True}).json()
    assert body["valid"] is False and body["published"] is False


def test_workflow_publish_from_a_file_bumps_the_version(platform: Platform, tmp_path: Path) -> None:
    path = tmp_path / "hello.yaml"
    path.write_text("name: hello\nsteps:\n  - {id: say, kind: task, bot: echo}\n")
    first = run_json(platform, "workflow", "publish", str(path), "--json")
    path.write_text("name: hello\nsteps:\n  - {id: say, kind: task, bot: echo, input: {hi: 1}}\n")
    second = run_json(platform, "workflow", "publish", str(path), "--json")
    assert (first["version"], second["version"]) == (1, 2)
    same = run_json(platform, "workflow", "publish", str(path), "--json")
    assert same["published"] is False and same["version"] == 2
    path.write_text("name: hello\nsteps:\n  - {id: say, kind: task, bot: ghost}\n")
    unknown = run(platform, "workflow", "publish", str(path))
    assert unknown.returncode != 0 and "unknown bot 'ghost'" in unknown.stderr


def test_typed_tickets_through_the_cli_with_approval_and_timeline(platform: Platform) -> None:
    waited = run(platform, "ticket", "submit", "--type", "video", '{"topic": "cli demo"}', "--wait", "20", "--json")
    ticket = json.loads(waited.stdout)
    assert ticket["status"] == "approval_required" and ticket["phase"] == "script_gate"
    refused = run(platform, "ticket", "resume", ticket["id"])
    assert refused.returncode != 0 and "approve" in refused.stderr
    rejected = run_json(platform, "ticket", "reject", ticket["id"], "--reason", "off brand", "--json")
    assert rejected["status"] == "cancelled"
    timeline = run_json(platform, "ticket", "timeline", ticket["id"], "--json")
    assert [e["to_status"] for e in timeline["events"]][-1] == "cancelled"
    assert timeline["events"][-1]["reason"] == "off brand"
    table = run(platform, "ticket", "timeline", ticket["id"])
    assert table.returncode == 0 and "approval_required" in table.stdout
    both = run(platform, "ticket", "submit", "echo", "{}", "--type", "video")
    assert both.returncode != 0 and "exactly one" in both.stderr


def test_a_bot_that_answers_without_a_definition_publishes_nothing(platform: Platform) -> None:
    with platform.client() as api:
        refused = api.post("/v1/workflows/generate",
                           json={"description": "triage then review", "bot": "echo", "publish": True}).json()
        unknown = api.post("/v1/workflows/generate", json={"description": "triage then review", "bot": "ghost"})
    assert refused["valid"] is False and refused["published"] is False
    assert "answered without a JSON definition" in refused["error"]
    assert unknown.status_code == 422 and "unknown bot 'ghost'" in unknown.json()["message"]
