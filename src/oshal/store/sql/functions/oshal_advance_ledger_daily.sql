-- Move the ledger's cut-off forward by at most p_max_days whole days (UTC), towards the last midnight before
-- p_until and never into the last hour, summing every per-call row between the old and the new cut-off into
-- ledger_daily (the rows themselves stay until the retention removes them); returns the cut-off reached.
-- Idempotent per day (the cut-off row is locked first, and a day is summed in the transaction that moves the
-- cut-off past it). The SHARE lock waits for every transaction writing ledger rows to commit; rows dated before
-- the cut-off that arrive later are added by oshal_ledger_backdated. Each tenant's rows are read through its
-- (tenant_id, created_at) index.
CREATE OR REPLACE FUNCTION oshal_advance_ledger_daily(p_until timestamptz, p_max_days int) RETURNS timestamptz
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    v_from timestamptz;
    v_to timestamptz := date_trunc('day', least(p_until, now() - interval '1 hour'), 'UTC');
BEGIN
    SELECT ledger_before INTO v_from FROM rollup_cutoff FOR UPDATE;
    IF v_to <= v_from THEN
        RETURN v_from;
    END IF;
    PERFORM set_config('lock_timeout', '2s', true);
    LOCK TABLE ledger IN SHARE MODE;
    v_to := least(v_to, coalesce(date_trunc('day', (SELECT min(l.created_at) FROM tenants t
                                                   CROSS JOIN LATERAL (SELECT created_at FROM ledger
                                                                        WHERE tenant_id = t.id AND created_at >= v_from
                                                                        ORDER BY created_at LIMIT 1) l), 'UTC'),
                                 v_to) + make_interval(days => greatest(p_max_days, 1)));
    PERFORM oshal_ledger_daily_add(ARRAY(SELECT day_total::ledger_daily FROM (
        SELECT l.tenant_id, (l.created_at AT TIME ZONE 'UTC')::date, l.bot, l.provider, l.model, l.price_source, count(*),
               sum(l.input_tokens), sum(l.output_tokens), sum(l.cached_read_tokens), sum(l.cache_write_tokens),
               sum(l.reasoning_tokens), sum(l.cost_micros), sum(coalesce(l.computed_cost_micros, 0)),
               sum(coalesce(l.reported_cost_micros, 0)),
               count(*) FILTER (WHERE l.computed_cost_micros IS NOT NULL AND l.reported_cost_micros IS NOT NULL),
               coalesce(sum(l.computed_cost_micros) FILTER (WHERE l.reported_cost_micros IS NOT NULL), 0),
               coalesce(sum(l.reported_cost_micros) FILTER (WHERE l.computed_cost_micros IS NOT NULL), 0)
          FROM tenants t CROSS JOIN LATERAL (SELECT * FROM ledger WHERE tenant_id = t.id AND created_at >= v_from
                                               AND created_at < v_to) l
         GROUP BY 1, 2, 3, 4, 5, 6
    ) day_total));
    UPDATE rollup_cutoff SET ledger_before = v_to, ledger_advanced_at = now();
    RETURN v_to;
END $$;
REVOKE ALL ON FUNCTION oshal_advance_ledger_daily(timestamptz, int) FROM PUBLIC, oshal_api;
GRANT EXECUTE ON FUNCTION oshal_advance_ledger_daily(timestamptz, int) TO oshal_api;
