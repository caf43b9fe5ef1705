"""`oshal trade desk ...` and the desk's commands in processes of their own against the running platform: a replayed
session, its books (status, positions, fills, orders, pnl, trace), halt and resume, the live gates, a service killed
mid-session and run again without a duplicate order, and clear errors with ops-style exit codes."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from typing import Any

from conftest import Platform, run_cli
from desk_support import SYMBOLS, desk_config
from oshal_trading import backtest
from oshal_trading.bars import load_bundled

NEW_DESK = ("--symbols", ",".join(SYMBOLS), "--param", "fast=3", "--param", "slow=8", "--history-from", "2016-01-04")


def _json(done: subprocess.CompletedProcess[str]) -> Any:
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _records(platform: Platform, collection: str) -> list[dict[str, Any]]:
    with platform.client() as admin:
        return [r["body"] for r in admin.get(f"/v1/apps/trading/records/{collection}", params={"limit": 200})
                .json()["items"]]


def test_a_replayed_session_and_its_books_from_the_command_line(platform: Platform) -> None:
    steps = _json(run_cli(platform, "trade", "desk", "run", "--replay", "2016-01-04", "--to", "2016-02-12",
                          *NEW_DESK, "--json"))
    assert steps[0]["day"] == "2016-01-04" and steps[-1]["day"] == "2016-02-12"
    expected = backtest.run(desk_config().backtest_config(), load_bundled(SYMBOLS), start=dt.date(2016, 1, 4),
                            end=dt.date(2016, 2, 12))
    assert [s["equity"] for s in steps] == list(expected.equity)

    status = _json(run_cli(platform, "trade", "status", "--json"))
    assert (status["sessions"], status["last_session"], status["fills"]) == (len(steps), "2016-02-12",
                                                                             len(expected.fills))
    assert status["equity"] == expected.equity[-1] and status["halted"] is False and status["live"] is False
    held = {p["symbol"]: p["quantity"] for p in _json(run_cli(platform, "trade", "positions", "--json"))}
    assert held == {s: p.quantity for s, p in expected.ledger.positions().items()}
    pnl = _json(run_cli(platform, "trade", "pnl", "--json"))
    assert pnl["equity"] == expected.equity[-1] and pnl["trial_balance_balanced"] is True
    assert pnl["realized"] == expected.ledger.realized_pnl() and pnl["fees"] == expected.ledger.fees()
    fills = _json(run_cli(platform, "trade", "fills", "--json"))
    orders = _json(run_cli(platform, "trade", "orders", "--json"))
    assert len(fills) == len(expected.fills) and {o["order"]["client_order_id"] for o in orders} >= {
        f["fill"]["client_order_id"] for f in fills}
    walked = _json(run_cli(platform, "trade", "trace", fills[0]["fill"]["id"], "--json"))
    assert walked["order"]["order"]["client_order_id"] == fills[0]["fill"]["client_order_id"]
    assert walked["signal"]["signal"]["id"] == walked["risk"]["signal_id"] == walked["order"]["signal_id"]
    shown = run_cli(platform, "trade", "trace", fills[0]["fill"]["id"])
    assert shown.returncode == 0 and "max_order_notional" in shown.stdout and "sma-cross" in shown.stdout

    again = run_cli(platform, "trade", "desk", "run", "--replay", "2016-02-12")
    assert again.returncode == 0 and "nothing to replay" in again.stdout


def test_halt_stops_new_orders_at_once_and_resume_takes_them_again(platform: Platform) -> None:
    _json(run_cli(platform, "trade", "desk", "run", "--replay", "2016-01-04", "--to", "2016-01-21", *NEW_DESK,
                  "--json"))
    halted = run_cli(platform, "trade", "halt", "--reason", "test halt")
    assert halted.returncode == 0, halted.stderr
    assert "engaged" in halted.stdout
    with platform.client() as admin:
        assert any(k.get("scope") == "bot:trade-execute" for k in admin.get("/v1/kill").json())
    orders_before = len(_records(platform, "orders"))
    # 2016-01-22 .. 2016-02-05: the desk has signals to trade on, and every order is blocked by the kill switch
    steps = _json(run_cli(platform, "trade", "desk", "run", "--replay", "2016-02-05", "--json"))
    assert steps and all(s["fills"] == [] and s["outcome"] == "no_orders" for s in steps)
    decisions = [d for d in _records(platform, "risk") if d["step"] > "2016-01-21"]
    assert decisions, "the halted days still produced signals and proposed orders"
    for d in decisions:
        assert d["decision"]["approved"] is False
        assert d["decision"]["rules"][0] == {"rule": "kill_switch", "passed": False,
                                             "detail": "the desk is halted (kill switch on): no new orders until it "
                                                       "resumes"}
    assert len(_records(platform, "orders")) == orders_before
    assert _json(run_cli(platform, "trade", "status", "--json"))["halted"] is True

    resumed = run_cli(platform, "trade", "resume")
    assert resumed.returncode == 0 and "released" in resumed.stdout, resumed.stdout + resumed.stderr
    with platform.client() as admin:
        assert not any(k.get("scope") == "bot:trade-execute" for k in admin.get("/v1/kill").json())
    later = _json(run_cli(platform, "trade", "desk", "run", "--replay", "2016-02-29", "--json"))
    assert any(s["fills"] for s in later)
    switches = _records(platform, "switches")
    assert [(s["halted"], s["reason"]) for s in switches] == [(True, "test halt"), (False, "resumed")]


def test_live_is_refused_without_both_gates_and_waits_for_approval_with_them(platform: Platform) -> None:
    _json(run_cli(platform, "trade", "desk", "run", "--replay", "2016-01-04", "--to", "2016-01-20", *NEW_DESK,
                  "--json"))
    assert run_cli(platform, "trade", "desk", "live", "on").returncode == 0
    refused = run_cli(platform, "trade", "desk", "run", "--replay", "2016-01-29")
    assert refused.returncode == 1
    assert "OSHAL_TRADING_LIVE=1 is not set" in refused.stderr and "refusing" in refused.stderr
    orders_before = len(_records(platform, "orders"))

    env = {**os.environ, "OSHAL_API_URL": platform.url, "OSHAL_API_KEY": platform.admin_key,
           "OSHAL_TRADING_LIVE": "1", "COLUMNS": "200"}
    gated = subprocess.run([sys.executable, "-m", "oshal.cli.main", "trade", "desk", "run", "--replay", "2016-01-29",
                            "--json"], env=env, capture_output=True, text=True, timeout=300)
    steps = _json(gated)
    assert steps[-1]["outcome"] == "awaiting_approval", steps  # a live step with orders stops at its gate
    with platform.client() as admin:
        ticket = admin.get(f"/v1/tickets/{steps[-1]['ticket']}").json()
    assert ticket["status"] == "approval_required" and ticket["input"]["mode"] == "live"
    assert len(_records(platform, "orders")) == orders_before  # nothing sent, nothing booked

    assert run_cli(platform, "trade", "desk", "live", "off").returncode == 0
    assert _json(run_cli(platform, "trade", "status", "--json"))["live"] is False


def test_a_service_killed_mid_session_runs_again_without_a_duplicate_order(platform: Platform) -> None:
    env = {**os.environ, "OSHAL_API_URL": platform.url, "OSHAL_API_KEY": platform.admin_key, "COLUMNS": "200"}
    service = subprocess.Popen([sys.executable, "-m", "oshal.cli.main", "trade", "desk", "run", "--replay",
                                "2016-01-04", "--to", "2016-02-29", *NEW_DESK], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not _records(platform, "fills"):  # killed once it has booked a fill, wherever it is then
            assert service.poll() is None, "the service ended before booking a fill"
            assert time.monotonic() < deadline, "no fill was booked in 120 s"
            time.sleep(0.05)
        os.kill(service.pid, signal.SIGKILL)
    finally:
        service.wait(30)
    _json(run_cli(platform, "trade", "desk", "run", "--replay", "2016-02-29", "--json"))
    expected = backtest.run(desk_config().backtest_config(), load_bundled(SYMBOLS), start=dt.date(2016, 1, 4),
                            end=dt.date(2016, 2, 29))
    fills = _records(platform, "fills")
    assert sorted(f["fill"]["id"] for f in fills) == sorted({f["fill"]["id"] for f in fills})
    assert len(fills) == len(expected.fills)
    assert len(_records(platform, "orders")) == len({f.client_order_id for f in expected.fills})
    assert _json(run_cli(platform, "trade", "pnl", "--json"))["equity"] == expected.equity[-1]


def test_errors_are_clear_and_exit_codes_follow_ops(platform: Platform) -> None:
    missing = run_cli(platform, "trade", "status", "--desk", "nope")
    assert missing.returncode == 4 and "no desk named 'nope'" in missing.stderr
    no_replay = run_cli(platform, "trade", "desk", "run")
    assert no_replay.returncode == 2 and "--replay" in no_replay.stderr
    new_without_symbols = run_cli(platform, "trade", "desk", "run", "--replay", "2016-01-04")
    assert new_without_symbols.returncode == 2 and "--symbols" in new_without_symbols.stderr
    bad_param = run_cli(platform, "trade", "desk", "run", "--replay", "2016-01-04", "--symbols", "AAPL",
                        "--param", "fast=0")
    assert bad_param.returncode == 2 and "fast" in bad_param.stderr
    env = {**os.environ, "OSHAL_API_URL": platform.url, "OSHAL_API_KEY": "osk_not_a_real_key", "COLUMNS": "200"}
    denied = subprocess.run([sys.executable, "-m", "oshal.cli.main", "trade", "status"], env=env,
                            capture_output=True, text=True, timeout=60)
    assert denied.returncode == 3, denied.stderr
