-- The Security Center's access scan: one tenant's keys, or (p_tenant NULL, platform's scope) every tenant's.
CREATE OR REPLACE FUNCTION oshal_key_inventory(p_tenant uuid)
RETURNS TABLE (id uuid, tenant_id uuid, prefix text, role text, name text, created_at timestamptz,
               expires_at timestamptz, revoked_at timestamptz, last_used_at timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT oshal_require_scope('oshal_key_inventory', p_tenant);
    SELECT id, tenant_id, prefix, role, name, created_at, expires_at, revoked_at, last_used_at FROM api_keys
     WHERE p_tenant IS NULL OR tenant_id = p_tenant
$$;
REVOKE ALL ON FUNCTION oshal_key_inventory(uuid) FROM PUBLIC, oshal_api;
GRANT EXECUTE ON FUNCTION oshal_key_inventory(uuid) TO oshal_api;
