"""The scale bench's own helpers (bench/scale_fleet.py, bench/proc_stats.py): the fleet it generates is one the
platform loads, tickets spread evenly, paced rates come out right, and /proc readings are of the right process."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from oshal.bots.manifest import load_fleet
from proc_stats import busy_share, children, cpu_seconds, machine_jiffies, pss_mb, rss_mb, tree_cpu_seconds
from scale_fleet import Pacer, bot_names, spread, write_fleet


def test_generated_fleet_loads_as_the_platform_loads_manifests(tmp_path: Path) -> None:
    names = write_fleet(tmp_path / "fleet", 26)
    fleet = load_fleet(tmp_path / "fleet")
    assert sorted(fleet) == names == sorted(names)
    assert len(fleet) == 26
    assert {m.intent for m in fleet.values()} == {"echo"}
    assert {m.harness for m in fleet.values()} == {"deterministic"}
    assert {m.node_group for m in fleet.values()} == set(names)  # each bot a node host of its own under `oshal up`


def test_fleet_folder_must_be_its_own(tmp_path: Path) -> None:
    write_fleet(tmp_path / "fleet", 2)
    with pytest.raises(ValueError, match="already holds bot manifests"):
        write_fleet(tmp_path / "fleet", 3)


@pytest.mark.parametrize("n", [1, 1001])
def test_fleet_size_out_of_range(n: int) -> None:
    with pytest.raises(ValueError, match="2 to 1000 bots"):
        bot_names(n)


def test_spread_is_even_over_lanes() -> None:
    counts = Counter(spread(bot_names(26), 10_000))
    assert len(counts) == 26
    assert max(counts.values()) - min(counts.values()) <= 1
    assert sum(counts.values()) == 10_000


def test_pacer_offers_each_lane_its_rate_including_fractions() -> None:
    bots = bot_names(4)
    pacer = Pacer(bots, rate=2.5, tick_s=0.1, rates={bots[-1]: 12.5})
    sent = Counter(bot for _ in range(100) for bot in pacer.tick())  # 10 s
    assert sent == {bots[0]: 25, bots[1]: 25, bots[2]: 25, bots[3]: 125}


def test_pacer_refuses_a_rate_of_nothing() -> None:
    with pytest.raises(ValueError, match="positive"):
        Pacer(bot_names(2), rate=0, tick_s=0.1)


def test_proc_readings_follow_the_process_and_its_children() -> None:
    busy = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.3: pass\ntime.sleep(30)"
    parent = subprocess.Popen([sys.executable, "-c",
                               f"import subprocess, sys, time\nsubprocess.Popen([sys.executable, '-c', {busy!r}])\n"
                               "time.sleep(30)"])
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and (not children(parent.pid) or
                                               tree_cpu_seconds(parent.pid) - cpu_seconds(parent.pid) < 0.3):
            time.sleep(0.1)
        (child,) = children(parent.pid)
        assert cpu_seconds(child) >= 0.3  # the busy child's CPU is its own ...
        assert tree_cpu_seconds(parent.pid) >= cpu_seconds(parent.pid) + 0.3  # ... and counts for its tree
        assert 1 < rss_mb(child) < 500
        assert 0 < pss_mb(child) <= rss_mb(child)  # its share of the pages it shares (libraries) counts, not all
        assert os.getpid() not in children(parent.pid)
    finally:
        for pid in children(parent.pid):
            os.kill(pid, 9)
        parent.kill()
        parent.wait()


def test_machine_busy_share_counts_idle_and_iowait_as_not_busy(tmp_path: Path) -> None:
    # user nice system idle iowait irq softirq steal guest guest_nice
    (tmp_path / "stat").write_text("cpu  100 0 50 800 50 0 0 0 30 0\ncpu0 50 0 25 400 25 0 0 0 15 0\n")
    before = machine_jiffies(tmp_path)
    assert before == (150, 1000)  # guest time is part of user time already: not counted twice
    (tmp_path / "stat").write_text("cpu  400 0 150 1300 50 0 0 0 30 0\n")
    assert busy_share(before, machine_jiffies(tmp_path)) == pytest.approx(400 / 900)
    assert busy_share(before, before) == 0.0


def test_machine_busy_share_of_this_machine_is_a_share() -> None:
    before = machine_jiffies()
    time.sleep(0.05)
    assert 0.0 <= busy_share(before, machine_jiffies()) <= 1.0
