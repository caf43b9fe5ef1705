"""The ``oshal`` CLI as a real process against a real control plane and node host (see tests/conftest.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from oshal.bots.harnesses.deterministic import count_tokens
from oshal.bots.manifest import load_fleet

SRC = str(Path(__file__).resolve().parents[2] / "src")
UNREACHABLE = "http://127.0.0.1:9"


def run(platform: Any, *args: str, key: str | None = None, url: str | None = None, stdin: str | None = None,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("OSHAL_")}
    base.update({"OSHAL_API_URL": url or platform.url, "OSHAL_API_KEY": key or platform.admin_key,
                 "COLUMNS": "200",
                 "PYTHONPATH": os.pathsep.join(filter(None, [SRC, os.environ.get("PYTHONPATH")]))})
    base.update(env or {})
    return subprocess.run([sys.executable, "-m", "oshal.cli.main", *args], env=base, input=stdin,
                          capture_output=True, text=True, timeout=120)


def run_json(platform: Any, *args: str, key: str | None = None, code: int = 0) -> Any:
    proc = run(platform, *args, "--json", key=key)
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    return json.loads(proc.stdout)


def poll(fn: Any, until: Any, timeout: float = 15) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if until(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.2)


def test_submit_wait_json_returns_the_echoed_input(platform: Any) -> None:
    payload = {"hello": "world", "n": [1, 2, 3], "nested": {"ok": True}}
    proc = run(platform, "ticket", "submit", "echo", json.dumps(payload), "--wait", "30", "--json")
    assert proc.returncode == 0, proc.stderr
    ticket = json.loads(proc.stdout)  # exactly one JSON document on stdout; the spinner never touches it
    assert ticket["bot"] == "echo"
    assert ticket["status"] == "done"
    assert ticket["input"] == payload
    assert ticket["result"] == payload
    assert ticket["attempts"] == 1
    assert ticket["error"] is None


def test_submit_reads_stdin_and_input_file_and_honours_idempotency_key(platform: Any, tmp_path: Path) -> None:
    from_stdin = run(platform, "ticket", "submit", "echo", "-", "--wait", "30", "--json",
                     stdin='{"from": "stdin"}')
    assert from_stdin.returncode == 0, from_stdin.stderr
    assert json.loads(from_stdin.stdout)["result"] == {"from": "stdin"}

    path = tmp_path / "input.json"
    path.write_text('["a", 1, null]')
    first = run_json(platform, "ticket", "submit", "echo", "--input-file", str(path), "--key", "k-1")
    again = run_json(platform, "ticket", "submit", "echo", "--input-file", str(path), "--key", "k-1")
    assert first["created"] is True
    assert again == {**first, "created": False, "status": again["status"]}
    assert again["id"] == first["id"]


def test_show_list_and_cancel_real_tickets(platform: Any) -> None:
    done = run_json(platform, "ticket", "submit", "echo", '{"n": 1}', "--wait", "30")
    shown = run_json(platform, "ticket", "show", done["id"])
    assert shown["id"] == done["id"]
    assert shown["status"] == "done"
    assert shown["result"] == {"n": 1}

    # `idle` is registered but no replica runs it, so its tickets stay dispatched until cancelled.
    waiting = run_json(platform, "ticket", "submit", "idle", '{"n": 2}')
    assert waiting["status"] == "in_progress"
    assert waiting["created"] is True

    page = run_json(platform, "ticket", "list")
    assert [t["id"] for t in page["items"]] == [waiting["id"], done["id"]]
    assert page["next_cursor"] is None
    only_echo = run_json(platform, "ticket", "list", "--bot", "echo")
    assert [t["id"] for t in only_echo["items"]] == [done["id"]]
    first_page = run_json(platform, "ticket", "list", "--limit", "1")
    assert [t["id"] for t in first_page["items"]] == [waiting["id"]]
    second_page = run_json(platform, "ticket", "list", "--limit", "1", "--cursor", first_page["next_cursor"])
    assert [t["id"] for t in second_page["items"]] == [done["id"]]
    everything = run_json(platform, "ticket", "list", "--limit", "1", "--all")
    assert [t["id"] for t in everything["items"]] == [waiting["id"], done["id"]]

    table = run(platform, "ticket", "list", "--status", "in_progress")
    assert table.returncode == 0, table.stderr
    assert waiting["id"] in table.stdout
    assert done["id"] not in table.stdout

    cancelled = run_json(platform, "ticket", "cancel", waiting["id"])
    assert cancelled["status"] == "cancelled"
    assert run_json(platform, "ticket", "show", waiting["id"])["status"] == "cancelled"

    finished = run(platform, "ticket", "cancel", done["id"])
    assert finished.returncode == 6
    assert f"cannot cancel ticket {done['id']}: it is done" in finished.stderr

    missing = run(platform, "ticket", "show", "01a00000-0000-7000-8000-000000000000")
    assert missing.returncode == 4
    assert "ticket 01a00000-0000-7000-8000-000000000000 not found" in missing.stderr


def test_wait_on_a_cancelled_ticket_exits_1_and_an_unfinished_one_exits_8(platform: Any) -> None:
    slow = run(platform, "ticket", "submit", "idle", "{}", "--wait", "1", "--json")
    assert slow.returncode == 8, slow.stderr
    ticket = json.loads(slow.stdout)
    assert ticket["status"] == "in_progress"
    assert f"ticket {ticket['id']} is still in_progress after 1s" in slow.stderr

    again = run(platform, "ticket", "wait", ticket["id"], "--timeout", "0.5")
    assert again.returncode == 8

    run_json(platform, "ticket", "cancel", ticket["id"])
    waited = run(platform, "ticket", "wait", ticket["id"], "--json")
    assert waited.returncode == 1
    assert json.loads(waited.stdout)["status"] == "cancelled"
    assert f"ticket {ticket['id']} ended cancelled" in waited.stderr


def test_failed_ticket_exits_1_and_requeue_runs_it_again(platform: Any) -> None:
    failed = run(platform, "ticket", "submit", "summarizer", '{"x": 1}', "--wait", "30", "--json")
    assert failed.returncode == 1, failed.stderr
    ticket = json.loads(failed.stdout)
    assert ticket["status"] == "failed"
    assert ticket["error"] == "the summarize intent expects input.text (a string)"
    assert "ended failed: the summarize intent expects input.text (a string)" in failed.stderr
    assert f"oshal ticket requeue {ticket['id']}" in failed.stderr

    requeued = run_json(platform, "ticket", "requeue", ticket["id"])
    assert requeued["attempts"] == 2
    again = run(platform, "ticket", "wait", ticket["id"], "--timeout", "30", "--json")
    assert again.returncode == 1
    assert json.loads(again.stdout)["attempts"] == 2
    assert json.loads(again.stdout)["status"] == "failed"

    not_failed = run_json(platform, "ticket", "submit", "echo", "{}", "--wait", "30")
    refused = run(platform, "ticket", "requeue", not_failed["id"])
    assert refused.returncode == 6
    assert "requeue applies to dead_letter, escalated, failed" in refused.stderr


def test_invalid_json_input_exits_3_before_sending_anything(platform: Any, tmp_path: Path) -> None:
    bad = run(platform, "ticket", "submit", "echo", '{"a": }')
    assert bad.returncode == 3
    assert "INPUT_JSON is not valid JSON: Expecting value at line 1 column 7 (char 6)" in bad.stderr
    assert bad.stdout == ""
    # Against an unreachable API it still fails on the input (3), not on the connection (7): nothing was sent.
    offline = run(platform, "ticket", "submit", "echo", "[1, 2", url=UNREACHABLE)
    assert offline.returncode == 3
    assert "INPUT_JSON is not valid JSON: Expecting ',' delimiter at line 1 column 6 (char 5)" \
        in offline.stderr

    path = tmp_path / "bad.json"
    path.write_text("{\n  'single': 'quotes'\n}")
    from_file = run(platform, "ticket", "submit", "echo", "--input-file", str(path))
    assert from_file.returncode == 3
    assert f"input file {path} is not valid JSON: Expecting property name enclosed in double quotes at " \
           "line 2 column 3" in from_file.stderr

    assert run_json(platform, "ticket", "list")["items"] == []


def test_unknown_bot_exits_3_and_names_the_known_bots(platform: Any) -> None:
    proc = run(platform, "ticket", "submit", "nope", "{}")
    assert proc.returncode == 3
    assert "error: unknown bot 'nope'" in proc.stderr
    assert "known bots: architect, builder, echo" in proc.stderr
    assert run_json(platform, "ticket", "list")["items"] == []


def test_bad_key_exits_5(platform: Any) -> None:
    wrong = run(platform, "ticket", "list", key="osk_000000000000_not-a-real-secret")
    assert wrong.returncode == 5
    assert "error: invalid API key" in wrong.stderr
    malformed = run(platform, "bots", key="hunter2")
    assert malformed.returncode == 5
    assert "error: malformed API key" in malformed.stderr


def test_unreachable_api_exits_7(platform: Any) -> None:
    for args in (["ticket", "list"], ["status"], ["bots", "--json"]):
        proc = run(platform, *args, url=UNREACHABLE)
        assert proc.returncode == 7, (args, proc.stderr)
        assert f"cannot reach the oshal API at {UNREACHABLE}; is `make up` running?" in proc.stderr
        assert proc.stdout == ""


def test_missing_key_is_a_config_error(platform: Any, tmp_path: Path) -> None:
    proc = run(platform, "bots", env={"OSHAL_API_KEY": "", "OSHAL_HOME": str(tmp_path)})
    assert proc.returncode == 9
    assert f"no API key: OSHAL_API_KEY is unset and {tmp_path / 'admin.key'} is missing" in proc.stderr
    assert "run `make up` or set OSHAL_API_KEY" in proc.stderr
    # The admin key file that `oshal up` writes is the fallback.
    (tmp_path / "admin.key").write_text(platform.admin_key + "\n")
    from_file = run(platform, "bots", "--json", env={"OSHAL_API_KEY": "", "OSHAL_HOME": str(tmp_path)})
    assert from_file.returncode == 0, from_file.stderr
    assert "echo" in {b["name"] for b in json.loads(from_file.stdout)}


def test_tenant_and_member_key_and_member_cannot_administer(platform: Any) -> None:
    tenant = run_json(platform, "tenant", "create", "acme")
    assert tenant["name"] == "acme"
    assert {t["name"] for t in run_json(platform, "tenant", "list")} == {"system", "acme"}
    duplicate = run(platform, "tenant", "create", "acme")
    assert duplicate.returncode == 6

    created = run(platform, "key", "create", "--tenant", "acme", "--role", "member", "--name", "ci")
    assert created.returncode == 0, created.stderr
    assert "store this key now; it is not shown again" in created.stderr
    member = run_json(platform, "key", "create", "--tenant", "acme", "--name", "bot",
                      "--expires-in-days", "7")
    assert member["role"] == "member"
    assert member["tenant_id"] == tenant["id"]
    assert member["name"] == "bot"
    assert member["key"].startswith(f"osk_{member['prefix']}_")
    assert member["expires_at"] is not None

    forbidden = run(platform, "tenant", "create", "evil", key=member["key"])
    assert forbidden.returncode == 5
    assert "error: this is a platform control: it needs an operator key of the system tenant" in forbidden.stderr
    assert run(platform, "key", "list", key=member["key"]).returncode == 5

    status = run_json(platform, "status", key=member["key"])
    assert status["whoami"]["role"] == "member"
    assert status["whoami"]["tenant_id"] == tenant["id"]
    mine = run_json(platform, "ticket", "submit", "echo", '{"tenant": "acme"}', "--wait", "30",
                    key=member["key"])
    assert mine["result"] == {"tenant": "acme"}
    run_json(platform, "ticket", "submit", "echo", "{}", "--wait", "30")  # the system tenant's own ticket
    assert [t["id"] for t in run_json(platform, "ticket", "list", key=member["key"])["items"]] == [mine["id"]]


def test_revoked_key_exits_5(platform: Any) -> None:
    run_json(platform, "tenant", "create", "globex")
    key = run_json(platform, "key", "create", "--tenant", "globex", "--role", "member")
    assert run(platform, "bots", key=key["key"]).returncode == 0

    listed = run_json(platform, "key", "list", "--tenant", "globex")
    assert [(k["id"], k["revoked_at"]) for k in listed] == [(key["id"], None)]
    revoked = run_json(platform, "key", "revoke", key["id"], "--tenant", "globex")
    assert revoked["id"] == key["id"]
    assert revoked["revoked_at"] is not None

    refused = run(platform, "bots", key=key["key"])
    assert refused.returncode == 5
    assert "error: API key has been revoked" in refused.stderr
    assert run_json(platform, "key", "list", "--tenant", "globex")[0]["revoked_at"] == revoked["revoked_at"]
    unknown = run(platform, "key", "revoke", key["id"])  # not in the caller's (system) tenant
    assert unknown.returncode == 4


def test_bots_json_lists_echo_online(platform: Any) -> None:
    bots = {b["name"]: b for b in run_json(platform, "bots")}
    assert bots["echo"]["status"] == "online"
    assert bots["echo"]["replicas"] == 1
    assert bots["echo"]["replicas_desired"] == 1
    assert bots["echo"]["harness"] == "deterministic"
    assert bots["echo"]["model"] == "deterministic-echo"
    assert bots["idle"]["status"] == "offline"
    table = run(platform, "bots")
    assert table.returncode == 0
    assert "deterministic-echo" in table.stdout
    assert "1/1" in table.stdout


def test_status_reports_health_identity_bots_and_ticket_counts(platform: Any) -> None:
    run_json(platform, "ticket", "submit", "echo", "{}", "--wait", "30")
    waiting = run_json(platform, "ticket", "submit", "idle", "{}")
    run_json(platform, "ticket", "cancel", waiting["id"])
    status = run_json(platform, "status")
    assert status["api_url"] == platform.url
    assert status["health"] == {"status": "ok"}
    assert status["ready"]["status"] == "ready"
    assert status["ready"]["checks"] == {"postgres": "ok", "redis": "ok"}
    assert all(engine["ready"] and engine["error"] is None for engine in status["ready"]["engines"].values())
    assert status["whoami"]["role"] == "operator"
    assert status["whoami"]["tenant"] == "system"
    online = {b["name"] for b in run_json(platform, "bots") if b["status"] == "online"}
    assert status["bots"]["online"] == len(online)
    assert status["dead_letters"] == 0
    assert status["tickets"] == {"backlog": 0, "approved": 0, "in_progress": 0, "approval_required": 0,
                                 "customer_action": 0, "paused": 0, "done": 1, "failed": 0, "escalated": 0,
                                 "dead_letter": 0, "cancelled": 1}
    table = run(platform, "status")
    assert table.returncode == 0, table.stderr
    assert f"api           {platform.url}" in table.stdout
    assert "dead letters  0" in table.stdout


def test_ledger_shows_the_call_of_a_submitted_ticket(platform: Any) -> None:
    payload = {"text": "count these words please"}
    ticket = run_json(platform, "ticket", "submit", "echo", json.dumps(payload), "--wait", "30")
    page = poll(lambda: run_json(platform, "ledger", "--ticket", ticket["id"]), lambda p: p["items"])
    [row] = page["items"]
    persona = load_fleet(platform.fleet_dir)["echo"].persona
    tokens = count_tokens(json.dumps(payload, sort_keys=True))
    assert row["ticket_id"] == ticket["id"]
    assert row["bot"] == "echo"
    assert (row["provider"], row["model"], row["attempt"]) == ("deterministic", "deterministic-echo", 1)
    assert row["input_tokens"] == count_tokens(persona) + tokens
    assert row["output_tokens"] == tokens
    assert row["cost_micros"] == 0
    assert [r["ticket_id"] for r in run_json(platform, "ledger", "--bot", "echo", "--since", "1h")["items"]] \
        == [ticket["id"]]
    assert run_json(platform, "ledger", "--bot", "summarizer")["items"] == []
    bad_since = run(platform, "ledger", "--since", "yesterday")
    assert bad_since.returncode == 3
    assert "--since 'yesterday' is neither an ISO 8601 time nor an age" in bad_since.stderr


def test_ledger_summary_by_bot(platform: Any) -> None:
    for _ in range(2):
        run_json(platform, "ticket", "submit", "echo", '{"x": 1}', "--wait", "30")
    run_json(platform, "ticket", "submit", "extractor", '{"text": "mail ops@example.com"}', "--wait", "30")
    summary = poll(lambda: run_json(platform, "ledger", "--summary", "--by", "bot"),
                   lambda s: sum(r["calls"] for r in s["rows"]) >= 3)
    assert summary["by"] == "bot"
    assert {r["key"]: r["calls"] for r in summary["rows"]} == {"echo": 2, "extractor": 1}
    assert summary["total_micros"] == 0
    assert summary["total_usd"] == "0.000000"
    by_model = run_json(platform, "ledger", "--by", "model")
    assert {r["key"] for r in by_model["rows"]} == {"deterministic/deterministic-echo",
                                                     "deterministic/deterministic-extract"}
    table = run(platform, "ledger", "--summary")
    assert table.returncode == 0, table.stderr
    assert "ledger by bot" in table.stdout
    assert "extractor" in table.stdout
    assert "$0.000000" in table.stdout


def test_wide_shows_whole_ids_however_narrow_the_terminal(platform: Any) -> None:
    ticket = run_json(platform, "ticket", "submit", "echo", '{"wide": 1}', "--wait", "10")
    with platform.client() as api:
        admin_key = api.get("/v1/whoami").json()["key_id"]
        head = 0
        while page := api.get("/v1/audit", params={"after": head, "limit": 10_000}).json():
            head = page[-1]["seq"]
    run_json(platform, "tenant", "create", "widecorp")  # an audited action, by the admin key, after ``head``
    narrow = {"COLUMNS": "40"}
    recent = ("audit", "list", "--after", str(head))
    assert f"key:{admin_key}" in run(platform, *recent, "--json").stdout  # the entry is in the listing ...
    cut = run(platform, *recent, env=narrow)
    assert cut.returncode == 0 and f"key:{admin_key}" not in cut.stdout  # ... but too narrow: the id is cut
    for args, whole in ((recent, f"key:{admin_key}"), (("ticket", "list"), ticket["id"]),
                        (("tenant", "list"), run_json(platform, "tenant", "list")[-1]["id"])):
        wide = run(platform, *args, "--wide", env=narrow)
        assert wide.returncode == 0, wide.stderr
        assert whole in wide.stdout, (args, wide.stdout)  # --wide shows it whole
