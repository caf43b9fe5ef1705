-- Records an anchor: the chain head's seq and hash, MACed with a key the database never sees, so a verifier can
-- detect a chain rewritten from some point on.
CREATE OR REPLACE FUNCTION oshal_audit_anchor(p_seq bigint, p_hash bytea, p_mac bytea) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
    INSERT INTO audit_anchors (seq, hash, mac) VALUES (p_seq, p_hash, p_mac) ON CONFLICT (seq) DO NOTHING
$$;
REVOKE ALL ON FUNCTION oshal_audit_anchor(bigint, bytea, bytea) FROM PUBLIC, oshal_api;
GRANT EXECUTE ON FUNCTION oshal_audit_anchor(bigint, bytea, bytea) TO oshal_api;
