"""Idle memory of the node hosts: a single-bot node process, and each node host `oshal up` runs for the demo fleet.

* single bot: an embedded Redis in a scratch home and `oshal node --bot echo --replicas 1` on it, the way
  bench/scale.py starts each bot's process; measured once its worker heartbeats and it has idled a while;
* `oshal up`: the whole platform in a scratch home on the repository's fleet (one node host per `node_group`),
  measured once every bot is online and the hosts have idled a while.

RSS counts every page a process maps; PSS divides each shared page among the processes sharing it, so the PSS of
the hosts adds up to the memory they take together. The last line is one JSON object. The targets (issues 17 and 18):
a single-bot process under 60 MB RSS, the demo fleet's node hosts under 100 MB together.
Run: ``.venv/bin/python bench/node_memory.py`` (part of ``make bench``); BENCH_NODE_IDLE_S (default 5) is the idle
wait before reading.
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
from typing import TypedDict

import httpx
import redis as sync_redis

from proc_stats import children, pss_mb, rss_mb  # bench/proc_stats.py

REPO = Path(__file__).resolve().parents[1]
IDLE_S = float(os.environ.get("BENCH_NODE_IDLE_S", "5"))
START_TIMEOUT_S = 120.0


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OSHAL_")}
    return {**env, "OSHAL_LOG_LEVEL": "warning", **extra}


def _stop(proc: subprocess.Popen[bytes], sig: signal.Signals, timeout_s: float = 60) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def single_bot(scratch: Path) -> dict[str, float]:
    from oshal.embedded import EmbeddedRedis
    from oshal.mesh.redis_keys import PREFIX

    engine = EmbeddedRedis(scratch / "redis-home")
    engine.start()
    node: subprocess.Popen[bytes] | None = None
    try:
        env = _clean_env(OSHAL_REDIS_URL=engine.url(), OSHAL_HOME=str(scratch / "node-home"),
                         OSHAL_FLEET_DIR=str(REPO / "fleet"))
        with (scratch / "node.log").open("wb") as out:
            node = subprocess.Popen([sys.executable, "-m", "oshal.cli.main", "node", "--bot", "echo", "--replicas",
                                     "1"], env=env, stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
        client = sync_redis.Redis.from_url(engine.url())
        deadline = time.monotonic() + START_TIMEOUT_S
        while not any(client.scan_iter(match=f"{PREFIX}:hb:echo:*")):
            if node.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the echo node did not heartbeat; see {scratch / 'node.log'}:\n"
                                 + (scratch / "node.log").read_text())
            time.sleep(0.2)
        client.close()
        time.sleep(IDLE_S)
        return {"rss_mb": rss_mb(node.pid), "pss_mb": pss_mb(node.pid)}
    finally:
        if node is not None:
            _stop(node, signal.SIGTERM)
        engine.stop()


def _all_online(url: str, key_file: Path) -> bool:
    if not key_file.exists():
        return False
    key = key_file.read_text().strip()
    try:
        bots = httpx.get(f"{url}/v1/bots", headers={"Authorization": f"Bearer {key}"}, timeout=2)
    except httpx.HTTPError:
        return False
    return bots.status_code == 200 and all(b["status"] == "online" for b in bots.json())


def _node_hosts(supervisor: int) -> dict[int, list[str]]:
    """The supervisor's node-host processes, by pid, with the bots each was started for."""
    hosts: dict[int, list[str]] = {}
    for pid in children(supervisor):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
        except OSError:
            continue
        if argv[1:4] == ["-m", "oshal.cli.main", "node"]:
            hosts[pid] = [a for a in argv[4:] if a and a != "--bot"]
    return hosts


class Host(TypedDict):
    bots: list[str]
    rss_mb: float
    pss_mb: float


def up_hosts(scratch: Path) -> list[Host]:
    from run import free_port  # bench/run.py

    home, port = scratch / "home", free_port()
    url = f"http://127.0.0.1:{port}"
    with (scratch / "up.log").open("wb") as out:
        up = subprocess.Popen([sys.executable, "-m", "oshal.cli.main", "up", "--port", str(port), "--fleet",
                               str(REPO / "fleet")], env=_clean_env(OSHAL_HOME=str(home)), stdout=out,
                              stderr=subprocess.STDOUT, cwd=REPO)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _all_online(url, home / "admin.key"):
            if up.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"oshal up did not bring every bot online; see {scratch / 'up.log'}")
            time.sleep(0.5)
        time.sleep(IDLE_S)
        return [{"bots": bots, "rss_mb": rss_mb(pid), "pss_mb": pss_mb(pid)}
                for pid, bots in sorted(_node_hosts(up.pid).items())]
    finally:
        _stop(up, signal.SIGINT, 120)  # Ctrl-C: the supervisor drains the node hosts, then stops the rest


def main() -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the processes (the finally blocks) when terminated
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="oshal-node-memory-") as scratch_dir:
        scratch = Path(scratch_dir)
        (scratch / "single").mkdir()
        (scratch / "up").mkdir()
        single = single_bot(scratch / "single")
        log(f"single-bot node process, idle: RSS {single['rss_mb']:.1f} MB, PSS {single['pss_mb']:.1f} MB "
            "(target RSS < 60 MB)")
        hosts = up_hosts(scratch / "up")
    for host in hosts:
        bots = host["bots"]
        log(f"oshal up node host of {len(bots)} bots ({bots[0]}, ...), idle: RSS {host['rss_mb']:.1f} MB, "
            f"PSS {host['pss_mb']:.1f} MB")
    total_rss = sum(h["rss_mb"] for h in hosts)
    total_pss = sum(h["pss_mb"] for h in hosts)
    log(f"oshal up node hosts together: RSS {total_rss:.1f} MB, PSS {total_pss:.1f} MB (target < 100 MB)")
    print(json.dumps({"node_memory": {
        "machine_load_1m": round(load, 2),
        "single_bot_rss_mb": round(single["rss_mb"], 1), "single_bot_pss_mb": round(single["pss_mb"], 1),
        "up_hosts": [{"bots": h["bots"], "rss_mb": round(h["rss_mb"], 1), "pss_mb": round(h["pss_mb"], 1)}
                     for h in hosts],
        "up_hosts_rss_mb": round(total_rss, 1), "up_hosts_pss_mb": round(total_pss, 1)}}))


if __name__ == "__main__":
    main()
