-- Every break in the chain: an entry whose hash does not match its content, a broken link, a gap, or a head that
-- does not match the last entry. No rows means the chain is intact.
CREATE OR REPLACE FUNCTION oshal_audit_verify()
RETURNS TABLE (seq bigint, problem text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    WITH chain AS (SELECT * FROM audit_chain),
    rows AS (
        SELECT l.*, lag(l.hash) OVER w AS prior_hash, lag(l.seq) OVER w AS prior_seq
          FROM audit_log l WINDOW w AS (ORDER BY l.seq)
    )
    SELECT r.seq, 'entry does not match its hash (edited)'
      FROM rows r
     WHERE r.hash <> oshal_audit_digest(r.prev_hash, r.seq, r.at, r.tenant_id, r.actor, r.action, r.target,
                                        r.detail)
    UNION ALL
    SELECT r.seq, 'link to the previous entry is broken (entries deleted or replaced)'
      FROM rows r, chain c
     WHERE r.prev_hash <> coalesce(r.prior_hash, c.pruned_hash)
        OR r.seq <> coalesce(r.prior_seq, c.pruned_seq) + 1
    UNION ALL
    SELECT c.seq, 'chain head does not match the last entry (entries deleted at the end)'
      FROM chain c
      LEFT JOIN LATERAL (SELECT l.seq, l.hash FROM audit_log l ORDER BY l.seq DESC LIMIT 1) last ON true
     WHERE c.seq <> coalesce(last.seq, c.pruned_seq) OR c.hash <> coalesce(last.hash, c.pruned_hash)
    ORDER BY 1
$$;
REVOKE ALL ON FUNCTION oshal_audit_verify() FROM PUBLIC, oshal_api;
GRANT EXECUTE ON FUNCTION oshal_audit_verify() TO oshal_api;
