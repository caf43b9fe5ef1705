-- Fold per-call rows older than ``p_before`` into daily totals (and each ticket's own totals), then drop them. Rows
-- dated before the roll-up cut-off are in the daily totals already (oshal_advance_ledger_daily): only dropped.
CREATE OR REPLACE FUNCTION oshal_rollup_ledger(p_before timestamptz) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE v_count bigint; v_cutoff timestamptz;
BEGIN
    PERFORM set_config('oshal.events', 'bulk', true);  -- a ticket's totals changing is not a transition
    SELECT ledger_before INTO v_cutoff FROM rollup_cutoff FOR UPDATE;  -- the advance waits, and is waited for
    CREATE TEMP TABLE rolled ON COMMIT DROP AS
        SELECT * FROM ledger WHERE created_at < p_before FOR UPDATE;
    PERFORM oshal_ledger_daily_add(ARRAY(SELECT day_total::ledger_daily FROM (
        SELECT tenant_id, (created_at AT TIME ZONE 'UTC')::date, bot, provider, model, price_source, count(*),
               sum(input_tokens), sum(output_tokens), sum(cached_read_tokens), sum(cache_write_tokens),
               sum(reasoning_tokens), sum(cost_micros), sum(coalesce(computed_cost_micros, 0)),
               sum(coalesce(reported_cost_micros, 0)),
               count(*) FILTER (WHERE computed_cost_micros IS NOT NULL AND reported_cost_micros IS NOT NULL),
               coalesce(sum(computed_cost_micros) FILTER (WHERE reported_cost_micros IS NOT NULL), 0),
               coalesce(sum(reported_cost_micros) FILTER (WHERE computed_cost_micros IS NOT NULL), 0)
          FROM rolled WHERE created_at >= v_cutoff GROUP BY 1, 2, 3, 4, 5, 6
    ) day_total));
    UPDATE tickets t SET rolled_cost_micros = t.rolled_cost_micros + r.cost, rolled_calls = t.rolled_calls + r.calls
      FROM (SELECT ticket_id, sum(cost_micros) AS cost, count(*) AS calls FROM rolled GROUP BY ticket_id) r
     WHERE t.id = r.ticket_id;
    DELETE FROM ledger l USING rolled r WHERE l.call_id = r.call_id;
    GET DIAGNOSTICS v_count = ROW_COUNT;
    RETURN v_count;
END $$;
REVOKE ALL ON FUNCTION oshal_rollup_ledger(timestamptz) FROM PUBLIC, oshal_api;
GRANT EXECUTE ON FUNCTION oshal_rollup_ledger(timestamptz) TO oshal_api;
