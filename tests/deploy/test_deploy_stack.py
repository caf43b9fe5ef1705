"""The Compose stack's processes without containers: what `oshal deploy secrets` writes and what each generated
service is given is enough for `oshal migrate`, `oshal serve` and `oshal node --bot echo` to run a ticket.

Servers of their own (an embedded Postgres and Redis in a temporary folder, standing in for the external ones), so the
migration's roles and ACL users touch nothing of the session's platform. Each process gets exactly the secret files
the generated Compose file mounts into its service, in a folder of its own (its /run/secrets), and an environment
with no secret in it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import yaml

from conftest import REPO, free_port
from oshal.embedded import EmbeddedPostgres, EmbeddedRedis

OSHAL = [sys.executable, "-m", "oshal.cli.main"]


@dataclass
class Stack:
    root: Path
    secrets: Path
    compose: dict[str, Any]
    fleet: Path

    def run_dir(self, service: str) -> Path:
        """The service's own /run/secrets: only what the Compose file gives it, under the name it mounts it as."""
        folder = self.root / "run" / service
        folder.mkdir(parents=True, exist_ok=True)
        for entry in self.compose["services"][service].get("secrets", []):
            source, target = (entry, entry) if isinstance(entry, str) else (entry["source"], entry["target"])
            shutil.copy(self.secrets / source, folder / target)
        return folder

    def env(self, service: str, **extra: str) -> dict[str, str]:
        """The image's environment, the service's own from the Compose file, and where this machine keeps things."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("OSHAL_")}
        env.update({"OSHAL_HOME": str(self.root / "home"), "OSHAL_FLEET_DIR": str(self.fleet),
                    "OSHAL_WORKFLOWS_DIR": str(REPO / "workflows"), "OSHAL_CONNECTORS_DIR": str(REPO / "connectors"),
                    "OSHAL_SECRETS_DIR": str(self.run_dir(service)), "OSHAL_LOG_LEVEL": "warning"})
        env.update({k: str(v) for k, v in self.compose["services"][service].get("environment", {}).items()})
        if "OSHAL_NODE_CREDENTIALS" in env:  # /run/secrets/node-credentials.json in the container
            env["OSHAL_NODE_CREDENTIALS"] = str(Path(env["OSHAL_SECRETS_DIR"]) / "node-credentials.json")
        env.update(extra)
        return env


def _oshal(args: list[str], env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*OSHAL, *args], env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("stack")
    engines = root / "engines"
    postgres, redis = EmbeddedPostgres(engines), EmbeddedRedis(engines)
    postgres.start()
    try:
        redis.start()
        with psycopg.connect(postgres.url(), autocommit=True) as conn:
            conn.execute("CREATE DATABASE oshal")
        fleet = root / "fleet"
        fleet.mkdir()
        shutil.copy(REPO / "fleet" / "echo.yaml", fleet / "echo.yaml")
        secrets = root / "secrets"
        env = {k: v for k, v in os.environ.items() if not k.startswith("OSHAL_")}
        made = _oshal(["deploy", "secrets", "--out", str(secrets), "--fleet", str(fleet), "--database-url",
                       postgres.url(database="oshal"), "--redis-url", redis.url()], env)
        assert made.returncode == 0, made.stderr
        generated = _oshal(["deploy", "compose", "--fleet", str(fleet), "--secrets", str(secrets)], env)
        assert generated.returncode == 0, generated.stderr
        yield Stack(root, secrets, yaml.safe_load(generated.stdout), fleet)
    finally:
        redis.stop()
        postgres.stop()


def _wait(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_no_service_is_given_a_secret_in_its_environment(stack: Stack) -> None:
    values = {p.read_text().strip() for p in stack.secrets.iterdir() if p.is_file()}
    assert len(values) >= 10
    for name, service in stack.compose["services"].items():
        environment = json.dumps(service.get("environment", {}))
        leaked = [v for v in values if v in environment]
        assert leaked == [], f"{name} has a secret in its environment"


def test_migrate_then_serve_then_a_bot_runs_a_ticket_with_only_the_generated_secrets(stack: Stack) -> None:
    migrated = _oshal(["migrate", "--json"], stack.env("migrate"))
    assert migrated.returncode == 0, migrated.stderr
    report = json.loads(migrated.stdout)
    assert report["applied"] and report["bots"] == ["echo"] and report["audit_sealed"] is True
    assert "alpaca-market-data" in report["connectors_installed"]
    again = _oshal(["migrate", "--json"], stack.env("migrate"))
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["applied"] == []  # its own step, safe to run before every rollout

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    liveness = stack.root / "node.alive"
    check_env = stack.env("bot-echo", OSHAL_NODE_LIVENESS_FILE=str(liveness))
    serve = subprocess.Popen([*OSHAL, "serve", "--port", str(port)], env=stack.env("control-plane"),
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    node = None
    try:
        _wait(lambda: serve.poll() is None and _ready(url), 60, "the control plane to be ready")
        node = subprocess.Popen([*OSHAL, *stack.compose["services"]["bot-echo"]["command"]],
                                env={**check_env, "OSHAL_API_URL": url},
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        _wait(lambda: node.poll() is None and liveness.exists(), 30, "the node's liveness file")
        checked = _oshal(["node", "--check"], check_env)
        assert checked.returncode == 0, checked.stderr
        assert "alive" in checked.stdout and "echo" in checked.stdout

        key = (stack.secrets / "oshal_bootstrap_key").read_text().strip()
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as api:
            created = api.post("/v1/tickets", params={"wait": 20}, json={"bot": "echo", "input": {"deployed": 1}})
            assert created.status_code in (200, 201), created.text
            ticket = created.json()
            assert ticket["status"] == "done" and ticket["result"] == {"deployed": 1}
            assert ticket["calls"] == 1  # its cost row, written by the collector in the control plane

        node.send_signal(signal.SIGTERM)
        assert node.wait(30) == 0
        stopped = _oshal(["node", "--check"], check_env)
        assert stopped.returncode == 7 and "does not exist" in " ".join(stopped.stderr.split())
    finally:
        for proc in (node, serve):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def test_a_stale_liveness_file_fails_the_check(tmp_path: Path) -> None:
    alive = tmp_path / "alive"
    alive.write_text(json.dumps({"pid": 1, "at": time.time() - 3600, "bots": ["echo"], "workers": 1}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("OSHAL_")}
    stale = _oshal(["node", "--check"], {**env, "OSHAL_NODE_LIVENESS_FILE": str(alive)})
    assert stale.returncode == 7 and "stuck" in stale.stderr
    unset = _oshal(["node", "--check"], env)
    assert unset.returncode == 9 and "OSHAL_NODE_LIVENESS_FILE" in unset.stderr


def test_migrate_without_an_owner_url_says_what_to_set(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OSHAL_")}
    refused = _oshal(["migrate"], {**env, "OSHAL_HOME": str(tmp_path)})
    assert refused.returncode == 9 and "OSHAL_DATABASE_URL" in refused.stderr
