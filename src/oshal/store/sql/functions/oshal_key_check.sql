-- Authentication happens before a tenant is known. The caller presents the key's digest; the row comes back only
-- when it matches, so neither the stored hash nor any other key's row ever leaves the database.
CREATE OR REPLACE FUNCTION oshal_key_check(p_prefix text, p_digest bytea)
RETURNS TABLE (id uuid, tenant_id uuid, role text, expires_at timestamptz, revoked_at timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT id, tenant_id, role, expires_at, revoked_at FROM api_keys WHERE prefix = p_prefix AND hash = p_digest
$$;
REVOKE ALL ON FUNCTION oshal_key_check(text, bytea) FROM PUBLIC, oshal_api;
GRANT EXECUTE ON FUNCTION oshal_key_check(text, bytea) TO oshal_api;
