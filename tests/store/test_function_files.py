"""SQL functions defined once (store/sql/functions/), applied by the migrator after the migrations.

The upgrade test loads ``data/schema_014.sql`` (a database migrated to 014 by the code before the function files,
dumped by tools/schema_snapshot.py), migrates it with this code and compares its catalog with a fresh install's.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest

from oshal.audit.seal import KEEPER_ROLE, migrate_sealed
from oshal.embedded import EmbeddedPostgres
from oshal.store.migrate import (
    API_ROLE,
    FUNCTIONS,
    OWNER_ROLE,
    REPORT_ROLE,
    functions,
    migrate,
    migrations,
    pending_migrations,
    with_credentials,
    with_database,
)
from oshal.store.results import AttemptRow, LedgerRow

SNAPSHOT_014 = Path(__file__).parent / "data" / "schema_014.sql"
_OWNER_PASSWORD = "owner-pw"

# Everything a migration or function file decides, by name (never by oid), in a stable order.
FINGERPRINT = {
    "functions": """
        SELECT p.oid::regprocedure::text, pg_get_functiondef(p.oid), pg_get_userbyid(p.proowner), p.proacl::text,
               p.prosecdef, p.proconfig::text
          FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace ORDER BY 1""",
    "triggers": """
        SELECT c.relname::text, t.tgname::text, pg_get_triggerdef(t.oid), t.tgenabled::text
          FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
         WHERE c.relnamespace = 'public'::regnamespace AND NOT t.tgisinternal ORDER BY 1, 2""",
    "policies": """
        SELECT tablename::text, policyname::text, permissive, roles::text, cmd, qual, with_check
          FROM pg_policies WHERE schemaname = 'public' ORDER BY 1, 2""",
    "relations": """
        SELECT c.relname::text, c.relkind::text, pg_get_userbyid(c.relowner), c.relacl::text, c.relrowsecurity,
               c.relforcerowsecurity, c.reloptions::text
          FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace ORDER BY 1""",
    "columns": """
        SELECT c.relname::text, row_number() OVER (PARTITION BY c.oid ORDER BY a.attnum), a.attname::text,
               format_type(a.atttypid, a.atttypmod), a.attnotnull, pg_get_expr(d.adbin, d.adrelid), a.attacl::text
          FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
          LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
         WHERE c.relnamespace = 'public'::regnamespace AND a.attnum > 0 AND NOT a.attisdropped ORDER BY 1, 2""",
    "constraints": """
        SELECT conrelid::regclass::text, conname::text, pg_get_constraintdef(oid)
          FROM pg_constraint WHERE connamespace = 'public'::regnamespace ORDER BY 1, 2""",
    "indexes": "SELECT indexname::text, indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1",
    "views": "SELECT viewname::text, definition FROM pg_views WHERE schemaname = 'public' ORDER BY 1",
    "schema": "SELECT nspacl::text, pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = 'public'",
    "versions": "SELECT version FROM schema_migrations ORDER BY 1",
    "transitions": "SELECT from_status, to_status FROM ticket_transitions ORDER BY 1, 2",
}


@dataclass
class Server:
    superuser_url: str

    def create_database(self) -> str:
        """An empty database as bootstrap_embedded makes one; returns its owner URL."""
        name = f"fn_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.superuser_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}" OWNER {OWNER_ROLE}')
        with psycopg.connect(with_database(self.superuser_url, name), autocommit=True) as conn:
            conn.execute(f"ALTER SCHEMA public OWNER TO {OWNER_ROLE}")
            conn.execute("REVOKE ALL ON SCHEMA public FROM PUBLIC")
        return with_credentials(with_database(self.superuser_url, name), OWNER_ROLE, _OWNER_PASSWORD)

    def superuser(self, owner_url: str) -> str:
        """The superuser's URL for the database of ``owner_url``."""
        return with_database(self.superuser_url, urlsplit(owner_url).path.lstrip("/"))

    def load(self, owner_url: str, dump: Path) -> None:
        with psycopg.connect(self.superuser(owner_url), autocommit=True) as conn:
            conn.execute(dump.read_text().encode())


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A Postgres of its own with the platform's roles: these tests create and migrate whole databases."""
    pg = EmbeddedPostgres(tmp_path_factory.mktemp("fn-pg"))
    pg.start()
    try:
        with psycopg.connect(pg.url(), autocommit=True) as conn:
            conn.execute(f"CREATE ROLE {OWNER_ROLE} LOGIN PASSWORD '{_OWNER_PASSWORD}'")
            conn.execute(f"CREATE ROLE {API_ROLE} LOGIN PASSWORD 'api-pw'")
            conn.execute(f"CREATE ROLE {REPORT_ROLE} LOGIN PASSWORD 'report-pw'")
        yield Server(pg.url())
    finally:
        pg.stop()


