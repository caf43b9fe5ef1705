-- Phases held back (by a kill switch, or a paused ticket's queued first phase), across tenants, for dispatch
-- once their ticket is at work again (the platform's scope only).
CREATE OR REPLACE FUNCTION oshal_held_phases(p_limit int)
RETURNS TABLE (tenant_id uuid, phase_id uuid, bot text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT oshal_require_scope('oshal_held_phases', NULL);
    SELECT p.tenant_id, p.id, p.bot FROM phases p JOIN tickets t ON t.id = p.ticket_id
     WHERE p.status = 'queued' AND t.status = 'in_progress' ORDER BY p.updated_at LIMIT p_limit
$$;
REVOKE ALL ON FUNCTION oshal_held_phases(int) FROM PUBLIC, oshal_api;
GRANT EXECUTE ON FUNCTION oshal_held_phases(int) TO oshal_api;
