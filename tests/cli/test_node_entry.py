"""`oshal node` (the node host itself) runs on a CLI of that one command; its subcommands and help get the whole CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis as sync_redis
import typer.main
import yaml

from oshal.cli.main import NODE_SUBCOMMANDS, build, runs_node_host
from oshal.cli.node_host import NodeOptions, parse
from oshal.embedded import EmbeddedRedis
from oshal.mesh.redis_keys import PREFIX

REPO = Path(__file__).resolve().parents[2]

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
print("MODULES", " ".join(sorted(sys.modules)))
"""


def run(*args: str, env: dict[str, str] | None = None) -> tuple[str, str]:
    result, stderr, _ = run_and_list_modules(*args, env=env)
    return result, stderr


def run_and_list_modules(*args: str, env: dict[str, str] | None = None) -> tuple[str, str, set[str]]:
    done = subprocess.run([sys.executable, "-c", _PROBE, *args], capture_output=True, text=True, timeout=120,
                          env=env)
    result = [line for line in done.stdout.splitlines() if line.startswith("RESULT")]
    modules = [line for line in done.stdout.splitlines() if line.startswith("MODULES")]
    assert result and modules, done.stdout + done.stderr
    return result[-1], done.stderr, set(modules[-1].split()[1:])


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


@pytest.mark.parametrize(("variable", "value", "says"), [
    ("OSHAL_HEARTBEAT_TTL_S", "-1", "heartbeat_ttl_s\n  Input should be greater than 0"),
    ("OSHAL_MODE", "staging", "mode\n  Input should be 'dev' or 'prod'"),
])
def test_a_node_host_refuses_a_wrong_setting_with_the_settings_error(variable: str, value: str, says: str) -> None:
    """The node host reads its settings without pydantic-settings, and a wrong one fails as `Settings` fails."""
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("OSHAL_")}, variable: value,
           "OSHAL_REDIS_URL": "redis://127.0.0.1:9"}
    done = subprocess.run([sys.executable, "-m", "oshal.cli.main", "node", "--bot", "echo", "--fleet",
                           str(REPO / "fleet")], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 1, done.stderr  # the error a wrong setting raised before, before connecting to Redis
    assert "1 validation error for Settings" in done.stderr and says in done.stderr


def test_a_node_host_refuses_a_setting_that_is_not_json_saying_which(tmp_path: Path) -> None:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("OSHAL_")}, "OSHAL_NODE_REPLICAS": "echo=2"}
    result, stderr = run("node", "--bot", "echo", "--fleet", str(REPO / "fleet"), env=env)
    assert result == "RESULT 9 False", stderr  # ConfigError's exit code
    assert "OSHAL_NODE_REPLICAS is not valid JSON" in stderr


def test_node_subcommands_and_help_get_the_whole_cli() -> None:
    result, _ = run("node", "--help")
    assert result == "RESULT 0 True"
    result, stderr = run("node", "join")  # its code is missing: a usage error from the whole CLI's parser
    assert result == "RESULT 2 True", stderr


def test_the_node_hosts_options_are_read_as_the_whole_cli_reads_them() -> None:
    assert parse([]) == NodeOptions()
    assert parse(["--bot", "echo", "--replicas", "1"]) == NodeOptions(bots=["echo"], replicas=1)
    assert parse(["--bot=a", "--bot", "b", "--fleet", "f", "--credentials=c.json", "--tokens", "t.json",
                  "--check"]) == NodeOptions(Path("f"), ["a", "b"], Path("c.json"), Path("t.json"), check=True)


@pytest.mark.parametrize("args", [["--bogus"], ["--bot"], ["--bot", "--check"], ["--bot="], ["--replicas", "0"],
                                  ["--replicas", "65"], ["--replicas", "two"], ["--check=yes"], ["extra"]])
def test_anything_else_is_left_to_the_whole_cli(args: list[str]) -> None:
    assert parse(args) is None


def test_a_wrong_option_is_reported_by_the_whole_cli_as_before() -> None:
    result, stderr = run("node", "--replicas", "65")
    assert result == "RESULT 2 False", stderr  # a usage error, from the node host's Typer command line
    assert "--replicas" in stderr and "64" in stderr


