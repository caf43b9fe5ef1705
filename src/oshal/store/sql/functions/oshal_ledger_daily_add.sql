-- Adds day totals into ledger_daily: a total for a (tenant, day, bot, provider, model, price source) that is there
-- already is summed into it. The one place the daily roll-up is merged into, by the retention's fold
-- (oshal_rollup_ledger), the daily advance (oshal_advance_ledger_daily) and a backdated call (oshal_ledger_backdated),
-- all of them definer functions: it runs as its caller, the owner.
CREATE OR REPLACE FUNCTION oshal_ledger_daily_add(p_totals ledger_daily[]) RETURNS void
LANGUAGE sql SET search_path = public, pg_temp AS $$
    INSERT INTO ledger_daily AS d SELECT * FROM unnest(p_totals)
    ON CONFLICT (tenant_id, day, bot, provider, model, price_source) DO UPDATE SET
        calls = d.calls + EXCLUDED.calls, input_tokens = d.input_tokens + EXCLUDED.input_tokens,
        output_tokens = d.output_tokens + EXCLUDED.output_tokens,
        cached_read_tokens = d.cached_read_tokens + EXCLUDED.cached_read_tokens,
        cache_write_tokens = d.cache_write_tokens + EXCLUDED.cache_write_tokens,
        reasoning_tokens = d.reasoning_tokens + EXCLUDED.reasoning_tokens,
        cost_micros = d.cost_micros + EXCLUDED.cost_micros,
        computed_cost_micros = d.computed_cost_micros + EXCLUDED.computed_cost_micros,
        reported_cost_micros = d.reported_cost_micros + EXCLUDED.reported_cost_micros,
        both_calls = d.both_calls + EXCLUDED.both_calls, both_computed = d.both_computed + EXCLUDED.both_computed,
        both_reported = d.both_reported + EXCLUDED.both_reported;
$$;
REVOKE ALL ON FUNCTION oshal_ledger_daily_add(ledger_daily[]) FROM PUBLIC, oshal_api;
