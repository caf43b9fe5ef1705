-- Expired console sessions, across tenants (each row is only a digest and its key): removed in bounded batches.
CREATE OR REPLACE FUNCTION oshal_session_sweep(p_limit int) RETURNS int
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
    WITH gone AS (
        DELETE FROM console_sessions WHERE digest IN (
            SELECT digest FROM console_sessions WHERE expires_at <= now() ORDER BY expires_at LIMIT p_limit)
        RETURNING 1)
    SELECT count(*)::int FROM gone
$$;
REVOKE ALL ON FUNCTION oshal_session_sweep(int) FROM PUBLIC, oshal_api;
GRANT EXECUTE ON FUNCTION oshal_session_sweep(int) TO oshal_api;
