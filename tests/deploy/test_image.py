"""The one image: what deploy/Dockerfile builds it from, and, where a container engine works, the image itself.

The container test needs a working engine (`docker info` succeeds) and OSHAL_CONTAINER_TESTS=1 (a first build takes
minutes; later ones hit the layer cache); otherwise it is skipped with the reason.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import httpx
import pytest

from conftest import REPO, Platform, free_port

DOCKERFILE = REPO / "deploy" / "Dockerfile"
IGNORE = REPO / "deploy" / "Dockerfile.dockerignore"


def _instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line.strip() else "")
            for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def test_the_runtime_stage_is_non_root_with_a_health_check_and_oshal_as_its_entrypoint() -> None:
    steps = _instructions()
    stages = [i for i, (op, _) in enumerate(steps) if op == "FROM"]
    assert len(stages) == 2, "multi-stage: a build stage makes the wheel, the runtime stage installs it"
    runtime = steps[stages[-1]:]
    users = [arg for op, arg in runtime if op == "USER"]
    assert users == ["10001:10001"]
    assert any(op == "HEALTHCHECK" and "/readyz" in arg for op, arg in runtime)
    assert ("ENTRYPOINT", '["oshal"]') in runtime
    assert not [arg for op, arg in runtime if op in ("ENV", "ARG") and re.search(r"KEY|TOKEN|PASSWORD|_URL=", arg)]
    copied = [arg.split()[0] for op, arg in steps if op == "COPY" and not arg.startswith("--from")]
    for source in copied:
        assert (REPO / source).exists(), f"the Dockerfile copies {source}, which is not in the repository"
        assert f"!{source.rstrip('/')}" in IGNORE.read_text() or source.rstrip("/") == "./", source


def test_the_wheel_the_image_installs_holds_every_runtime(tmp_path: Path) -> None:
    """The build stage's `pip wheel .`: the platform, its SQL and both applications, so one image runs them all."""
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                           "--wheel-dir", str(tmp_path), str(REPO)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    [wheel] = tmp_path.glob("oshal-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for expected in ("oshal/cli/main.py", "oshal/deploy/compose.py", "oshal/store/migrations/001_core.sql",
                     "oshal/store/sql/functions/ORDER", "oshal/console/templates/_bots_table.html",
                     "oshal_ops/cli.py", "oshal_trading/cli.py"):
        assert expected in names, expected
    shipped = {p.name for p in (REPO / "src" / "oshal" / "store" / "migrations").glob("*.sql")}
    assert {n.rsplit("/", 1)[1] for n in names if n.startswith("oshal/store/migrations/")} == shipped
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "oshal = oshal.cli.main:main" in text and "oshal_ops.cli:app" in text


def _engine() -> str:
    for tool in ("docker", "podman"):
        path = shutil.which(tool)
        if path is None:
            continue
        info = subprocess.run([path, "info"], capture_output=True, text=True)
        if info.returncode == 0:
            return path
        reason = (info.stderr or info.stdout).strip().splitlines()[-1:] or ["no output"]
        pytest.skip(f"{tool} is installed but its engine does not answer: {reason[0]}")
    pytest.skip("no container engine here (neither docker nor podman)")


def test_the_image_serves_against_the_test_engines(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    engine = _engine()
    if os.environ.get("OSHAL_CONTAINER_TESTS") != "1":
        pytest.skip("set OSHAL_CONTAINER_TESTS=1 to build the image and run it (minutes on a cold cache)")
    platform: Platform = request.getfixturevalue("platform")
    tag = "oshal:test"
    built = subprocess.run([engine, "build", "-f", str(DOCKERFILE), "-t", tag, str(REPO)], capture_output=True,
                           text=True, timeout=1800)
    assert built.returncode == 0, built.stderr[-3000:]
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    for name, value in (("oshal_api_database_url", platform.engines.api_url),
                        ("oshal_redis_url", platform.engines.redis_url),
                        ("oshal_dispatch_key", platform.engines.dispatch_key.decode())):
        (secrets / name).write_text(value)
        (secrets / name).chmod(0o644)
    # The engines listen on unix sockets: the container gets their folders at the same paths, runs as the user that
    # owns them, and shares the host's network for the API's port.
    sockets = {Path(platform.engines.redis.socket_dir) if platform.engines.redis else None,
               Path(platform.engines.postgres.socket_dir) if platform.engines.postgres else None} - {None}
    port = free_port()
    argv = [engine, "run", "--rm", "-d", "--network", "host", "--read-only", "--tmpfs", "/tmp", "--cap-drop", "ALL",
            "--user", f"{os.getuid()}:{os.getgid()}", "-e", "OSHAL_MODE=dev", "-v", f"{secrets}:/run/secrets:ro",
            "--tmpfs", "/var/lib/oshal", *(a for s in sockets for a in ("-v", f"{s}:{s}")), tag,
            "serve", "--host", "127.0.0.1", "--port", str(port), "--no-collector", "--no-sweeper"]
    started = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert started.returncode == 0, started.stderr
    container = started.stdout.strip()
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, subprocess.run([engine, "logs", container], capture_output=True,
                                                               text=True).stderr[-3000:]
            time.sleep(0.5)
    finally:
        subprocess.run([engine, "rm", "-f", container], capture_output=True)
