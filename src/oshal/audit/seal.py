"""Sealing the audit log against the database owner, and checking from the catalog that it stays sealed.

The owner role runs migrations, so it could disable a trigger on, update or drop any table it owns. Sealing
hands the audit tables and every ``oshal_audit*`` function to ``oshal_audit_keeper``, a role nobody logs in as
and nobody is a member of, and adds an event trigger that refuses to drop them (the owner owns the schema, and a
schema's owner may drop what is in it). Only a superuser can hand ownership over, so the platform seals at
start-up over the embedded server's superuser connection (or with ``oshal audit seal`` on an external server),
after migrations; a start-up with pending migrations unseals first, so they can change audit objects.

A superuser can still undo all of this; :func:`seal_problems` (read by ``oshal audit verify``, ``oshal security
verify`` and the posture scan) reports what such an undo leaves behind: a disabled or missing trigger, a changed
owner, a keeper that can log in or has members, a disabled drop guard.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from oshal.logs import get_logger
from oshal.store.migrate import OWNER_ROLE, migrate, pending_migrations

log = get_logger(__name__)

KEEPER_ROLE = "oshal_audit_keeper"
AUDIT_TABLES = ("audit_log", "audit_chain", "audit_anchors")
# (table, trigger): each must exist and fire (tgenabled 'O' or 'A'; 'D' is disabled, 'R' fires only on replicas).
AUDIT_TRIGGERS = (("audit_log", "audit_log_append_only"), ("audit_log", "audit_log_no_truncate"),
                  ("audit_anchors", "audit_anchors_append_only"), ("audit_anchors", "audit_anchors_no_truncate"))
GUARD_SCHEMA = "oshal_guard"
GUARD_TRIGGER = "oshal_audit_drop_guard"
_FIRING = ("O", "A")
# Read-only views of the log stay with the owner: they call the owner's tenant-scope check, and the keeper must
# never run code the owner can replace (inside it, the append-only trigger would let a DELETE through).
READERS = ("oshal_audit_entries", "oshal_audit_counts")
_AUDIT_FUNCTIONS = ("SELECT p.oid::regprocedure::text AS signature, p.proname, r.rolname AS owner FROM pg_proc p "
                    "JOIN pg_namespace n ON n.oid = p.pronamespace JOIN pg_roles r ON r.oid = p.proowner "
                    "WHERE n.nspname = 'public' AND p.proname LIKE 'oshal\\_audit%' "
                    f"AND p.proname NOT IN {READERS!r} ORDER BY 1")

_GUARD_FUNCTION = f"""
CREATE OR REPLACE FUNCTION {GUARD_SCHEMA}.audit_drop_guard() RETURNS event_trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE o record;
BEGIN
    FOR o IN SELECT * FROM pg_event_trigger_dropped_objects() LOOP
        -- Any schema: the owner may rename public (it owns it) before dropping what was in it.
        IF o.object_identity ~ '(^|\\.)oshal_audit' OR o.object_identity ~ '(^|\\.)audit_(log|chain|anchors)\\M' THEN
            RAISE EXCEPTION 'the audit log''s objects cannot be dropped (% %)', o.object_type, o.object_identity
                USING ERRCODE = 'OX403';
        END IF;
    END LOOP;
