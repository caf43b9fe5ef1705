"""Two or more versions of the platform measured against each other in one sitting, alternating.

Single runs on a shared 2-core machine vary by tens of percent, so a before/after comparison made of one run each
measures the machine. This runs bench/run.py's core figures (sustained tickets/s, the HTTP and in-process round
trips; BENCH_CORE_ONLY=1, no hop profile) for every version in turn, BENCH_AB_ROUNDS times (default 5), rotating
which version goes first, and prints every run with the load average beside it, then each figure's median per
version and its ratio to the first version's.

    .venv/bin/python bench/ab.py before=/tmp/base after=.      # each a checkout: its src/ is what runs

Every version runs under this checkout's bench/run.py with PYTHONPATH pointing at that version's src/, so only the
platform differs. BENCH_AB_PEERS=1 also measures the peers (bench/peers.py) once before and once after, and divides
the medians by their figures. BENCH_N / BENCH_ROUNDTRIPS are passed through (defaults 10,000 and 200 here, to keep
a round short). The last line is one JSON object.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROUNDS = int(os.environ.get("BENCH_AB_ROUNDS", "5"))
FIGURES = ("tickets_per_s", "roundtrip_http_p50_ms", "roundtrip_client_p50_ms")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def versions(args: list[str]) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for arg in args:
        name, equals, root = arg.partition("=")
        src = Path(root).resolve() / "src"
        if not equals or not name or not (src / "oshal" / "__init__.py").is_file():
            raise SystemExit(f"{arg!r}: give NAME=CHECKOUT, where CHECKOUT/src/oshal is the platform to measure")
        if name in found:
            raise SystemExit(f"{name!r} is given twice: name each version once")
        found[name] = src
    if len(found) < 2:
        raise SystemExit("give at least two versions, e.g. before=/tmp/base after=.")
    return found


def one_run(src: Path) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(src), "BENCH_CORE_ONLY": "1", "BENCH_PEERS": "0", "BENCH_HOPS": "0",
           "BENCH_N": os.environ.get("BENCH_N", "10000"), "BENCH_ROUNDTRIPS": os.environ.get("BENCH_ROUNDTRIPS", "200")}
    done = subprocess.run([sys.executable, str(HERE / "run.py")], env=env, capture_output=True, text=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise SystemExit(f"bench/run.py failed with {src}:\n{done.stderr[-3000:]}")
    figures = json.loads(lines[-1])
    with open("/proc/loadavg") as loadavg:
        return {**{k: float(figures[k]) for k in FIGURES}, "loadavg_1m": float(loadavg.read().split()[0])}


def peers() -> dict[str, float]:
    done = subprocess.run([sys.executable, str(HERE / "peers.py")], capture_output=True, text=True, check=True)
    return dict(json.loads([line for line in done.stdout.splitlines() if line.startswith("{")][-1]))


def main() -> None:
    chosen = versions(sys.argv[1:])
    names = list(chosen)
    with_peers = os.environ.get("BENCH_AB_PEERS", "0") == "1"
    peer_runs = [peers()] if with_peers else []
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in names}
    for round_ in range(ROUNDS):
        order = names[round_ % len(names):] + names[:round_ % len(names)]
        for name in order:
            run = one_run(chosen[name])
            runs[name].append(run)
            log(f"round {round_ + 1}/{ROUNDS} {name:>10}: {run['tickets_per_s']:7,.0f} tickets/s, HTTP p50 "
                f"{run['roundtrip_http_p50_ms']:.2f} ms, in-process p50 {run['roundtrip_client_p50_ms']:.2f} ms "
                f"(load {run['loadavg_1m']:.2f})")
    if with_peers:
        peer_runs.append(peers())
    medians = {name: {k: statistics.median(r[k] for r in runs[name]) for k in FIGURES} for name in names}
    first = medians[names[0]]
    dramatiq = max((p["dramatiq_tasks_per_s"] for p in peer_runs), default=0.0)  # each peer's best, as in peers.py
    celery = min((p["celery_roundtrip_p50_ms"] for p in peer_runs), default=0.0)
    result: dict[str, float] = {}
    for name in names:
        m = medians[name]
        vs_first = {k: m[k] / first[k] for k in FIGURES}
        log(f"median {name:>10}: {m['tickets_per_s']:7,.0f} tickets/s ({vs_first['tickets_per_s']:.2f}x), HTTP p50 "
            f"{m['roundtrip_http_p50_ms']:.2f} ms ({vs_first['roundtrip_http_p50_ms']:.2f}x), in-process p50 "
            f"{m['roundtrip_client_p50_ms']:.2f} ms ({vs_first['roundtrip_client_p50_ms']:.2f}x)")
        result.update({f"{name}_{k}_median": round(v, 3) for k, v in m.items()})
        if peer_runs:
            result[f"{name}_throughput_vs_dramatiq"] = round(m["tickets_per_s"] / dramatiq, 3)
            result[f"{name}_roundtrip_http_vs_celery"] = round(m["roundtrip_http_p50_ms"] / celery, 3)
            result[f"{name}_roundtrip_inproc_vs_celery"] = round(m["roundtrip_client_p50_ms"] / celery, 3)
    if peer_runs:
        log(f"peers (best of {len(peer_runs)} sittings): dramatiq {dramatiq:,.0f} tasks/s, celery round trip p50 "
            f"{celery:.2f} ms")
    print(json.dumps({"bench": "ab", "rounds": ROUNDS, **result}))


if __name__ == "__main__":
    main()