def fingerprint(owner_url: str) -> dict[str, list[tuple[Any, ...]]]:
    with psycopg.connect(owner_url, autocommit=True) as conn:
        return {name: conn.execute(query.encode()).fetchall() for name, query in FINGERPRINT.items()}


def _differences(a: dict[str, list[tuple[Any, ...]]], b: dict[str, list[tuple[Any, ...]]]) -> list[str]:
    found = []
    for name in FINGERPRINT:
        only_a, only_b = set(a[name]) - set(b[name]), set(b[name]) - set(a[name])
        found += [f"{name}: upgraded only: {row}" for row in sorted(only_a, key=str)]
        found += [f"{name}: fresh only: {row}" for row in sorted(only_b, key=str)]
    return found


def test_a_database_migrated_to_014_by_the_old_migrations_upgrades_to_a_fresh_install(server: Server) -> None:
    upgraded = server.create_database()
    server.load(upgraded, SNAPSHOT_014)
    assert pending_migrations(upgraded)[0] == "015_result_records"
    before = fingerprint(upgraded)
    assert migrate(upgraded) == [m.version for m in migrations() if m.version[:3] > "014"]
    fresh = server.create_database()
    migrate(fresh)

    after = fingerprint(upgraded)
    assert _differences(after, fingerprint(fresh)) == []
    signatures = [row[0] for row in after["functions"]]
    assert "oshal_record_results(uuid,jsonb,jsonb)" in signatures
    assert not any(s.startswith("oshal_record_results(uuid,uuid[]") for s in signatures)  # the old overload went
    assert before["functions"] != after["functions"]  # the comparison saw the files replace the old definitions


def test_function_files_apply_again_only_when_something_changed(server: Server) -> None:
    owner = server.create_database()
    migrate(owner)
    assert pending_migrations(owner) == []
    first = fingerprint(owner)
    with psycopg.connect(owner, autocommit=True) as conn:
        conn.execute("UPDATE schema_functions SET digest = 'changed'")  # as if a file had been edited
        conn.execute("COMMENT ON FUNCTION oshal_window(text, timestamptz) IS 'applied before'")
    assert pending_migrations(owner) == [FUNCTIONS]
    assert migrate(owner) == []
    assert pending_migrations(owner) == []
    assert _differences(fingerprint(owner), first) == []  # applied again, and nothing else changed
    with psycopg.connect(owner, autocommit=True) as conn:
        conn.execute("COMMENT ON FUNCTION oshal_window(text, timestamptz) IS 'not applied again'")
        migrate(owner)
        comment = conn.execute("SELECT obj_description('oshal_window(text, timestamptz)'::regprocedure)").fetchone()
    assert comment == ("not applied again",)


def _owner_of_audit(owner_url: str) -> str:
    with psycopg.connect(owner_url, autocommit=True) as conn:
        row = conn.execute("SELECT pg_get_userbyid(proowner) FROM pg_proc WHERE proname = 'oshal_audit'").fetchone()
    assert row is not None
    return str(row[0])


def test_a_sealed_audit_log_is_unsealed_to_apply_changed_function_files_and_sealed_again(server: Server) -> None:
    owner = server.create_database()
    migrate_sealed(owner, server.superuser(owner))
    assert _owner_of_audit(owner) == KEEPER_ROLE
    assert migrate_sealed(owner, server.superuser(owner)) == [] and _owner_of_audit(owner) == KEEPER_ROLE
    with psycopg.connect(owner, autocommit=True) as conn:
        conn.execute("UPDATE schema_functions SET digest = 'changed'")
    # The owner alone may not replace what the keeper owns: that is why nothing is re-applied unless it changed.
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        migrate(owner)
    assert migrate_sealed(owner, server.superuser(owner)) == []
    assert pending_migrations(owner) == [] and _owner_of_audit(owner) == KEEPER_ROLE


def test_migrations_hold_schema_changes_and_each_function_has_one_file() -> None:
    for migration in migrations():
        assert not re.search(r"CREATE\s+(OR\s+REPLACE\s+)?FUNCTION", migration.text, re.I), (
            f"{migration.version} defines a function: move it to store/sql/functions/NAME.sql")
    for name, text in functions():
        defined = re.findall(r"CREATE OR REPLACE FUNCTION (\w+)\(", text)
        assert defined == [name], f"{name}.sql must define exactly the function {name} (it defines {defined})"


def test_the_result_record_types_have_the_fields_the_collector_sends(server: Server) -> None:
    owner = server.create_database()
    migrate(owner)
    with psycopg.connect(owner, autocommit=True) as conn:
        for type_name, row in (("oshal_attempt_row", AttemptRow), ("oshal_ledger_row", LedgerRow)):
            attributes = [r[0] for r in conn.execute(
                "SELECT attname::text FROM pg_attribute WHERE attrelid = (SELECT typrelid FROM pg_type "
                "WHERE typname = %s) AND attnum > 0 ORDER BY attnum", (type_name,)).fetchall()]
            assert attributes == [f.name.removesuffix("_json") for f in fields(row)], type_name
