-- Appends entries to the audit log, one chain across the platform: each entry carries the hash of the previous
-- one, so an edited entry no longer matches its hash and a deleted one breaks the links. The only way entries are
-- written; serialises on the chain head.
CREATE OR REPLACE FUNCTION oshal_audit(p_tenants uuid[], p_actors text[], p_actions text[], p_targets text[],
                            p_details jsonb[]) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    v_seq bigint;
    v_hash bytea;
    v_prev bytea;
    v_at timestamptz := clock_timestamp();
    i int;
BEGIN
    SELECT seq, hash INTO v_seq, v_hash FROM audit_chain FOR UPDATE;
    FOR i IN 1 .. coalesce(array_length(p_actions, 1), 0) LOOP
        v_seq := v_seq + 1;
        v_prev := v_hash;
        v_hash := oshal_audit_digest(v_prev, v_seq, v_at, p_tenants[i], p_actors[i], p_actions[i],
                                     coalesce(p_targets[i], ''), coalesce(p_details[i], '{}'));
        INSERT INTO audit_log (seq, tenant_id, at, actor, action, target, detail, prev_hash, hash)
        VALUES (v_seq, p_tenants[i], v_at, p_actors[i], p_actions[i], coalesce(p_targets[i], ''),
                coalesce(p_details[i], '{}'), v_prev, v_hash);
    END LOOP;
    UPDATE audit_chain SET seq = v_seq, hash = v_hash;
    RETURN v_seq;
END $$;
REVOKE ALL ON FUNCTION oshal_audit(uuid[], text[], text[], text[], jsonb[]) FROM PUBLIC, oshal_api;
GRANT EXECUTE ON FUNCTION oshal_audit(uuid[], text[], text[], text[], jsonb[]) TO oshal_api;
