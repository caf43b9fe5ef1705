-- Retention: entries before p_before go; the chain's new start is remembered so the rest still verifies. Never
-- younger than 30 days, whoever calls it, only once the log is sealed (it runs as oshal_audit_keeper), and the
-- prune itself is an entry of the chain (it cannot go unseen).
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
REVOKE ALL ON FUNCTION oshal_audit_prune(timestamptz) FROM PUBLIC, oshal_api;
GRANT EXECUTE ON FUNCTION oshal_audit_prune(timestamptz) TO oshal_api;
