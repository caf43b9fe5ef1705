-- Entries as stored, for export and for checking anchors: one tenant's, or (NULL, platform's scope) all of them.
CREATE OR REPLACE FUNCTION oshal_audit_entries(p_tenant uuid, p_after bigint, p_limit int)
RETURNS SETOF audit_log
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT oshal_require_scope('oshal_audit_entries', p_tenant);
    SELECT * FROM audit_log WHERE seq > p_after AND (p_tenant IS NULL OR tenant_id = p_tenant)
     ORDER BY seq LIMIT p_limit
$$;
REVOKE ALL ON FUNCTION oshal_audit_entries(uuid, bigint, int) FROM PUBLIC, oshal_api;
GRANT EXECUTE ON FUNCTION oshal_audit_entries(uuid, bigint, int) TO oshal_api;
