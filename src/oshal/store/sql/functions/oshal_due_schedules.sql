-- The scheduler's cross-tenant view of schedules that are due (the platform's scope only).
CREATE OR REPLACE FUNCTION oshal_due_schedules(p_limit int)
RETURNS TABLE (tenant_id uuid, schedule_id uuid)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT oshal_require_scope('oshal_due_schedules', NULL);
    SELECT tenant_id, id FROM schedules WHERE enabled AND next_tick <= now() ORDER BY next_tick LIMIT p_limit
$$;
REVOKE ALL ON FUNCTION oshal_due_schedules(int) FROM PUBLIC, oshal_api;
GRANT EXECUTE ON FUNCTION oshal_due_schedules(int) TO oshal_api;
