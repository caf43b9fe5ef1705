-- A console request presents its session cookie's digest before its tenant is known. The row comes back only for a
-- live session, with its key's role and validity, so a revoked or expired key ends its sessions at once.
CREATE OR REPLACE FUNCTION oshal_session_check(p_digest bytea)
RETURNS TABLE (key_id uuid, tenant_id uuid, role text, expires_at timestamptz, key_expires_at timestamptz,
               revoked_at timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT k.id, k.tenant_id, k.role, s.expires_at, k.expires_at, k.revoked_at
      FROM console_sessions s JOIN api_keys k ON k.id = s.key_id AND k.tenant_id = s.tenant_id
     WHERE s.digest = p_digest AND s.expires_at > now()
$$;
REVOKE ALL ON FUNCTION oshal_session_check(bytea) FROM PUBLIC, oshal_api;
GRANT EXECUTE ON FUNCTION oshal_session_check(bytea) TO oshal_api;
