-- The audit log against its own database owner. No session setting opens the append-only trigger any more:
-- a DELETE passes only when it runs as oshal_audit_keeper, a role nobody logs in as, which after start-up owns
-- the audit tables and functions (security/audit_seal.py hands them over; only a superuser can). The only
-- function of that role that deletes is the retention function below.

CREATE OR REPLACE FUNCTION oshal_audit_append_only() RETURNS trigger
LANGUAGE plpgsql SET search_path = public, pg_temp AS $$
BEGIN
    IF TG_OP = 'DELETE' AND current_user = 'oshal_audit_keeper' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'the audit log is append-only (% on % refused)', TG_OP, TG_TABLE_NAME USING ERRCODE = 'OX403';
END $$;

-- Anchors are kept as the log is: appended, and removed only by retention.
CREATE TRIGGER audit_anchors_append_only BEFORE UPDATE OR DELETE ON audit_anchors
    FOR EACH ROW EXECUTE FUNCTION oshal_audit_append_only();
CREATE TRIGGER audit_anchors_no_truncate BEFORE TRUNCATE ON audit_anchors
    FOR EACH STATEMENT EXECUTE FUNCTION oshal_audit_append_only();

-- The last entry retention would remove for p_before: the platform records it in its anchor file (MACed with
-- a key the database never sees) before it prunes, so a verifier can tell retention from a deleted prefix.
CREATE FUNCTION oshal_audit_prune_point(p_before timestamptz) RETURNS bigint
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT coalesce(max(seq), 0) FROM audit_log WHERE at < p_before
$$;

CREATE OR REPLACE FUNCTION oshal_audit_prune(p_before timestamptz) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    v_last bigint;
    v_hash bytea;
    v_count bigint;
BEGIN
    IF p_before > now() - interval '30 days' THEN
        RAISE EXCEPTION 'audit entries are kept at least 30 days (asked to prune before %)', p_before
            USING ERRCODE = 'OX403';
    END IF;
    IF current_user <> 'oshal_audit_keeper' THEN
        RAISE EXCEPTION 'the audit log is not sealed (its functions are owned by %, not oshal_audit_keeper)',
            current_user USING ERRCODE = 'OX403',
            HINT = 'start the platform once with a superuser connection, or run `oshal audit seal`';
    END IF;
    PERFORM 1 FROM audit_chain FOR UPDATE;
    SELECT l.seq, l.hash INTO v_last, v_hash FROM audit_log l WHERE l.at < p_before ORDER BY l.seq DESC LIMIT 1;
    IF v_last IS NULL THEN
        RETURN 0;
    END IF;
    DELETE FROM audit_log WHERE seq <= v_last;
    GET DIAGNOSTICS v_count = ROW_COUNT;
    DELETE FROM audit_anchors WHERE seq <= v_last;
    UPDATE audit_chain SET pruned_seq = v_last, pruned_hash = v_hash;
    PERFORM oshal_audit(ARRAY[NULL::uuid], ARRAY['platform'], ARRAY['audit.pruned'], ARRAY[p_before::text],
                        ARRAY[jsonb_build_object('through_seq', v_last, 'entries', v_count)]);
    RETURN v_count;
END $$;

REVOKE ALL ON FUNCTION oshal_audit_prune_point(timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION oshal_audit_prune_point(timestamptz) TO oshal_api;
