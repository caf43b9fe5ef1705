"""`oshal node` (the node host itself) runs on a CLI of that one command; its subcommands and help get the whole CLI."""

from __future__ import annotations

import subprocess
import sys

import typer.main

from oshal.cli.main import NODE_SUBCOMMANDS, build, runs_node_host

# Runs `oshal ARGS` in a fresh interpreter, then says with which exit code and whether another command's module
# (tickets) was loaded, i.e. whether the whole CLI was built.
_PROBE = """
import sys
sys.argv = ["oshal", *sys.argv[1:]]
import oshal.cli.main as cli
try:
    cli.main()
    code = 0
except SystemExit as e:
    code = e.code
print("RESULT", code, "oshal.cli.tickets" in sys.modules)
"""


def run(*args: str, env: dict[str, str] | None = None) -> tuple[str, str]:
    done = subprocess.run([sys.executable, "-c", _PROBE, *args], capture_output=True, text=True, timeout=120,
                          env=env)
    result = [line for line in done.stdout.splitlines() if line.startswith("RESULT")]
    assert result, done.stdout + done.stderr
    return result[-1], done.stderr


def test_the_node_subcommands_named_in_main_are_those_registered() -> None:
    group = typer.main.get_command(build()).commands["node"]  # type: ignore[attr-defined]
    assert set(group.commands) == NODE_SUBCOMMANDS


def test_classification() -> None:
    assert runs_node_host(["node"])
    assert runs_node_host(["node", "--bot", "echo", "--replicas", "1"])
    assert not runs_node_host(["node", "join", "onj_x", "--api", "https://example.test"])
    assert not runs_node_host(["node", "--help"])
    assert not runs_node_host(["nodes"])
    assert not runs_node_host([])


def test_node_host_runs_without_the_other_commands_and_reports_errors_as_before() -> None:
    import os

    env = {k: v for k, v in os.environ.items() if k != "OSHAL_NODE_LIVENESS_FILE"}
    result, stderr = run("node", "--check", env=env)
    assert result == "RESULT 9 False"  # ConfigError's exit code, and no other command was loaded
    assert "OSHAL_NODE_LIVENESS_FILE is not set" in stderr


def test_node_subcommands_and_help_get_the_whole_cli() -> None:
    result, _ = run("node", "--help")
    assert result == "RESULT 0 True"
    result, stderr = run("node", "join")  # its code is missing: a usage error from the whole CLI's parser
    assert result == "RESULT 2 True", stderr
