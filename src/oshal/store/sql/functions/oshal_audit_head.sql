-- The chain head, where retention last cut it, and how many entries are kept.
CREATE OR REPLACE FUNCTION oshal_audit_head()
RETURNS TABLE (seq bigint, hash bytea, pruned_seq bigint, entries bigint)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT c.seq, c.hash, c.pruned_seq, (SELECT count(*) FROM audit_log) FROM audit_chain c
$$;
REVOKE ALL ON FUNCTION oshal_audit_head() FROM PUBLIC, oshal_api;
GRANT EXECUTE ON FUNCTION oshal_audit_head() TO oshal_api;
