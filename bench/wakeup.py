"""What one cross-process hop costs on this machine, busy and after idling: the floor under every round trip.

A one-at-a-time round trip crosses processes many times (client -> API -> Postgres -> API -> Redis -> bot -> Redis ->
collector -> Postgres -> API -> client), and between two tickets every one of those processes sleeps. On a virtual
machine a sleeping CPU is halted, and waking it again costs far more than the work the hop does. This bench shows
that cost directly, with nothing of the platform in it:
  * ping-pong: two processes echoing one byte over a socket pair, back to back and after each side idles;
  * Redis PING on a throw-away redis-server (bench/peers.py's), the same way.
p50/p99 in microseconds per round trip; the last line is one JSON object. Run: ``.venv/bin/python bench/wakeup.py``
(part of ``make bench``). BENCH_WAKEUP_SAMPLES (default 1000) round trips per idle gap.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from peers import throwaway_redis  # bench/peers.py

SAMPLES = int(os.environ.get("BENCH_WAKEUP_SAMPLES", "1000"))
IDLE_GAPS_MS = (0.0, 0.5, 1.0, 3.0)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _p50_p99(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return ordered[len(ordered) // 2], ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


def _timed(round_trip: Callable[[], None], idle_ms: float) -> tuple[float, float]:
    for _ in range(20):
        round_trip()
    samples = []
    for _ in range(SAMPLES):
        if idle_ms:
            time.sleep(idle_ms / 1000)
        started = time.perf_counter()
        round_trip()
        samples.append((time.perf_counter() - started) * 1e6)
    return _p50_p99(samples)


def ping_pong() -> dict[float, tuple[float, float]]:
    ours, theirs = socket.socketpair()
    child = os.fork()
    if child == 0:  # the echoing process: blocks in recv, as a bot or a collector blocks on its read
        ours.close()
        while byte := theirs.recv(1):
            theirs.sendall(byte)
        os._exit(0)
    theirs.close()

    def round_trip() -> None:
        ours.sendall(b"x")
        ours.recv(1)

    try:
        return {gap: _timed(round_trip, gap) for gap in IDLE_GAPS_MS}
    finally:
        ours.close()
        os.waitpid(child, 0)


def redis_ping() -> dict[float, tuple[float, float]]:
    import redis

    with tempfile.TemporaryDirectory(prefix="oshal-wakeup-") as folder, throwaway_redis(Path(folder)) as env:
        client = (redis.Redis(unix_socket_path=env["BENCH_PEER_REDIS_SOCKET"]) if "BENCH_PEER_REDIS_SOCKET" in env
                  else redis.Redis(host="127.0.0.1", port=int(env["BENCH_PEER_REDIS_PORT"])))
        try:
            return {gap: _timed(client.ping, gap) for gap in IDLE_GAPS_MS}
        finally:
            client.close()


def main() -> None:
    figures: dict[str, float] = {}
    for name, measure in (("ping_pong", ping_pong), ("redis_ping", redis_ping)):
        log(f"{name}: {SAMPLES} round trips per idle gap ...")
        for gap, (p50, p99) in measure().items():
            log(f"  after {gap:.1f} ms idle: p50 {p50:.0f} us, p99 {p99:.0f} us")
            figures[f"{name}_idle_{gap:g}ms_p50_us"] = round(p50, 1)
            figures[f"{name}_idle_{gap:g}ms_p99_us"] = round(p99, 1)
    with open("/proc/loadavg") as loadavg:
        figures["loadavg_1m"] = float(loadavg.read().split()[0])
    print(json.dumps({"bench": "wakeup", **figures}))


if __name__ == "__main__":
    main()
