-- The runtime scan's bursts (refused logins, denied tool calls) across the platform: its scope only.
CREATE OR REPLACE FUNCTION oshal_audit_counts(p_since timestamptz)
RETURNS TABLE (action text, actor text, n bigint)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT oshal_require_scope('oshal_audit_counts', NULL);
    SELECT action, actor, count(*) FROM audit_log WHERE at >= p_since GROUP BY action, actor
$$;
REVOKE ALL ON FUNCTION oshal_audit_counts(timestamptz) FROM PUBLIC, oshal_api;
GRANT EXECUTE ON FUNCTION oshal_audit_counts(timestamptz) TO oshal_api;
