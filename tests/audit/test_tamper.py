"""The audit log against the people who run its database, one tamper case at a time.

The attacker is the database owner (``platform.owner()``, the role migrations run as) or a superuser. The owner
is refused outright; whatever a superuser does, `oshal audit verify` (the real CLI, against the real API) exits 1.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from pydantic import SecretStr
from test_trail import cut_off

from conftest import Platform
from external.fake_s3 import FakeS3
from oshal.audit import trail
from oshal.audit.anchors import AnchorLog
from oshal.audit.seal import KEEPER_ROLE, migrate_sealed, seal, unseal
from oshal.security import rls
from oshal.store.migrate import API_ROLE, OWNER_ROLE, REPORT_ROLE
from oshal.store.objects import S3ObjectStore

SRC = str(Path(__file__).resolve().parents[2] / "src")


def cli(platform: Platform, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OSHAL_")}
    env.update({"OSHAL_API_URL": platform.url, "OSHAL_API_KEY": platform.admin_key, "OSHAL_HOME": str(platform.home),
                "PYTHONPATH": os.pathsep.join(filter(None, [SRC, os.environ.get("PYTHONPATH")]))})
    return subprocess.run([sys.executable, "-m", "oshal.cli.main", *args], env=env, capture_output=True, text=True,
                          timeout=120)


def verify_cli(platform: Platform) -> tuple[int, dict[str, Any]]:
    """`oshal audit verify --json` as a separate process: its exit code and report."""
    proc = cli(platform, "audit", "verify", "--json")
    assert proc.returncode in (0, 1), (proc.returncode, proc.stdout, proc.stderr)
    return proc.returncode, json.loads(proc.stdout)


def problems(report: dict[str, Any], seq: int | None) -> list[str]:
    """The problems reported for entry ``seq`` (None: those about the log's set-up, not one entry)."""
    return [p["problem"] for p in report["problems"] if p["seq"] == seq]


def record_anchored(platform: Platform, count: int) -> list[int]:
    """Append ``count`` entries, anchoring the head after each (as the platform's loop does); their seqs."""
    seqs = []
    for n in range(count):
        platform.on_plane(trail.record_now(platform.plane.db, trail.Entry(None, "test", "test.tamper", str(n),
                                                                          {"n": n})))
        seqs.append(platform.on_plane(trail.anchor(platform.plane.db, platform.plane.audit_anchors)))
    return seqs


def superuser_rewrite(conn: psycopg.Connection[Any], seq: int) -> None:
    """Forge entry ``seq`` and re-chain everything after it, so the chain checks out on its own again."""
    conn.execute("SET session_replication_role = replica")  # triggers stay enabled in the catalog, yet do not fire
    conn.execute("UPDATE audit_log SET target = 'forged' WHERE seq = %s", (seq,))
    for (s,) in conn.execute("SELECT seq FROM audit_log WHERE seq >= %s ORDER BY seq", (seq,)).fetchall():
        conn.execute("UPDATE audit_log l SET prev_hash = coalesce((SELECT hash FROM audit_log p WHERE p.seq = "
                     "l.seq - 1), (SELECT pruned_hash FROM audit_chain)) WHERE seq = %s", (s,))
        conn.execute("UPDATE audit_log SET hash = oshal_audit_digest(prev_hash, seq, at, tenant_id, actor, action, "
                     "target, detail) WHERE seq = %s", (s,))
    conn.execute("UPDATE audit_chain SET hash = (SELECT hash FROM audit_log ORDER BY seq DESC LIMIT 1)")


def chain_links_hold(conn: psycopg.Connection[Any]) -> bool:
    return int(conn.execute("SELECT count(*) FROM oshal_audit_verify()").fetchone()[0]) == 0


@pytest.fixture
def repaired(platform: Platform) -> Iterator[None]:
    yield
    cut_off(platform)


@pytest.fixture
def resealed(platform: Platform) -> Iterator[None]:
    """Whatever a test undoes as superuser is sealed again afterwards, as the next start-up would."""
    try:
        yield
    finally:
        assert platform.engines.postgres is not None
        seal(platform.engines.postgres.url(database="oshal"))


# --- the baseline ---------------------------------------------------------------------------------------------


def test_a_fresh_platform_verifies_clean_and_sealed(platform: Platform) -> None:
    record_anchored(platform, 1)
    code, report = verify_cli(platform)
    assert code == 0 and report["intact"] is True, report
    with platform.superuser() as conn:
        owners = dict(conn.execute("SELECT relname, pg_get_userbyid(relowner) FROM pg_class WHERE relname IN "
                                   "('audit_log', 'audit_chain', 'audit_anchors')").fetchall())
        keeper = conn.execute("SELECT rolcanlogin, rolsuper FROM pg_roles WHERE rolname = %s",
                              (KEEPER_ROLE,)).fetchone()
    assert owners == dict.fromkeys(("audit_log", "audit_chain", "audit_anchors"), KEEPER_ROLE)
    assert keeper == (False, False)
    # `oshal security verify` checks the seal as well, and finds it intact.
    urls = {API_ROLE: platform.engines.api_url, REPORT_ROLE: str(platform.engines.report_url)}
    sec = platform.on_plane(rls.verify(platform.engines.owner_url, urls))
    assert sec.ok and sec.checked["audit_sealed"] is True, sec.problems


def test_verify_writes_no_anchor(platform: Platform) -> None:
    """The route used to anchor the head before checking, which blessed whatever the head had become."""
    anchors = platform.plane.audit_anchors
    for _ in range(3):  # the platform's own loop anchors every few seconds; it must not be what we see
        platform.on_plane(trail.record_now(platform.plane.db, trail.Entry(None, "test", "test.unanchored", "x", {})))
        with platform.superuser() as conn:
            head = int(conn.execute("SELECT seq FROM audit_chain").fetchone()[0])
        lines_before = anchors.path.read_text() if anchors.path.exists() else ""
        with platform.client() as admin:
            assert admin.post("/v1/audit/verify").status_code == 200
        with platform.superuser() as conn:
            in_db = conn.execute("SELECT count(*) FROM audit_anchors WHERE seq = %s", (head,)).fetchone()[0]
        lines_after = anchors.path.read_text() if anchors.path.exists() else ""
        if in_db == 0 and lines_after == lines_before:
            return
    pytest.fail("every verify was followed by an anchor of the unanchored head")


# --- the tamper cases of issue 11 -----------------------------------------------------------------------------


def test_the_prune_setting_no_longer_opens_the_log(platform: Platform) -> None:
    record_anchored(platform, 2)
    with platform.owner() as conn, conn.transaction():
        conn.execute("SELECT set_config('oshal.audit_prune', 'on', true)")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("DELETE FROM audit_log")
    with platform.superuser() as conn, conn.transaction():  # not even for a superuser: it is no switch any more
        conn.execute("SELECT set_config('oshal.audit_prune', 'on', true)")
        with pytest.raises(psycopg.DatabaseError, match="append-only"):
            conn.execute("DELETE FROM audit_log")
    code, report = verify_cli(platform)
    assert code == 0, report


def test_the_keeper_never_runs_code_the_owner_can_replace(platform: Platform) -> None:
    """The readers call the owner's tenant-scope check; they stay the owner's, so an owner who rewrites that check
    to delete entries runs it with its own rights, which the log refuses, not with the keeper's."""
    record_anchored(platform, 2)
    signature = "oshal_require_scope(text,uuid)"
    with platform.superuser() as su:
        original = su.execute("SELECT pg_get_functiondef(%s::regprocedure)", (signature,)).fetchone()[0]
    with platform.owner() as conn:
        conn.execute("CREATE OR REPLACE FUNCTION oshal_require_scope(p_function text, p_tenant uuid) RETURNS void "
                     "LANGUAGE sql VOLATILE AS $$ DELETE FROM audit_log WHERE seq = (SELECT max(seq) FROM audit_log) "
                     "$$")
    try:
        with platform.client() as admin:  # the platform's reader runs the replaced check: with the owner's rights
            refused = admin.get("/v1/audit")
        assert refused.status_code == 500 and refused.json()["error"] == "internal"
    finally:
        with platform.superuser() as su:
            su.execute(original)
    code, report = verify_cli(platform)
    assert code == 0 and report["intact"] is True, report


def test_the_owner_cannot_disable_alter_or_drop_the_log(platform: Platform) -> None:
    record_anchored(platform, 1)
    with platform.owner() as conn:
        for statement in ("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only",
                          "ALTER TABLE audit_log DISABLE TRIGGER ALL",
                          "ALTER TABLE audit_log OWNER TO oshal_owner",
                          "ALTER TABLE audit_log NO FORCE ROW LEVEL SECURITY",
                          "CREATE OR REPLACE FUNCTION oshal_audit_append_only() RETURNS trigger LANGUAGE plpgsql "
                          "AS $$ BEGIN RETURN OLD; END $$",
                          "DROP TRIGGER audit_log_append_only ON audit_log",
                          f"GRANT {KEEPER_ROLE} TO {OWNER_ROLE}",
                          f"SET ROLE {KEEPER_ROLE}"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
        # It owns the schema, and a schema's owner may drop what is in it: the drop guard refuses.
        for statement in ("DROP TABLE audit_log CASCADE", "DROP TABLE audit_anchors CASCADE",
                          "DROP FUNCTION oshal_audit_prune(timestamptz)"):
            with pytest.raises(psycopg.DatabaseError, match="cannot be dropped"):
                conn.execute(statement)
        with conn.transaction():  # nor after renaming the schema away (rolled back: the platform needs public)
            conn.execute("ALTER SCHEMA public RENAME TO elsewhere")
            with pytest.raises(psycopg.DatabaseError, match="cannot be dropped"):
                conn.execute("DROP TABLE elsewhere.audit_anchors CASCADE")
            raise psycopg.Rollback
    code, report = verify_cli(platform)
    assert code == 0, report


def test_a_trigger_disabled_by_a_superuser_is_detected(platform: Platform, resealed: None) -> None:
    record_anchored(platform, 1)
    with platform.superuser() as conn:
        conn.execute("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only")
    code, report = verify_cli(platform)
    assert code == 1
    disabled = "trigger audit_log_append_only on audit_log is disabled (tgenabled = 'D')"
    assert disabled in problems(report, None)
    urls = {API_ROLE: platform.engines.api_url, REPORT_ROLE: str(platform.engines.report_url)}
    sec = platform.on_plane(rls.verify(platform.engines.owner_url, urls))  # `oshal security verify`
    assert f"audit log: {disabled}" in sec.problems
    with platform.client() as admin:  # `oshal security verify --api`, and the posture scan, which files it
        via_api = admin.post("/v1/security/verify").json()
        assert via_api["ok"] is False and f"audit log: {disabled}" in via_api["problems"]
        assert admin.post("/v1/security/scan", json={"scans": ["posture"]}, timeout=300).status_code == 200
        found = [f for f in admin.get("/v1/security/findings").json() if f["check_id"] == "audit.seal"]
    assert [f["title"] for f in found] == [f"the audit log is open to its database owner: {disabled}"]


def test_an_owner_handed_back_by_a_superuser_is_detected_and_audit_seal_restores_it(platform: Platform,
                                                                                     resealed: None) -> None:
    with platform.superuser() as conn:
        conn.execute(f"ALTER TABLE audit_anchors OWNER TO {OWNER_ROLE}")
        conn.execute(f"ALTER FUNCTION oshal_audit_append_only() OWNER TO {OWNER_ROLE}")
        conn.execute("ALTER EVENT TRIGGER oshal_audit_drop_guard DISABLE")
    code, report = verify_cli(platform)
    assert code == 1
    found = problems(report, None)
    assert f"table audit_anchors is owned by {OWNER_ROLE}, not {KEEPER_ROLE}" in found
    assert f"function oshal_audit_append_only() is owned by {OWNER_ROLE}, not {KEEPER_ROLE}" in found
    assert "event trigger oshal_audit_drop_guard is disabled (evtenabled = 'D')" in found
    sealed = cli(platform, "audit", "seal")
    assert sealed.returncode == 0, sealed.stderr
    code, report = verify_cli(platform)
    assert code == 0, report


def test_unsealing_for_a_migration_and_sealing_again(platform: Platform, resealed: None) -> None:
    """Start-up with pending migrations gives the audit objects back to the owner, migrates, and seals again."""
    assert platform.engines.postgres is not None
    superuser = platform.engines.postgres.url(database="oshal")
    unseal(superuser)
    with platform.owner() as conn:  # what a migration may now do
        conn.execute("COMMENT ON TABLE audit_log IS 'changed by a migration'")
    code, report = verify_cli(platform)
    assert code == 1 and f"table audit_log is owned by {OWNER_ROLE}, not {KEEPER_ROLE}" in problems(report, None)
    assert migrate_sealed(platform.engines.owner_url, superuser) == []
    code, report = verify_cli(platform)
    assert code == 0, report


def test_a_truncated_tail_with_its_anchors_deleted_is_detected(platform: Platform, repaired: None) -> None:
    """Delete the last entries, move the chain head back to what is left, delete the later database anchors: the
    chain checks out on its own and every database anchor still matches; the anchor file does not."""
    seqs = record_anchored(platform, 3)
    keep = seqs[0]
    with platform.owner() as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("DELETE FROM audit_log WHERE seq > %s", (keep,))  # the owner cannot even start
    with platform.superuser() as conn:
        conn.execute("SET session_replication_role = replica")
        conn.execute("DELETE FROM audit_log WHERE seq > %s", (keep,))
        conn.execute("UPDATE audit_chain SET seq = l.seq, hash = l.hash FROM audit_log l WHERE l.seq = %s", (keep,))
        conn.execute("DELETE FROM audit_anchors WHERE seq > %s", (keep,))
        assert chain_links_hold(conn)
    code, report = verify_cli(platform)
    assert code == 1
    # Past the head; or, once new entries (the verify request's own audit entry) took those numbers, rewritten.
    gone = ("past the chain head", "chain no longer passes through this anchor (rewritten)")
    for seq in seqs[1:]:
        assert any(g in p for g in gone for p in problems(report, seq)), report["problems"]
        assert any("anchor missing from the database" in p for p in problems(report, seq))


def test_a_rewritten_and_re_chained_entry_with_its_anchors_deleted_is_detected(platform: Platform,
                                                                                repaired: None) -> None:
    seqs = record_anchored(platform, 3)
    target = seqs[0]
    with platform.owner() as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("UPDATE audit_log SET target = 'forged' WHERE seq = %s", (target,))
    with platform.superuser() as conn:
        superuser_rewrite(conn, target)
        conn.execute("DELETE FROM audit_anchors WHERE seq >= %s", (target,))
        assert chain_links_hold(conn)
    code, report = verify_cli(platform)
    assert code == 1
    for seq in seqs:
        found = problems(report, seq)
        assert any("chain no longer passes through this anchor (rewritten)" in p for p in found), (seqs, found)
        assert any("anchor missing from the database" in p for p in problems(report, seq))


def test_deleted_database_anchors_alone_are_detected(platform: Platform, repaired: None) -> None:
    [seq] = record_anchored(platform, 1)
    with platform.superuser() as conn:
        conn.execute("SET session_replication_role = replica")
        conn.execute("DELETE FROM audit_anchors WHERE seq = %s", (seq,))
    code, report = verify_cli(platform)
    assert code == 1
    assert any("anchor missing from the database (anchors deleted" in p for p in problems(report, seq))


def test_a_deleted_prefix_passed_off_as_retention_is_detected(platform: Platform, repaired: None) -> None:
    """A superuser deletes the first entries and moves the chain's start, as retention would, but without the
    retention record that the platform writes outside the database first."""
    cut_off(platform)
    seqs = record_anchored(platform, 3)
    with platform.superuser() as conn:
        conn.execute("SET session_replication_role = replica")
        conn.execute("UPDATE audit_chain SET pruned_seq = l.seq, pruned_hash = l.hash FROM audit_log l "
                     "WHERE l.seq = %s", (seqs[1],))
        conn.execute("DELETE FROM audit_log WHERE seq <= %s", (seqs[1],))
        conn.execute("DELETE FROM audit_anchors WHERE seq <= %s", (seqs[1],))
        assert chain_links_hold(conn)
    code, report = verify_cli(platform)
    assert code == 1
    assert any("removed without a retention record" in p for p in problems(report, seqs[0])), report["problems"]


def test_a_forged_or_edited_anchor_file_line_is_detected(platform: Platform, repaired: None) -> None:
    record_anchored(platform, 1)
    path = platform.plane.audit_anchors.path
    lines = path.read_text().splitlines()
    forged = json.loads(lines[-1]) | {"seq": 1_000_000_000}
    path.write_text("\n".join([*lines, json.dumps(forged), "not json"]) + "\n")
    code, report = verify_cli(platform)
    assert code == 1
    assert any("anchor MAC is wrong" in p for p in problems(report, 1_000_000_000)), report["problems"]
    assert any("is not an anchor" in p for p in problems(report, None))


# --- the object store copy ------------------------------------------------------------------------------------


@pytest.fixture
def fake_s3() -> Iterator[FakeS3]:
    server = FakeS3().start()
    try:
        yield server
    finally:
        server.stop()


def test_anchors_also_go_to_the_object_store_and_a_truncated_file_is_caught(platform: Platform, fake_s3: FakeS3,
                                                                            tmp_path: Path) -> None:
    async def scenario() -> tuple[int | None, trail.Verification, trail.Verification, bytes]:
        store = S3ObjectStore(fake_s3.url, fake_s3.bucket, fake_s3.region, fake_s3.access_key,
                              SecretStr(fake_s3.secret_key))
        try:
            anchors = AnchorLog(tmp_path / "anchors.jsonl", platform.plane.audit_key, store)
            await trail.record_now(platform.plane.db, trail.Entry(None, "test", "test.s3", "x", {}))
            seq = await trail.anchor(platform.plane.db, anchors)
            stored = await store.get(f"audit/anchors/{seq:020d}.json")
            clean = await trail.verify(platform.plane.db, anchors)
            anchors.path.write_text("")  # the local file is emptied; the bucket still has the latest anchor
            truncated = await trail.verify(platform.plane.db, anchors)
            return seq, clean, truncated, stored
        finally:
            await store.aclose()

    seq, clean, truncated, stored = platform.on_plane(scenario())
    assert clean.intact, clean.problems
    assert seq is not None and json.loads(stored)["seq"] == seq
    assert any("anchor file lacks the object store's latest anchor" in p["problem"] for p in truncated.problems)
