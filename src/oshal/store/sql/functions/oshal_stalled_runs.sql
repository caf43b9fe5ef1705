-- The sweeper's cross-tenant view of runs that wait on nothing open: their advance was lost to a crash (the
-- platform's scope only).
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
REVOKE ALL ON FUNCTION oshal_stalled_runs(interval, int) FROM PUBLIC, oshal_api;
GRANT EXECUTE ON FUNCTION oshal_stalled_runs(interval, int) TO oshal_api;