END $$
"""

def seal(superuser_url: str) -> None:
    """Hand the audit objects to the keeper role and guard them against DROP (idempotent; needs a superuser)."""
    keeper = sql.Identifier(KEEPER_ROLE)
    with psycopg.connect(superuser_url, autocommit=True) as conn, conn.transaction():
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (KEEPER_ROLE,)).fetchone()
        conn.execute(sql.SQL("{} ROLE {} NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS NOREPLICATION "
                             "NOINHERIT").format(sql.SQL("ALTER" if exists else "CREATE"), keeper))
        for (member,) in conn.execute(
                "SELECT m.rolname FROM pg_auth_members a JOIN pg_roles m ON m.oid = a.member "
                "WHERE a.roleid = (SELECT oid FROM pg_roles WHERE rolname = %s)", (KEEPER_ROLE,)).fetchall():
            conn.execute(sql.SQL("REVOKE {} FROM {} CASCADE").format(keeper, sql.Identifier(member)))
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(keeper))
        owner = _schema_owner(conn)
        if not conn.execute("SELECT 1 FROM pg_policy WHERE polrelid = 'audit_log'::regclass AND polname = "
                            "'keeper_chain'").fetchone():
            # audit_log forces RLS on its owner too, so the keeper needs a policy of its own.
            conn.execute(sql.SQL("CREATE POLICY keeper_chain ON audit_log TO {} USING (true) WITH CHECK (true)"
                                 ).format(keeper))
        for table in AUDIT_TABLES:
            conn.execute(sql.SQL("ALTER TABLE {} OWNER TO {}").format(sql.Identifier(table), keeper))
        conn.execute("ALTER TABLE audit_log FORCE ROW LEVEL SECURITY")
        # The readers (left to the owner) read the log: after the hand-over, since the owner's implicit rights go
        # with the table. Reading does not need the seal.
        conn.execute(sql.SQL("GRANT SELECT ON audit_log TO {}").format(owner))
        for row in conn.execute(_AUDIT_FUNCTIONS).fetchall():
            conn.execute(sql.SQL("ALTER FUNCTION {} OWNER TO {}").format(sql.SQL(row[0]), keeper))
        for (reader,) in conn.execute("SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n ON "
                                      "n.oid = p.pronamespace WHERE n.nspname = 'public' AND p.proname = ANY(%s)",
                                      (list(READERS),)).fetchall():
            conn.execute(sql.SQL("ALTER FUNCTION {} OWNER TO {}").format(sql.SQL(reader), owner))
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(GUARD_SCHEMA)))
        conn.execute(sql.SQL("REVOKE ALL ON SCHEMA {} FROM PUBLIC").format(sql.Identifier(GUARD_SCHEMA)))
        conn.execute(_GUARD_FUNCTION.encode())
        conn.execute(sql.SQL("REVOKE ALL ON FUNCTION {}.audit_drop_guard() FROM PUBLIC").format(
            sql.Identifier(GUARD_SCHEMA)))
        if conn.execute("SELECT 1 FROM pg_event_trigger WHERE evtname = %s", (GUARD_TRIGGER,)).fetchone():
            conn.execute(sql.SQL("ALTER EVENT TRIGGER {} ENABLE").format(sql.Identifier(GUARD_TRIGGER)))
        else:
            conn.execute(sql.SQL("CREATE EVENT TRIGGER {} ON sql_drop EXECUTE FUNCTION {}.audit_drop_guard()").format(
                sql.Identifier(GUARD_TRIGGER), sql.Identifier(GUARD_SCHEMA)))
        for table, trigger in AUDIT_TRIGGERS:
            conn.execute(sql.SQL("ALTER TABLE {} ENABLE TRIGGER {}").format(sql.Identifier(table),
                                                                            sql.Identifier(trigger)))


def _schema_owner(conn: psycopg.Connection[Any]) -> sql.Identifier:
    """The role migrations run as (``oshal_owner``, or an external server's own): the owner of the other tables."""
    row = conn.execute("SELECT tableowner FROM pg_tables WHERE schemaname = 'public' AND tablename = 'tickets'"
                       ).fetchone()
    return sql.Identifier(str(row[0]) if row else OWNER_ROLE)


def unseal(superuser_url: str) -> None:
    """Give the audit objects back to the owner role so migrations can change them (start-up only)."""
    with psycopg.connect(superuser_url, autocommit=True) as conn, conn.transaction():
        if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (KEEPER_ROLE,)).fetchone():
            return
        if conn.execute("SELECT 1 FROM pg_event_trigger WHERE evtname = %s", (GUARD_TRIGGER,)).fetchone():
            conn.execute(sql.SQL("ALTER EVENT TRIGGER {} DISABLE").format(sql.Identifier(GUARD_TRIGGER)))
        owner = _schema_owner(conn)
        for table in AUDIT_TABLES:
            conn.execute(sql.SQL("ALTER TABLE {} OWNER TO {}").format(sql.Identifier(table), owner))
        for row in conn.execute(_AUDIT_FUNCTIONS).fetchall():
            conn.execute(sql.SQL("ALTER FUNCTION {} OWNER TO {}").format(sql.SQL(row[0]), owner))


