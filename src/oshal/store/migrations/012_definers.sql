-- SECURITY DEFINER functions justified one by one (security/roles.py DEFINERS lists each and why it bypasses RLS).
-- None returns another tenant's rows to a transaction with no tenant set or with an ordinary tenant set:
--   * the auth gate's lookup returns a key's row only to a caller who presents that key's digest;
--   * functions that return rows of every tenant (the platform's loops, its Security Center, the audit export)
--     run only in the platform's scope, a transaction whose tenant is the system tenant;
--   * the two that a tenant could ask about take the tenant explicitly and return only its rows.

-- The platform's scope: the transaction's tenant is the system tenant (the platform's own loops and its
-- operators). Ordinary tenants and transactions without a tenant are not in it.
CREATE FUNCTION oshal_platform_scope() RETURNS boolean
LANGUAGE sql STABLE SET search_path = public, pg_temp AS $$
    SELECT EXISTS (SELECT 1 FROM tenants
                    WHERE name = 'system' AND id::text = current_setting('oshal.tenant_id', true))
$$;

-- Refuse unless the transaction may see rows of p_tenant (NULL: of every tenant, the platform's scope only).
CREATE FUNCTION oshal_require_scope(p_function text, p_tenant uuid) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = public, pg_temp AS $$
BEGIN
    IF oshal_platform_scope() THEN
        RETURN;
    END IF;
    IF p_tenant IS NOT NULL AND p_tenant::text = current_setting('oshal.tenant_id', true) THEN
        RETURN;
    END IF;
    RAISE EXCEPTION '% returns rows of %; this transaction may not see them', p_function,
        CASE WHEN p_tenant IS NULL THEN 'every tenant' ELSE 'tenant ' || p_tenant END
        USING ERRCODE = '42501',
              HINT = 'run it in the platform''s scope (the system tenant set), or for the tenant set';
END $$;

-- Authentication happens before a tenant is known. The caller presents the key's digest; the row comes back only
-- when it matches, so neither the stored hash nor any other key's row ever leaves the database.
DROP FUNCTION oshal_key_by_prefix(text);
CREATE FUNCTION oshal_key_check(p_prefix text, p_digest bytea)
RETURNS TABLE (id uuid, tenant_id uuid, role text, expires_at timestamptz, revoked_at timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT id, tenant_id, role, expires_at, revoked_at FROM api_keys WHERE prefix = p_prefix AND hash = p_digest
$$;

-- The platform's loops: cross-tenant work queues of ids, each item then handled inside its own tenant.
CREATE OR REPLACE FUNCTION oshal_stale_phases(p_older_than interval, p_limit int)
RETURNS TABLE (tenant_id uuid, phase_id uuid, ticket_id uuid, bot text, attempt int)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT oshal_require_scope('oshal_stale_phases', NULL);
    SELECT tenant_id, id, ticket_id, bot, attempt FROM phases
    WHERE status IN ('queued', 'dispatched') AND updated_at < now() - p_older_than
    ORDER BY updated_at LIMIT p_limit
$$;

CREATE OR REPLACE FUNCTION oshal_stalled_runs(p_older_than interval, p_limit int)
RETURNS TABLE (tenant_id uuid, ticket_id uuid)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT oshal_require_scope('oshal_stalled_runs', NULL);
    SELECT r.tenant_id, r.ticket_id FROM workflow_runs r
    WHERE NOT r.finished AND r.updated_at < now() - p_older_than
      AND EXISTS (SELECT 1 FROM tickets t WHERE t.id = r.ticket_id AND t.status = 'in_progress')
      AND NOT EXISTS (SELECT 1 FROM phases p WHERE p.ticket_id = r.ticket_id
                      AND p.status IN ('queued', 'dispatched'))
      AND NOT EXISTS (SELECT 1 FROM tickets c WHERE c.parent_id = r.ticket_id
                      AND c.status IN ('in_progress', 'backlog', 'approved'))
    ORDER BY r.updated_at LIMIT p_limit
$$;

CREATE OR REPLACE FUNCTION oshal_due_schedules(p_limit int)
RETURNS TABLE (tenant_id uuid, schedule_id uuid)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT oshal_require_scope('oshal_due_schedules', NULL);
    SELECT tenant_id, id FROM schedules WHERE enabled AND next_tick <= now() ORDER BY next_tick LIMIT p_limit
$$;

CREATE OR REPLACE FUNCTION oshal_held_phases(p_limit int)
RETURNS TABLE (tenant_id uuid, phase_id uuid, bot text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT oshal_require_scope('oshal_held_phases', NULL);
    SELECT p.tenant_id, p.id, p.bot FROM phases p JOIN tickets t ON t.id = p.ticket_id
     WHERE p.status = 'queued' AND t.status = 'in_progress' ORDER BY p.updated_at LIMIT p_limit
$$;

CREATE OR REPLACE FUNCTION oshal_budget_resumable(p_limit int, p_after_change boolean)
RETURNS TABLE (tenant_id uuid, ticket_id uuid)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT oshal_require_scope('oshal_budget_resumable', NULL);
    WITH paused AS (
        SELECT t.*, coalesce((SELECT max(e.at) FROM ticket_events e WHERE e.ticket_id = t.id
                               AND e.to_status = 'paused'), t.created_at) AS paused_at
          FROM tickets t WHERE t.status = 'paused' AND t.status_reason LIKE 'budget%'
    ), scoped AS (
        SELECT p.id AS ticket, b.* FROM paused p JOIN budgets b ON b.tenant_id = p.tenant_id
           AND (b.scope = 'tenant' OR (b.scope = 'bot' AND b.subject = p.bot)
                OR (b.scope = 'bot' AND b.subject IN (SELECT q.bot FROM phases q
                                                       WHERE q.ticket_id = p.id AND q.status = 'queued'))
                OR (b.scope = 'type' AND b.subject = p.type) OR (b.scope = 'ticket' AND b.subject = p.id::text))
    )
    SELECT t.tenant_id, t.id FROM paused t
     WHERE (p_after_change OR NOT EXISTS (SELECT 1 FROM scoped s WHERE s.ticket = t.id)
            OR EXISTS (SELECT 1 FROM scoped s WHERE s.ticket = t.id
                        AND (s.updated_at > t.paused_at OR oshal_window(s.period, now()) > t.paused_at)))
       AND NOT EXISTS (
           SELECT 1 FROM budgets b LEFT JOIN budget_usage u ON u.budget_id = b.id
                                        AND u.window_start = oshal_window(b.period, now())
            WHERE b.tenant_id = t.tenant_id AND coalesce(u.spent + u.reserved, 0) >= b.limit_micros
              AND (b.scope = 'tenant' OR (b.scope = 'bot' AND b.subject = t.bot)
                   OR (b.scope = 'bot' AND b.subject IN (SELECT q.bot FROM phases q
                                                          WHERE q.ticket_id = t.id AND q.status = 'queued'))
                   OR (b.scope = 'type' AND b.subject = t.type) OR (b.scope = 'ticket' AND b.subject = t.id::text)))
       AND NOT EXISTS (SELECT 1 FROM phases p WHERE p.ticket_id = t.id AND p.status = 'dispatched')
     LIMIT p_limit
$$;

-- The Security Center's access scan: one tenant's keys, or (p_tenant NULL, platform's scope) every tenant's.
DROP FUNCTION oshal_key_inventory();
CREATE FUNCTION oshal_key_inventory(p_tenant uuid)
RETURNS TABLE (id uuid, tenant_id uuid, prefix text, role text, name text, created_at timestamptz,
               expires_at timestamptz, revoked_at timestamptz, last_used_at timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT oshal_require_scope('oshal_key_inventory', p_tenant);
    SELECT id, tenant_id, prefix, role, name, created_at, expires_at, revoked_at, last_used_at FROM api_keys
     WHERE p_tenant IS NULL OR tenant_id = p_tenant
$$;

-- The runtime scan's bursts (refused logins, denied tool calls) across the platform: its scope only.
CREATE OR REPLACE FUNCTION oshal_audit_counts(p_since timestamptz)
RETURNS TABLE (action text, actor text, n bigint)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT oshal_require_scope('oshal_audit_counts', NULL);
    SELECT action, actor, count(*) FROM audit_log WHERE at >= p_since GROUP BY action, actor
$$;

-- Entries as stored, for export and for checking anchors: one tenant's, or (NULL, platform's scope) all of them.
DROP FUNCTION oshal_audit_entries(bigint, int);
CREATE FUNCTION oshal_audit_entries(p_tenant uuid, p_after bigint, p_limit int)
RETURNS SETOF audit_log
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT oshal_require_scope('oshal_audit_entries', p_tenant);
    SELECT * FROM audit_log WHERE seq > p_after AND (p_tenant IS NULL OR tenant_id = p_tenant)
     ORDER BY seq LIMIT p_limit
$$;

REVOKE ALL ON FUNCTION oshal_platform_scope(), oshal_require_scope(text, uuid), oshal_key_check(text, bytea),
    oshal_key_inventory(uuid), oshal_audit_entries(uuid, bigint, int) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION oshal_key_check(text, bytea), oshal_key_inventory(uuid),
    oshal_audit_entries(uuid, bigint, int) TO oshal_api;
