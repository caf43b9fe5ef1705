"""The audit log: what is audited, that it is append-only, and that verify finds any edit, deletion or rewrite."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest

from conftest import Platform, make_tenant
from oshal.audit import trail


def _entries(platform: Platform, after: int = 0) -> list[dict[str, Any]]:
    with platform.client() as admin:
        response = admin.get("/v1/audit", params={"after": after, "limit": 10_000})
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def _head(platform: Platform) -> int:
    with platform.superuser() as conn:
        return int(conn.execute("SELECT seq FROM audit_chain").fetchone()[0])


def _verify(platform: Platform) -> dict[str, Any]:
    with platform.client() as admin:
        response = admin.post("/v1/audit/verify")
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def cut_off(platform: Platform) -> None:
    """Cut the log off behind whatever a test did to it, as an operator would after investigating: the remaining
    chain starts fresh from a recorded point, and the anchor file restarts with a retention record up to it."""
    with platform.superuser() as conn:
        conn.execute("SET session_replication_role = replica")  # the append-only triggers step aside
        conn.execute("DELETE FROM audit_log")
        conn.execute("DELETE FROM audit_anchors")
        head = conn.execute("UPDATE audit_chain SET pruned_seq = seq, pruned_hash = hash RETURNING seq").fetchone()
    anchors = platform.plane.audit_anchors
    anchors.path.parent.mkdir(parents=True, exist_ok=True)
    anchors.path.write_text("")
    platform.on_plane(anchors.allow_prune(int(head[0])))


@pytest.fixture
def repaired(platform: Platform) -> Iterator[None]:
    """Tampering tests break the chain on purpose; afterwards the log is cut off behind the damage."""
    yield
    cut_off(platform)


def test_security_relevant_actions_are_audited_in_order(platform: Platform) -> None:
    start = _head(platform)
    ops = make_tenant(platform, "audited", role="operator")
    bad = httpx.get(f"{platform.url}/v1/tickets", headers={"Authorization": "Bearer osk_000000000000_nope"})
    assert bad.status_code == 401
    # A tenant's operator sees its own tenant's entries only.
    own = ops.http.get("/v1/audit", params={"after": start}).json()
    assert own and {e["tenant_id"] for e in own} == {ops.tenant_id}
    with platform.client() as admin:
        assert admin.post("/v1/kill", json={"bot": "idle", "reason": "audit test"}).status_code == 201
        assert admin.delete("/v1/kill/idle").status_code == 200
        key_id = admin.get("/v1/keys", params={"tenant": "audited"}).json()[0]["id"]
        assert admin.delete(f"/v1/keys/{key_id}", params={"tenant": "audited"}).status_code == 200
    platform.on_plane(platform.plane.auth.failures.flush())
    actions = [e["action"] for e in _entries(platform, start)]
    for expected in ("tenant.create", "key.create", "kill_switch.engage", "kill_switch.release", "key.revoke",
                     "auth.failure", "operator.post", "operator.delete"):
        assert expected in actions, (expected, actions)
    failure = next(e for e in _entries(platform, start) if e["action"] == "auth.failure")
    assert failure["actor"] == "key:000000000000" and failure["target"] == "invalid API key"
    assert "nope" not in json.dumps(failure)  # the presented secret is never recorded


def test_the_log_is_append_only_even_for_its_owner(platform: Platform) -> None:
    platform.on_plane(trail.record_now(platform.plane.db, trail.Entry(None, "test", "test.entry", "x", {})))
    platform.on_plane(trail.anchor(platform.plane.db, platform.plane.audit_anchors))  # rows in each table
    with platform.owner() as conn:  # the owner no longer owns the audit tables: it may not touch them at all
        for statement in ("UPDATE audit_log SET actor = 'someone else'", "DELETE FROM audit_log",
                          "TRUNCATE audit_log", "DELETE FROM audit_anchors", "UPDATE audit_chain SET seq = 0"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
    with platform.superuser() as conn:  # and the triggers refuse everyone else who is not the keeper role
        for statement in ("UPDATE audit_log SET actor = 'someone else'", "DELETE FROM audit_log",
                          "TRUNCATE audit_log", "DELETE FROM audit_anchors", "TRUNCATE audit_anchors"):
            with pytest.raises(psycopg.DatabaseError, match="append-only"):
                conn.execute(statement)
    with platform.client() as admin:
        assert admin.post("/v1/audit/verify").json()["intact"] is True


def test_an_edited_entry_is_detected(platform: Platform, repaired: None) -> None:
    platform.on_plane(trail.record_now(platform.plane.db, trail.Entry(None, "test", "test.entry", "x", {"n": 1})))
    platform.on_plane(trail.record_now(platform.plane.db, trail.Entry(None, "test", "test.entry", "y", {"n": 2})))
    assert _verify(platform)["intact"] is True
    target = _head(platform) - 1
    with platform.superuser() as conn:
        conn.execute("SET session_replication_role = replica")
        conn.execute("UPDATE audit_log SET detail = '{\"n\": 99}' WHERE seq = %s", (target,))
    report = _verify(platform)
    assert report["intact"] is False
    assert {"seq": target, "problem": "entry does not match its hash (edited)"} in report["problems"]


def test_a_deleted_entry_is_detected(platform: Platform, repaired: None) -> None:
    for n in range(3):
        platform.on_plane(trail.record_now(platform.plane.db, trail.Entry(None, "test", "test.entry", str(n), {})))
    middle = _head(platform) - 1
    with platform.superuser() as conn:
        conn.execute("SET session_replication_role = replica")
        conn.execute("DELETE FROM audit_log WHERE seq = %s", (middle,))
    report = _verify(platform)
    assert not report["intact"]
    assert any(p["seq"] == middle + 1 and "broken" in p["problem"] for p in report["problems"])


def test_a_rewritten_chain_is_caught_by_its_anchor(platform: Platform, repaired: None) -> None:
    """An attacker with database rights who edits an entry and recomputes every hash after it leaves a chain
    that verifies on its own; the anchor, MACed with a key outside the database, no longer matches."""
    platform.on_plane(trail.record_now(platform.plane.db, trail.Entry(None, "test", "test.entry", "a", {})))
    platform.on_plane(trail.anchor(platform.plane.db, platform.plane.audit_anchors))
    target = _head(platform)
    with platform.superuser() as conn:
        conn.execute("SET session_replication_role = replica")
        conn.execute("UPDATE audit_log SET target = 'forged' WHERE seq = %s", (target,))
        conn.execute("UPDATE audit_log SET hash = oshal_audit_digest(prev_hash, seq, at, tenant_id, actor, action, "
                     "target, detail) WHERE seq = %s", (target,))
        conn.execute("UPDATE audit_chain SET hash = (SELECT hash FROM audit_log WHERE seq = %s)", (target,))
        links = conn.execute("SELECT count(*) FROM oshal_audit_verify()").fetchone()[0]
    assert links == 0  # the chain itself is consistent again
    report = _verify(platform)
    assert not report["intact"]
    assert {"seq": target, "problem": "chain no longer passes through this anchor (rewritten)"} in report["problems"]
    assert {p["seq"] for p in report["problems"]} == {target}  # the database's anchor and the file's


def test_retention_prunes_old_entries_and_the_rest_still_verifies(platform: Platform) -> None:
    cut_off(platform)  # only this test's entries from here on
    for n in range(3):
        platform.on_plane(trail.record_now(platform.plane.db, trail.Entry(None, "test", "test.old", str(n), {})))
    cut = _head(platform)
    with platform.superuser() as conn:  # age the first entries (the hash covers the time, so re-hash them)
        conn.execute("SET session_replication_role = replica")
        conn.execute("UPDATE audit_log SET at = at - interval '400 days' WHERE seq <= %s", (cut,))
        rows = conn.execute("SELECT seq FROM audit_log WHERE seq >= (SELECT min(seq) FROM audit_log) ORDER BY seq"
                            ).fetchall()
        for (seq,) in rows:
            conn.execute("UPDATE audit_log l SET prev_hash = coalesce((SELECT hash FROM audit_log p WHERE p.seq = "
                         "l.seq - 1), (SELECT pruned_hash FROM audit_chain)) WHERE seq = %s", (seq,))
            conn.execute("UPDATE audit_log SET hash = oshal_audit_digest(prev_hash, seq, at, tenant_id, actor, "
                         "action, target, detail) WHERE seq = %s", (seq,))
        conn.execute("UPDATE audit_chain SET hash = (SELECT hash FROM audit_log ORDER BY seq DESC LIMIT 1)")
        conn.execute("DELETE FROM audit_anchors")
    anchors = platform.plane.audit_anchors
    anchors.path.write_text("")  # anchors of the entries before they were aged no longer hold
    assert platform.on_plane(trail.anchor(platform.plane.db, anchors)) == cut  # an anchor retention will remove
    platform.on_plane(trail.record_now(platform.plane.db, trail.Entry(None, "test", "test.new", "kept", {})))
    platform.on_plane(trail.anchor(platform.plane.db, anchors))
    assert _verify(platform)["intact"] is True
    # The floor holds in the database too, whoever calls the function; the owner may not call it at all.
    with psycopg.connect(platform.engines.api_url, autocommit=True) as conn, pytest.raises(
            psycopg.DatabaseError, match="kept at least 30 days"):
        conn.execute("SELECT oshal_audit_prune(now() - interval '1 day')")
    with platform.owner() as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("SELECT oshal_audit_prune(now() - interval '400 days')")
    with platform.client() as admin:
        too_soon = admin.post("/v1/audit/prune", json={"older_than_days": 7})
        assert too_soon.status_code == 422 and "older_than_days" in too_soon.text
        removed = admin.post("/v1/audit/prune", json={"older_than_days": 365}).json()["removed"]
    assert removed == 3
    report = _verify(platform)
    assert report["intact"] is True and report["pruned_through"] == cut, report
    kept = [e for e in _entries(platform) if e["action"].startswith("test.")]
    assert [e["target"] for e in kept] == ["kept"]
    assert any(e["action"] == "audit.pruned" for e in _entries(platform))  # the prune is itself in the chain
    # Retention was recorded outside the database before it ran, which is what lets the anchor at the cut go.
    lines = [json.loads(line) for line in anchors.path.read_text().splitlines()]
    assert {"pruned_through": cut} in [{k: v for k, v in line.items() if k == "pruned_through"} for line in lines]


def test_export_is_json_lines_that_re_verify_outside_the_platform(platform: Platform) -> None:
    platform.on_plane(trail.record_now(platform.plane.db, trail.Entry(None, "test", "test.export", "x",
                                                                      {"ü": [1, 2]})))
    with platform.client() as admin:
        response = admin.get("/v1/audit/export")
    assert response.status_code == 200 and response.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert lines and lines[-1]["action"] == "test.export" and lines[-1]["detail"] == {"ü": [1, 2]}
    # Each exported entry links to the one before it.
    for before, after in itertools.pairwise(lines):
        assert after["prev_hash"] == before["hash"] and after["seq"] == before["seq"] + 1


def test_entries_since_a_time_are_only_those_written_from_then_on(platform: Platform) -> None:
    tenant = make_tenant(platform, "since-co", role="operator")
    with platform.client() as admin:
        admin.post("/v1/kill", json={"bot": "idle", "reason": "before the cut"})
        admin.delete("/v1/kill/idle")
        cut = admin.get("/v1/audit", params={"limit": 10_000}).json()[-1]["at"]
        time.sleep(0.05)
        admin.post("/v1/kill", json={"bot": "idle", "reason": "after the cut"})
        admin.delete("/v1/kill/idle")
        later = admin.get("/v1/audit", params={"since": cut.replace("+00:00", "Z")}).json()
        assert later and all(e["at"] >= cut for e in later)
        assert any(e["target"] == "/v1/kill" or "idle" in e["target"] for e in later)
        assert not any("before the cut" in json.dumps(e["detail"]) for e in later)
        assert admin.get("/v1/audit", params={"since": "2026-01-01T00:00:00"}).status_code == 422  # no zone
    own = tenant.http.get("/v1/audit", params={"since": cut.replace("+00:00", "Z")})
    assert own.status_code == 200 and all(e["tenant_id"] == tenant.tenant_id for e in own.json())
    tenant.http.close()
