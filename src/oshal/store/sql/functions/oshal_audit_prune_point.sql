-- The last entry retention would remove for p_before: the platform records it in its anchor file (MACed with
-- a key the database never sees) before it prunes, so a verifier can tell retention from a deleted prefix.
CREATE OR REPLACE FUNCTION oshal_audit_prune_point(p_before timestamptz) RETURNS bigint
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT coalesce(max(seq), 0) FROM audit_log WHERE at < p_before
$$;
REVOKE ALL ON FUNCTION oshal_audit_prune_point(timestamptz) FROM PUBLIC, oshal_api;
GRANT EXECUTE ON FUNCTION oshal_audit_prune_point(timestamptz) TO oshal_api;
