"""Roles, database and schema migrations. Runs with owner (or superuser) rights, never as the API role."""

from __future__ import annotations

import re
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
                 "workflow_runs", "budgets", "budget_usage")
_RUNTIME_ATTRS = "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS NOINHERIT NOREPLICATION"
DATABASE = "oshal"
_LOCK_KEY = 0x05A1_0001


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


def _migrations() -> list[tuple[str, str]]:
    folder = resources.files("oshal.store") / "migrations"
    files = sorted((f.name, f.read_text()) for f in folder.iterdir() if f.name.endswith(".sql"))
    return [(re.sub(r"\.sql$", "", name), text) for name, text in files]


def pending_migrations(owner_url: str) -> list[str]:
    """The versions :func:`migrate` would apply now."""
    with psycopg.connect(owner_url, autocommit=True) as conn:
        if conn.execute("SELECT to_regclass('schema_migrations')").fetchone() == (None,):
            return [version for version, _ in _migrations()]
        done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations").fetchall()}
    return [version for version, _ in _migrations() if version not in done]


def migrate(owner_url: str) -> list[str]:
    """Apply pending migrations in order, under an advisory lock; returns the versions applied."""
    applied: list[str] = []
    with psycopg.connect(owner_url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations "
                "(version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations").fetchall()}
            for version, text in _migrations():
                if version in done:
                    continue
                with conn.transaction():
                    conn.execute(text.encode())
                    conn.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (version,))
                log.info("migration applied", version=version)
                applied.append(version)
            _sync_transitions(conn)
            _grant_reporting(conn)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
    return applied


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