def test_the_node_host_keeps_out_what_it_does_not_use(tmp_path: Path) -> None:
    """An idle node host keeps for its lifetime what it imported (bench/node_memory.py measures it): no command line
    library, no Rich, no HTTP client before a bot calls the gateway, no image or video library before a render."""
    alive = tmp_path / "node.alive"
    alive.write_text(json.dumps({"pid": 1, "at": time.time(), "bots": ["echo"], "workers": 1}))
    env = {**os.environ, "OSHAL_NODE_LIVENESS_FILE": str(alive)}
    result, stderr, modules = run_and_list_modules("node", "--check", env=env)
    assert result == "RESULT 0 False", stderr
    assert "oshal.launcher.host" in modules  # it did reach the node host's own code
    assert not {"typer", "click", "rich", "httpx", "PIL", "imageio_ffmpeg", "pydantic_settings", "dotenv",
                "jsonschema"} & {m.split(".")[0] for m in modules}


def test_a_running_node_host_of_the_demo_fleet_keeps_out_settings_and_schema_libraries(tmp_path: Path) -> None:
    """A real node host, as `oshal up` runs one per node group, on a real Redis until its bots heartbeat: it reads
    its settings without pydantic-settings and leaves the bots' output schemas to the model harnesses, so neither
    pydantic-settings (nor python-dotenv) nor jsonschema is ever imported, although its bots have output schemas.
    ``-X importtime`` lists every module the process imported, on its stderr."""
    fleet = {path.stem for path in (REPO / "fleet").glob("*.yaml")
             if yaml.safe_load(path.read_text()).get("node_group", "fleet") == "fleet"}
    assert any("output_schema" in (REPO / "fleet" / f"{bot}.yaml").read_text() for bot in fleet)
    engine = EmbeddedRedis(tmp_path / "redis")
    engine.start()
    node: subprocess.Popen[str] | None = None
    try:
        credentials = tmp_path / "credentials.json"
        credentials.write_text(json.dumps(dict.fromkeys(fleet, engine.url())))
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("OSHAL_")}, "OSHAL_LOG_LEVEL": "warning",
               "OSHAL_HEARTBEAT_TTL_S": "5", "OSHAL_NODE_REPLICAS": '{"echo": 2}'}
        node = subprocess.Popen([sys.executable, "-X", "importtime", "-m", "oshal.cli.main", "node", "--fleet",
                                 str(REPO / "fleet"), "--credentials", str(credentials),
                                 *[arg for bot in sorted(fleet) for arg in ("--bot", bot)]],
                                env=env, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
        client = sync_redis.Redis.from_url(engine.url())
        deadline = time.monotonic() + 60
        while len({key.split(b":")[2] for key in client.scan_iter(match=f"{PREFIX}:hb:*")}) < len(fleet):
            assert node.poll() is None and time.monotonic() < deadline, "the node host did not heartbeat every bot"
            time.sleep(0.2)
        assert len(list(client.scan_iter(match=f"{PREFIX}:hb:echo:*"))) == 2  # the replicas ordered in its settings
        client.close()
        node.terminate()
        _, stderr = node.communicate(timeout=60)
    finally:
        if node is not None and node.poll() is None:
            node.kill()
            node.communicate()
        engine.stop()
    imported = {line.split("|")[-1].strip() for line in stderr.splitlines() if line.startswith("import time:")}
    assert {"oshal.bots.host", "oshal.bots.worker", "redis.asyncio"} <= imported  # it did run the node host
    assert not {"pydantic_settings", "dotenv", "jsonschema"} & {m.split(".")[0] for m in imported}


def test_the_built_in_bots_harness_loads_media_and_http_only_when_used() -> None:
    probe = ("import sys\nfrom oshal.bots.harnesses import build_harness\nfrom oshal.bots.host import NodeHost\n"
             "from oshal.bots.manifest import load_fleet\n"
             "for manifest in load_fleet(__import__('pathlib').Path(sys.argv[1])).values():\n"
             "    build_harness(manifest)\n"
             "print(' '.join(sorted(sys.modules)))")
    done = subprocess.run([sys.executable, "-c", probe, str(Path(__file__).resolve().parents[2] / "fleet")],
                          capture_output=True, text=True, timeout=120, check=True)
    loaded = {m.split(".")[0] for m in done.stdout.split()}
    assert "oshal" in loaded and "redis" in loaded
    assert not {"httpx", "PIL", "imageio_ffmpeg", "rich", "typer"} & loaded
