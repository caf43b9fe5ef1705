"""Roles, database and schema migrations. Runs with owner (or superuser) rights, never as the API role."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
from psycopg import sql

from oshal.errors import ConfigError
from oshal.logs import get_logger
from oshal.transitions import transition_pairs

log = get_logger(__name__)

OWNER_ROLE = "oshal_owner"
API_ROLE = "oshal_api"
REPORT_ROLE = "oshal_report"
# Read-only reporting: what a BI tool needs for tickets, spend and timelines, still limited by RLS per tenant.
REPORT_TABLES = ("tenants", "bots", "prices", "tickets", "ticket_events", "ledger", "ledger_daily", "ledger_totals",
                 "workflow_runs", "budgets", "budget_usage", "rollup_cutoff")
_RUNTIME_ATTRS = "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS NOINHERIT NOREPLICATION"
DATABASE = "oshal"
_LOCK_KEY = 0x05A1_0001
# What pending_migrations() lists when the function files would be applied.
FUNCTIONS = "sql/functions"
_REQUIRES = "-- requires:"


def _ensure_role(conn: psycopg.Connection[tuple[object, ...]], role: str, password: str, *, attrs: str) -> None:
    exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
    verb = "ALTER" if exists else "CREATE"
    conn.execute(
        sql.SQL("{} ROLE {} " + attrs + " PASSWORD {}").format(
            sql.SQL(verb), sql.Identifier(role), sql.Literal(password)
        )
    )


def bootstrap_embedded(superuser_url: str, owner_password: str, api_password: str,
                       report_password: str) -> None:
    """Create the owner, API and reporting roles and the database on a fresh embedded cluster (idempotent)."""
    with psycopg.connect(superuser_url, autocommit=True) as conn:
        _ensure_role(conn, OWNER_ROLE, owner_password, attrs="LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE")
        _ensure_role(conn, API_ROLE, api_password, attrs=_RUNTIME_ATTRS)
        _ensure_role(conn, REPORT_ROLE, report_password, attrs=_RUNTIME_ATTRS)
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)).fetchone():
            conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(DATABASE), sql.Identifier(OWNER_ROLE)))
    with psycopg.connect(with_database(superuser_url, DATABASE), autocommit=True) as conn:
        conn.execute(sql.SQL("ALTER SCHEMA public OWNER TO {}").format(sql.Identifier(OWNER_ROLE)))
        conn.execute("REVOKE ALL ON SCHEMA public FROM PUBLIC")
        conn.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(sql.Identifier(DATABASE)))
        conn.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
            sql.Identifier(DATABASE), sql.Identifier(API_ROLE)))
        conn.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
            sql.Identifier(DATABASE), sql.Identifier(REPORT_ROLE)))


def ensure_api_role(owner_url: str, api_password: str, report_password: str | None = None) -> None:
    """On an external server: create or update the API (and reporting) role if the owner may; otherwise the API
    role must exist (the reporting role is optional)."""
    with psycopg.connect(owner_url, autocommit=True) as conn:
        can_create = conn.execute(
            "SELECT rolcreaterole OR rolsuper FROM pg_roles WHERE rolname = current_user"
        ).fetchone()
        if can_create and can_create[0]:
            _ensure_role(conn, API_ROLE, api_password, attrs=_RUNTIME_ATTRS.replace(" NOREPLICATION", ""))
            if report_password:
                _ensure_role(conn, REPORT_ROLE, report_password, attrs=_RUNTIME_ATTRS.replace(" NOREPLICATION", ""))
        elif not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (API_ROLE,)).fetchone():
            raise ConfigError(
                f"role {API_ROLE} does not exist and the migration role may not create it",
                hint="create it (LOGIN NOBYPASSRLS) and set OSHAL_API_DATABASE_URL, or grant CREATEROLE",
            )


@dataclass(frozen=True, slots=True)
class Migration:
    version: str
    text: str
    requires: tuple[str, ...]  # function files (sql/functions/NAME.sql) applied before it, in its transaction


def _header(text: str) -> list[str]:
    lines = text.splitlines()
    return lines[:next((i for i, line in enumerate(lines) if not line.startswith("--")), len(lines))]


def migrations() -> list[Migration]:
    """Every migration in version order, with the function files its header names (``-- requires: a, b``)."""
    folder = resources.files("oshal.store") / "migrations"
    found = []
    for name, text in sorted((f.name, f.read_text()) for f in folder.iterdir() if f.name.endswith(".sql")):
        requires = [n.strip() for line in _header(text) if line.startswith(_REQUIRES)
                    for n in line.removeprefix(_REQUIRES).split(",")]
        found.append(Migration(name.removesuffix(".sql"), text, tuple(n for n in requires if n)))
    return found


def functions() -> list[tuple[str, str]]:
    """(name, text) of every function file, in the order sql/functions/ORDER lists them."""
    folder = resources.files("oshal.store") / "sql" / "functions"
    order = [line.strip() for line in (folder / "ORDER").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    present = {f.name.removesuffix(".sql") for f in folder.iterdir() if f.name.endswith(".sql")}
    problems = [f"{name} is listed twice" for name in sorted({n for n in order if order.count(n) > 1})]
    problems += [f"{name} is listed but {name}.sql does not exist" for name in sorted(set(order) - present)]
    problems += [f"{name}.sql is not listed" for name in sorted(present - set(order))]
    if problems:
        raise ConfigError(f"store/sql/functions/ORDER does not match the files beside it: {'; '.join(problems)}",
                          hint="list every NAME.sql exactly once, each after the functions its body calls")
    return [(name, (folder / f"{name}.sql").read_text()) for name in order]


def _digest(files: list[tuple[str, str]]) -> str:
    return hashlib.sha256("\0".join(f"{name}\0{text}" for name, text in files).encode()).hexdigest()


def _stored_digest(conn: psycopg.Connection[tuple[object, ...]]) -> str | None:
    if conn.execute("SELECT to_regclass('schema_functions')").fetchone() == (None,):
        return None
    row = conn.execute("SELECT digest FROM schema_functions").fetchone()
    return str(row[0]) if row else None


def pending_migrations(owner_url: str) -> list[str]:
    """The versions :func:`migrate` would apply now, and ``FUNCTIONS`` if it would apply the function files."""
    files = functions()
    with psycopg.connect(owner_url, autocommit=True) as conn:
        if conn.execute("SELECT to_regclass('schema_migrations')").fetchone() == (None,):
            return [*(m.version for m in migrations()), FUNCTIONS]
        done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations").fetchall()}
        stored = _stored_digest(conn)
    pending = [m.version for m in migrations() if m.version not in done]
    return [*pending, FUNCTIONS] if pending or stored != _digest(files) else pending


def migrate(owner_url: str) -> list[str]:
    """Apply pending migrations in order, then the function files, under an advisory lock; returns the versions
    applied.

    Migrations change the schema; every SQL function is defined once, in sql/functions/NAME.sql, and those files
    are applied all together, in ORDER, after the last migration, whenever a migration was applied or any file
    changed (``schema_functions`` keeps their digest; a migration clears it): so every database, however far it
    came, ends with the functions a fresh one has. Between changes nothing is re-created (no locks on live tables
    for their triggers, and the audit functions a sealed log's keeper owns stay untouched). A migration that needs
    a function while it runs names it in its header (``-- requires: NAME``), and that file is applied first, in the
    migration's transaction.
    """
    files = functions()
    by_name = dict(files)
    applied: list[str] = []
    with psycopg.connect(owner_url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations "
                "(version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            conn.execute("CREATE TABLE IF NOT EXISTS schema_functions (id boolean PRIMARY KEY DEFAULT true "
                         "CHECK (id), digest text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())")
            done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations").fetchall()}
            for migration in migrations():
                if migration.version in done:
                    continue
                unknown = [name for name in migration.requires if name not in by_name]
                if unknown:
                    raise ConfigError(f"migration {migration.version} requires {', '.join(unknown)}, which "
                                      "store/sql/functions/ORDER does not list", hint="add the function file")
                with conn.transaction():
                    for name in migration.requires:
                        _apply_function(conn, name, by_name[name])
                    conn.execute(migration.text.encode())
                    conn.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (migration.version,))
                    conn.execute("DELETE FROM schema_functions")  # the files follow, even if this run stops here
                log.info("migration applied", version=migration.version)
                applied.append(migration.version)
            _apply_functions(conn, files)
            _sync_transitions(conn)
            _grant_reporting(conn)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
    return applied


def _apply_functions(conn: psycopg.Connection[tuple[object, ...]], files: list[tuple[str, str]]) -> None:
    digest = _digest(files)
    if _stored_digest(conn) == digest:
        return
    with conn.transaction():
        for name, text in files:
            _apply_function(conn, name, text)
        conn.execute("INSERT INTO schema_functions (digest) VALUES (%s) ON CONFLICT (id) DO UPDATE "
                     "SET digest = EXCLUDED.digest, applied_at = EXCLUDED.applied_at", (digest,))
    log.info("sql functions applied", files=len(files))


def _apply_function(conn: psycopg.Connection[tuple[object, ...]], name: str, text: str) -> None:
    try:
        conn.execute(text.encode())
    except psycopg.Error as e:
        e.add_note(f"in store/sql/functions/{name}.sql")
        raise


def _sync_transitions(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    """The database refuses any ticket transition that :data:`oshal.transitions.TRANSITIONS` does not list."""
    pairs = transition_pairs()
    with conn.transaction():
        conn.execute("DELETE FROM ticket_transitions")
        conn.execute("INSERT INTO ticket_transitions (from_status, to_status) "
                     "SELECT * FROM unnest(%s::text[], %s::text[])", ([a for a, _ in pairs], [b for _, b in pairs]))


def _grant_reporting(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    """The reporting role reads a fixed set of tables (RLS still applies); nothing else, and never writes."""
    if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (REPORT_ROLE,)).fetchone():
        return
    role = sql.Identifier(REPORT_ROLE)
    with conn.transaction():
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(role))
        conn.execute(sql.SQL("GRANT SELECT ON {} TO {}").format(
            sql.SQL(", ").join(sql.Identifier(t) for t in REPORT_TABLES), role))


def with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{database}"))


def with_credentials(url: str, user: str, password: str) -> str:
    """The same server and database as ``url`` but logged in as ``user``."""
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{host}"
    return urlunsplit(parts._replace(netloc=netloc))
