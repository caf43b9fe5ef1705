"""Recovery after an embedded engine is SIGKILLed under `oshal up`: time to /readyz 200 and to the first ticket done.

    .venv/bin/python bench/engine_recovery.py --engine redis --runs 5

Starts its own `oshal up` on a fresh data folder (or uses --home/--url of a running one), then per run: SIGKILL the
engine's server (pid from its pid file), poll /readyz every 20 ms until 200, submit an echo ticket and wait for it.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from oshal.embedded import EmbeddedPostgres, EmbeddedRedis

REPO = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait(check: object, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():  # type: ignore[operator]
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.02)
    raise SystemExit("timed out")


def one_run(engine: str, home: Path, url: str, key: str) -> tuple[float, float]:
    server = EmbeddedRedis(home) if engine == "redis" else EmbeddedPostgres(home)
    pid = server.server_pid()
    assert pid is not None, f"{engine} is not running under {home}"
    killed_at = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    _wait(lambda: server.server_pid() not in (None, pid) and httpx.get(f"{url}/readyz", timeout=5).status_code == 200)
    ready_s = time.monotonic() - killed_at
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=url, headers=headers, timeout=60) as http:
        def done() -> bool:
            created = http.post("/v1/tickets", json={"bot": "echo", "input": {"run": killed_at}})
            if created.status_code >= 300:
                return False
            ticket = http.get(f"/v1/tickets/{created.json()['id']}", params={"wait": 30}).json()
            return bool(ticket["status"] == "done")

        _wait(done)
    return ready_s, time.monotonic() - killed_at


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engine", choices=("redis", "postgres"), default="redis")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--home", type=Path, help="data folder of a running `oshal up` (default: start one)")
    parser.add_argument("--url", help="its API address (with --home)")
    args = parser.parse_args()
    proc = None
    if args.home:
        home, url = args.home, args.url or "http://127.0.0.1:8800"
    else:
        home, url = Path(tempfile.mkdtemp(prefix="oshal-recovery-")) / "home", f"http://127.0.0.1:{_free_port()}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("OSHAL_")}
        env.update({"OSHAL_HOME": str(home), "OSHAL_LOG_LEVEL": "error"})
        proc = subprocess.Popen([sys.executable, "-m", "oshal.cli.main", "up", "--port", url.rsplit(":", 1)[1],
                                 "--fleet", str(REPO / "fleet")], env=env, stdout=subprocess.DEVNULL)
        _wait(lambda: httpx.get(f"{url}/readyz", timeout=5).status_code == 200 and (home / "admin.key").exists())
    key = os.environ.get("OSHAL_API_KEY") or (home / "admin.key").read_text().strip()
    try:
        ready, done = [], []
        for run in range(args.runs):
            time.sleep(2)  # let the previous recovery settle
            r, d = one_run(args.engine, home, url, key)
            ready.append(r)
            done.append(d)
            print(f"run {run + 1}: /readyz 200 after {r:.2f}s, first ticket done after {d:.2f}s", flush=True)
        print(f"{args.engine}: /readyz 200 median {statistics.median(ready):.2f}s (max {max(ready):.2f}s); "
              f"first ticket done median {statistics.median(done):.2f}s (max {max(done):.2f}s)")
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGINT)
            proc.wait(120)


if __name__ == "__main__":
    main()
