-- The stored hashes of the given entries, for checking anchors.
CREATE OR REPLACE FUNCTION oshal_audit_hashes(p_seqs bigint[])
RETURNS TABLE (seq bigint, hash bytea)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT seq, hash FROM audit_log WHERE seq = ANY (p_seqs)
$$;
REVOKE ALL ON FUNCTION oshal_audit_hashes(bigint[]) FROM PUBLIC, oshal_api;
GRANT EXECUTE ON FUNCTION oshal_audit_hashes(bigint[]) TO oshal_api;
