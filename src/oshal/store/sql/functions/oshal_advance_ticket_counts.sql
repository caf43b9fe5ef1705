-- Move the tickets' cut-off forward by at most p_max_days whole days (UTC), towards the last midnight before
-- p_until and never into the last hour, counting every ticket between the old and the new cut-off into
-- ticket_counts_daily; returns the cut-off reached. Idempotent: a day is counted once, in the transaction that
-- moves the cut-off past it (the cut-off row is locked first, so two callers serialize). The SHARE lock waits for
-- every transaction that is writing tickets to commit (so none of their changes is missed) and holds new writes
-- back while a day is counted (a range scan of the primary key); lock_timeout bounds the wait.
CREATE OR REPLACE FUNCTION oshal_advance_ticket_counts(p_until timestamptz, p_max_days int) RETURNS timestamptz
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    v_from timestamptz;
    v_from_id uuid;
    v_to timestamptz := date_trunc('day', least(p_until, now() - interval '1 hour'), 'UTC');
    v_to_id uuid;
BEGIN
    SELECT tickets_before, tickets_below INTO v_from, v_from_id FROM rollup_cutoff FOR UPDATE;
    IF v_to <= v_from THEN
        RETURN v_from;
    END IF;
    IF v_from = '-infinity' THEN  -- the first advance starts at the oldest ticket's day
        v_from := date_trunc('day', (SELECT uuid_extract_timestamp(id) FROM tickets ORDER BY id LIMIT 1), 'UTC');
    END IF;
    v_to := least(v_to, coalesce(v_from, v_to) + make_interval(days => greatest(p_max_days, 1)));
    v_to_id := (lpad(to_hex((extract(epoch FROM v_to) * 1000)::bigint), 12, '0') || repeat('0', 20))::uuid;
    PERFORM set_config('lock_timeout', '2s', true);
    LOCK TABLE tickets IN SHARE MODE;
    INSERT INTO ticket_counts_daily AS c (tenant_id, day, status, n)
    SELECT tenant_id, coalesce((uuid_extract_timestamp(id) AT TIME ZONE 'UTC')::date, date '1970-01-01'), status,
           count(*)
      FROM tickets WHERE id >= v_from_id AND id < v_to_id GROUP BY 1, 2, 3
    ON CONFLICT (tenant_id, day, status) DO UPDATE SET n = c.n + EXCLUDED.n;
    UPDATE rollup_cutoff SET tickets_before = v_to, tickets_below = v_to_id, tickets_advanced_at = now();
    RETURN v_to;
END $$;
REVOKE ALL ON FUNCTION oshal_advance_ticket_counts(timestamptz, int) FROM PUBLIC, oshal_api;
GRANT EXECUTE ON FUNCTION oshal_advance_ticket_counts(timestamptz, int) TO oshal_api;
