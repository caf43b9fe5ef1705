"""Recovery after Redis loses its data: how long until every lost envelope is re-sent, and every ticket done.

Starts `oshal up` (echo bot only) in a scratch folder with OSHAL_STALE_AFTER_S (default 20) and
OSHAL_CLAIM_IDLE_MS=5000, freezes the node host (SIGSTOP) so RECOVERY_N tickets (default 10,000) wait in the
lane, FLUSHALLs Redis (every envelope is lost), lets the node host go on (SIGCONT), and times from the flush:
  * resent_s: until the sweeper has re-sent every lost phase (none left open at attempt 1), read from Postgres
    every 0.1 s;
  * done_s: until every ticket is done;
  * drain_s: the same number of tickets through the same node host without a fault (the floor for done_s).
The last line is one JSON object with the numbers.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import psycopg
import redis

from oshal.embedded import EmbeddedPostgres, EmbeddedRedis

REPO = Path(__file__).resolve().parents[1]
N = int(os.environ.get("RECOVERY_N", "10000"))
STALE_AFTER_S = float(os.environ.get("RECOVERY_STALE_AFTER_S", "20"))


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def until(probe: Any, timeout: float, what: str) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if probe():
            return time.monotonic()
        time.sleep(0.1)
    raise SystemExit(f"timed out waiting for {what}")


def main() -> None:
    home = Path(tempfile.mkdtemp(prefix="oshal-bench-recovery-"))
    fleet = home / "fleet"
    fleet.mkdir()
    (fleet / "echo.yaml").write_text((REPO / "fleet" / "echo.yaml").read_text())
    env = {k: v for k, v in os.environ.items() if not k.startswith("OSHAL_")}
    env.update({"OSHAL_HOME": str(home), "OSHAL_LOG_LEVEL": "warning", "OSHAL_STALE_AFTER_S": str(STALE_AFTER_S),
                "OSHAL_CLAIM_IDLE_MS": "5000", "OSHAL_SECURITY_SCAN_INTERVAL_S": "0"})
    port = 18000 + os.getpid() % 1000
    url = f"http://127.0.0.1:{port}"
    with (home / "up.log").open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "oshal.cli.main", "up", "--port", str(port), "--fleet",
                                 str(fleet)], env=env, stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
    try:
        def online() -> bool:
            if proc.poll() is not None:
                raise SystemExit(f"oshal up exited with {proc.returncode}; see {home / 'up.log'}")
            try:
                key = (home / "admin.key").read_text().strip()
                bots = httpx.get(f"{url}/v1/bots", headers={"Authorization": f"Bearer {key}"}, timeout=2)
                return bots.status_code == 200 and all(b["status"] == "online" for b in bots.json())
            except (OSError, httpx.HTTPError):
                return False

        until(online, 120, "oshal up")
        key = (home / "admin.key").read_text().strip()
        http = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=120)
        db = psycopg.connect(EmbeddedPostgres(home).url(database="oshal"), autocommit=True)
        admin = redis.Redis.from_url(EmbeddedRedis(home).url())
        node = int(subprocess.run(["pgrep", "-P", str(proc.pid), "-f", "oshal.cli.main node"], capture_output=True,
                                  text=True, check=True).stdout.split()[0])

        def submit(tag: str) -> None:
            for start in range(0, N, 1000):
                batch = [{"bot": "echo", "input": {"run": tag, "n": n}} for n in range(start, min(start + 1000, N))]
                http.post("/v1/tickets/batch", json={"tickets": batch}).raise_for_status()

        def count(sql: str) -> int:
            row = db.execute(sql).fetchone()
            return int(row[0]) if row else 0

        def done(tag: str) -> int:
            return count(f"SELECT count(*) FROM tickets WHERE status = 'done' AND input->>'run' = '{tag}'")

        os.kill(node, signal.SIGSTOP)
        submit("baseline")
        started = time.monotonic()
        os.kill(node, signal.SIGCONT)
        drain_s = until(lambda: done("baseline") == N, 600, "the baseline run") - started
        log(f"baseline: {N} tickets drained in {drain_s:.1f}s")

        os.kill(node, signal.SIGSTOP)
        submit("flush")
        lane = int(admin.xlen("oshal:lane:echo"))
        flushed = time.monotonic()
        admin.flushall()
        os.kill(node, signal.SIGCONT)
        log(f"flushed a lane of {lane} envelopes; waiting for the re-drive")
        # Re-sent: no phase of the run is still open at its first attempt (the few the frozen node host had
        # already received finish at attempt 1 once it goes on).
        resent_s = until(lambda: count("SELECT count(*) FROM phases p JOIN tickets t ON t.id = p.ticket_id "
                                       "WHERE t.input->>'run' = 'flush' AND p.attempt = 1 "
                                       "AND p.status = 'dispatched'") == 0,
                         STALE_AFTER_S + 600, "every lost phase to be re-sent") - flushed
        resent = count("SELECT count(*) FROM phases p JOIN tickets t ON t.id = p.ticket_id "
                       "WHERE t.input->>'run' = 'flush' AND p.attempt = 2")
        done_s = until(lambda: done("flush") == N, 600, "every ticket done") - flushed
        dup = count("SELECT count(*) - count(DISTINCT phase_id) FROM attempts WHERE outcome = 'done'")
        result = {"tickets": N, "lane_at_flush": lane, "resent": resent, "stale_after_s": STALE_AFTER_S,
                  "resent_s": round(resent_s, 2), "done_s": round(done_s, 2), "drain_s": round(drain_s, 2),
                  "duplicates": dup}
        log(f"all re-sent {resent_s:.1f}s after the flush, all done after {done_s:.1f}s "
            f"(stale_after {STALE_AFTER_S:.0f}s; the same tickets drain in {drain_s:.1f}s without a fault)")
        print(json.dumps(result))
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(120)


if __name__ == "__main__":
    main()