def is_superuser(url: str) -> bool:
    """Whether ``url`` logs in as a superuser (an external server's migration role may be one)."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()
    return bool(row and row[0])


def migrate_sealed(owner_url: str, superuser_url: str | None) -> list[str]:
    """Apply pending migrations (as the owner) and seal the audit log, when a superuser connection is at hand."""
    if superuser_url is not None and pending_migrations(owner_url):
        unseal(superuser_url)
    applied = migrate(owner_url)
    if superuser_url is not None:
        seal(superuser_url)
    else:
        log.warning("the audit log is not sealed against the database owner (no superuser connection)",
                    hint="run `oshal audit seal` with a superuser's database URL")
    return applied


_STATE_SQL = """
SELECT (SELECT row_to_json(r) FROM (SELECT rolcanlogin, rolsuper, rolbypassrls, rolcreaterole, rolinherit
                                      FROM pg_roles WHERE rolname = %(keeper)s) r) AS keeper,
       (SELECT coalesce(array_agg(m.rolname ORDER BY m.rolname), '{}') FROM pg_auth_members a
          JOIN pg_roles m ON m.oid = a.member JOIN pg_roles k ON k.oid = a.roleid
         WHERE k.rolname = %(keeper)s) AS members,
       (SELECT coalesce(json_object_agg(c.relname, json_build_object(
                   'owner', pg_get_userbyid(c.relowner), 'forced', c.relforcerowsecurity)), '{}')
          FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = 'public' AND c.relname = ANY (%(tables)s)) AS tables,
       (SELECT coalesce(json_object_agg(c.relname || '.' || t.tgname, t.tgenabled), '{}')
          FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = 'public' AND c.relname = ANY (%(tables)s) AND NOT t.tgisinternal) AS triggers,
       (SELECT evtenabled FROM pg_event_trigger WHERE evtname = %(guard)s) AS guard,
       CASE WHEN EXISTS (SELECT 1 FROM pg_roles WHERE rolname = %(keeper)s)
            THEN has_schema_privilege(%(keeper)s, 'public', 'USAGE') END AS keeper_reaches_public
"""


def _problems(state: dict[str, Any], functions: list[tuple[str, str]]) -> list[str]:
    keeper, problems = state["keeper"], []
    if keeper is None:
        return [f"role {KEEPER_ROLE} does not exist: the audit log is not sealed against the database owner"]
    for flag, meaning in (("rolcanlogin", "can log in"), ("rolsuper", "is a superuser"),
                          ("rolbypassrls", "has BYPASSRLS"), ("rolcreaterole", "may create roles")):
        if keeper[flag]:
            problems.append(f"role {KEEPER_ROLE} {meaning}")
    if not state["keeper_reaches_public"]:
        problems.append(f"role {KEEPER_ROLE} lost USAGE on schema public (the audit log cannot be written)")
    if state["members"]:
        problems.append(f"role {KEEPER_ROLE} has members ({', '.join(state['members'])}), who can act as it")
    for table in AUDIT_TABLES:
        info = state["tables"].get(table)
        if info is None:
            problems.append(f"table {table} is missing")
        elif info["owner"] != KEEPER_ROLE:
            problems.append(f"table {table} is owned by {info['owner']}, not {KEEPER_ROLE}")
    if "audit_log" in state["tables"] and not state["tables"]["audit_log"]["forced"]:
        problems.append("row level security on audit_log is no longer forced")
    for table, trigger in AUDIT_TRIGGERS:
        enabled = state["triggers"].get(f"{table}.{trigger}")
        if enabled is None:
            problems.append(f"trigger {trigger} on {table} is missing")
        elif enabled not in _FIRING:
            problems.append(f"trigger {trigger} on {table} is disabled (tgenabled = {enabled!r})")
    problems += [f"function {signature} is owned by {owner}, not {KEEPER_ROLE}"
                 for signature, owner in functions if owner != KEEPER_ROLE]
    if state["guard"] is None:
        problems.append(f"event trigger {GUARD_TRIGGER} (refuses to drop audit objects) is missing")
    elif state["guard"] not in _FIRING:
        problems.append(f"event trigger {GUARD_TRIGGER} is disabled (evtenabled = {state['guard']!r})")
    return problems


async def seal_problems(conn: psycopg.AsyncConnection[Any]) -> list[str]:
    """Everything that departs from the sealed state, read from the catalog (any role can read it)."""
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(_STATE_SQL, {"keeper": KEEPER_ROLE, "tables": list(AUDIT_TABLES), "guard": GUARD_TRIGGER})
    state = await cur.fetchone()
    assert state is not None
    await cur.execute(_AUDIT_FUNCTIONS)
    functions = [(str(r["signature"]), str(r["owner"])) for r in await cur.fetchall()]
    return _problems(state, functions)
