"""`oshal up` as a user runs it: a real process tree that starts, serves, stops cleanly and restarts on its data."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psycopg
import pytest

from conftest import REPO, free_port
from oshal.embedded import EmbeddedPostgres, EmbeddedRedis


def _start(home: Path, port: int, extra_env: dict[str, str] | None = None,
           fleet: Path = REPO / "fleet") -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OSHAL_")}
    env.update({"OSHAL_HOME": str(home), "OSHAL_LOG_LEVEL": "warning", **(extra_env or {})})
    return subprocess.Popen([sys.executable, "-m", "oshal.cli.main", "up", "--port", str(port), "--fleet",
                             str(fleet)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _ready(proc: subprocess.Popen[str], url: str, key_file: Path, key: str | None = None) -> str:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        try:
            if key is not None or key_file.exists():
                key = key or key_file.read_text().strip()
                bots = httpx.get(f"{url}/v1/bots", headers={"Authorization": f"Bearer {key}"}, timeout=2)
                if bots.status_code == 200 and all(b["status"] == "online" for b in bots.json()):
                    return key
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError("oshal up did not become ready")


def _environs_of_children(parent: int, command: str) -> list[dict[str, str]]:
    pids = subprocess.run(["pgrep", "-P", str(parent), "-f", command], capture_output=True, text=True).stdout.split()
    assert pids, f"no child of {parent} runs {command!r}"
    raws = [Path(f"/proc/{pid}/environ").read_bytes().split(b"\0") for pid in pids]
    return [dict(item.decode().split("=", 1) for item in raw if b"=" in item) for raw in raws]


def _environ_of_child(parent: int, command: str) -> dict[str, str]:
    [environ] = _environs_of_children(parent, command)
    return environ


def _stop(proc: subprocess.Popen[str], sig: signal.Signals = signal.SIGINT) -> tuple[int, str]:
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=90)
    return proc.returncode, out


def test_up_serves_stops_cleanly_and_reuses_its_data(tmp_path: Path) -> None:
    home, port = tmp_path / "home", free_port()
    url = f"http://127.0.0.1:{port}"
    proc = _start(home, port, {"SOME_DEPLOY_TOKEN": "not-for-bots"})
    try:
        key = _ready(proc, url, home / "admin.key")
        assert (home / "admin.key").stat().st_mode & 0o777 == 0o600
        node_envs = _environs_of_children(proc.pid, "oshal.cli.main node")  # one node host per node group
        assert len(node_envs) == 2  # the fleet's, and the applications' bots'
        for node_env in node_envs:
            credentials = Path(node_env["OSHAL_NODE_CREDENTIALS"])  # each node host got its own credentials file ...
            readable_by_node_group = 0o640 if os.geteuid() == 0 else 0o600
            assert credentials.stat().st_mode & 0o777 == readable_by_node_group
            assert credentials.parent == home / "node"
            for secret in ("OSHAL_HOME", "OSHAL_API_DATABASE_URL", "OSHAL_DATABASE_URL", "OSHAL_REDIS_URL",
                           "OSHAL_DISPATCH_KEY"):
                assert secret not in node_env  # ... but not the platform's home, database, admin Redis or signing keys
            assert "postgresql://" not in "".join(node_env.values())
            assert "SOME_DEPLOY_TOKEN" not in node_env and "PATH" in node_env  # only the basics and its model keys
        assert (home / "secrets").stat().st_mode & 0o777 == 0o700
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as http:
            tid = http.post("/v1/tickets", json={"bot": "echo", "input": {"up": 1}}).json()["id"]
            assert http.get(f"/v1/tickets/{tid}", params={"wait": 20}).json()["result"] == {"up": 1}
    finally:
        code, out = _stop(proc)
    assert code == 0
    assert f"oshal is up at {url}" in out and key in out
    pid_file = home / "pg" / "postmaster.pid"
    assert not pid_file.exists()  # Postgres shut down cleanly
    assert not (home / "redis-socket" / "redis.sock").exists()

    proc = _start(home, port)  # second start: same data, same key
    try:
        assert _ready(proc, url, home / "admin.key") == key
        ticket = httpx.get(f"{url}/v1/tickets/{tid}", headers={"Authorization": f"Bearer {key}"}).json()
        assert ticket["status"] == "done" and ticket["result"] == {"up": 1}
    finally:
        code, _ = _stop(proc, signal.SIGTERM)
    assert code == 0


def test_up_with_external_servers_starts_no_embedded_ones(tmp_path: Path) -> None:
    servers = tmp_path / "servers"
    servers.mkdir()
    pg, rd = EmbeddedPostgres(servers), EmbeddedRedis(servers)  # stand-ins for managed Postgres/Redis
    pg.start()
    rd.start()
    home, port = tmp_path / "home", free_port()
    url = f"http://127.0.0.1:{port}"
    try:
        proc = _start(home, port, {"OSHAL_DATABASE_URL": pg.url(), "OSHAL_REDIS_URL": rd.url()})
        try:
            key = _ready(proc, url, home / "admin.key")
            with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as http:
                tid = http.post("/v1/tickets", json={"bot": "echo", "input": "x"}).json()["id"]
                assert http.get(f"/v1/tickets/{tid}", params={"wait": 20}).json()["status"] == "done"
        finally:
            code, _ = _stop(proc)
        assert code == 0
        assert not (home / "pg").exists() and not (home / "redis").exists()
        with psycopg.connect(pg.url()) as conn:  # the schema and data landed on the external server
            assert conn.execute("SELECT count(*) FROM tickets").fetchone() == (1,)
    finally:
        rd.stop()
        pg.stop()


def test_up_refuses_a_half_external_configuration(tmp_path: Path) -> None:
    proc = _start(tmp_path / "home", free_port(), {"OSHAL_REDIS_URL": "redis://127.0.0.1:1"})
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 9
    assert "set both OSHAL_DATABASE_URL and OSHAL_REDIS_URL" in err


def test_up_in_prod_mode_runs_on_the_operators_secrets_and_writes_no_key(tmp_path: Path) -> None:
    import base64

    from oshal.control.api_keys import issue

    home, port = tmp_path / "home", free_port()
    url = f"http://127.0.0.1:{port}"
    bootstrap = issue().plaintext
    secrets = {"OSHAL_MODE": "prod", "OSHAL_DISPATCH_KEY": base64.b64encode(os.urandom(32)).decode(),
               "OSHAL_SECRETS_KEK": base64.b64encode(os.urandom(32)).decode(), "OSHAL_BOOTSTRAP_KEY": bootstrap}
    proc = _start(home, port, secrets)
    try:
        assert _ready(proc, url, home / "admin.key", key=bootstrap) == bootstrap
        assert not (home / "admin.key").exists()  # the operator's key is never written to disk
        control_env = _environ_of_child(proc.pid, "oshal.cli.main serve")
        assert control_env["OSHAL_SECRETS_KEK"] == secrets["OSHAL_SECRETS_KEK"]  # the control plane has its config
        assert "OSHAL_BOOTSTRAP_KEY" not in control_env  # used once, by `up`
        for node_env in _environs_of_children(proc.pid, "oshal.cli.main node"):
            assert not {"OSHAL_SECRETS_KEK", "OSHAL_BOOTSTRAP_KEY", "OSHAL_DISPATCH_KEY"} & set(node_env)
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {bootstrap}"}, timeout=30) as http:
            assert http.get("/v1/whoami").json()["role"] == "operator"
            tid = http.post("/v1/tickets", json={"bot": "echo", "input": {"prod": True}}).json()["id"]
            assert http.get(f"/v1/tickets/{tid}", params={"wait": 20}).json()["result"] == {"prod": True}
            # The operator's KEK reached the control plane: a credential is stored encrypted under it.
            connection = http.post("/v1/connections", json={"connector": "bigcommerce-catalog", "secret": "s3cret"})
            assert connection.status_code == 201, connection.text
    finally:
        code, out = _stop(proc)
    assert code == 0 and bootstrap not in out


def _platform_files(home: Path) -> list[str]:
    """What a bot must not read: every secret, the Postgres data, the Redis configuration and data, the platform's
    credential files and logs, and every other entry of the home besides the node's own folder."""
    paths = {home / "secrets", home / "pg", home / "pg" / "PG_VERSION", home / "pg" / "global" / "pg_control",
             home / "pg" / "postgresql.auto.conf", home / "redis", home / "redis" / "redis.conf",
             home / "run" / "bot-credentials.json", home / "run" / "bot-tokens.json", home / "admin.key"}
    paths |= set((home / "secrets").iterdir()) | set((home / "logs").iterdir()) | set((home / "redis").iterdir())
    paths |= {entry for entry in home.iterdir() if entry.name not in ("node", "redis-socket")}
    assert len(list((home / "secrets").iterdir())) >= 6  # pg-superuser, pg-owner, pg-api, redis-admin, ...
    return sorted(str(p) for p in paths)


