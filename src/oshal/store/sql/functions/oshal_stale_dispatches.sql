-- The sweeper re-sends only dispatched phases whose envelope is in neither the lane nor the output stream; it
-- pages through every stale one (oldest first, keyset on (updated_at, id)) rather than the oldest few, so
-- phases still waiting in a long lane cannot hide lost ones behind them.
CREATE OR REPLACE FUNCTION oshal_stale_dispatches(p_older_than interval, p_after_at timestamptz, p_after_id uuid,
                                       p_limit int)
RETURNS TABLE (tenant_id uuid, phase_id uuid, ticket_id uuid, bot text, attempt int, updated_at timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT oshal_require_scope('oshal_stale_dispatches', NULL);
    SELECT p.tenant_id, p.id, p.ticket_id, p.bot, p.attempt, p.updated_at FROM phases p
     WHERE p.status = 'dispatched'
       AND p.updated_at < now() - p_older_than
       AND (p.updated_at, p.id) > (p_after_at, p_after_id)
     ORDER BY p.updated_at, p.id LIMIT p_limit
$$;
REVOKE ALL ON FUNCTION oshal_stale_dispatches(interval, timestamptz, uuid, int) FROM PUBLIC, oshal_api;
GRANT EXECUTE ON FUNCTION oshal_stale_dispatches(interval, timestamptz, uuid, int) TO oshal_api;