@pytest.mark.skipif(os.geteuid() != 0, reason="the node host switches to its own user only when oshal runs as root")
def test_a_bot_cannot_read_the_platforms_secrets() -> None:
    """Code running inside a bot, in the node host `oshal up` starts, tries to open every platform secret."""
    # Not under pytest's root-only temp folder: a concurrent pytest session resets its mode, which would lock the
    # node and Postgres users out of the home mid-test.
    with tempfile.TemporaryDirectory(prefix="oshal-seal-") as folder:
        _bot_cannot_read_the_platforms_secrets(Path(folder))


def _bot_cannot_read_the_platforms_secrets(tmp_path: Path) -> None:
    fleet = tmp_path / "fleet"
    fleet.mkdir()
    shutil.copy(REPO / "fleet" / "echo.yaml", fleet / "echo.yaml")
    (fleet / "prober.yaml").write_text("name: prober\nintent: file_probe:try_read\n")
    home, port = tmp_path / "home", free_port()
    url = f"http://127.0.0.1:{port}"
    proc = _start(home, port, {"PYTHONPATH": str(REPO / "tests" / "bots")}, fleet=fleet)
    try:
        key = _ready(proc, url, home / "admin.key")
        secrets = _platform_files(home)
        own = str(home / "node" / "credentials.json")
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as http:
            writable = [str(home / "node"), str(home / "node" / "fleet"), str(home / "node" / "work")]
            tid = http.post("/v1/tickets", json={"bot": "prober", "input": {"paths": [*secrets, own],
                                                                             "write_dirs": writable}}).json()["id"]
            probe = http.get(f"/v1/tickets/{tid}", params={"wait": 20}).json()
            echo = http.post("/v1/tickets", json={"bot": "echo", "input": {"still": "works"}}).json()["id"]
            echoed = http.get(f"/v1/tickets/{echo}", params={"wait": 20}).json()
    finally:
        code, _ = _stop(proc)
    assert code == 0
    assert probe["status"] == "done", probe  # the bot did its work ...
    result = probe["result"]
    assert result["uid"] == pwd.getpwnam("oshal_node").pw_uid  # ... as the node user ...
    assert {path: result["results"][path] for path in secrets} == dict.fromkeys(secrets, "PermissionError")
    assert result["results"][own] == "read"  # ... which can read its own credentials (the probe can see a read)
    assert "OSHAL_HOME" not in result["oshal_env"]
    # The folders the platform writes at every start are closed to the bot; only its own working folder is open.
    assert result["writes"] == {str(home / "node"): "PermissionError", str(home / "node" / "fleet"): "PermissionError",
                                str(home / "node" / "work"): "wrote"}
    assert echoed["status"] == "done" and echoed["result"] == {"still": "works"}
