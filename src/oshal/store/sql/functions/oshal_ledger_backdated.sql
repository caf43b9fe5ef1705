-- A ledger row dated before the cut-off (a transaction that began before midnight and wrote after the advance, or
-- a restore) is added to its day's total at once, so the daily roll-up keeps holding every call before the cut-off.
-- The WHEN keeps it off the hot path: the collector's rows are dated by their transaction's start, moments ago.
CREATE OR REPLACE FUNCTION oshal_ledger_backdated() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    IF NEW.created_at >= (SELECT ledger_before FROM rollup_cutoff) THEN
        RETURN NULL;
    END IF;
    PERFORM oshal_ledger_daily_add(ARRAY[ROW(
        NEW.tenant_id, (NEW.created_at AT TIME ZONE 'UTC')::date, NEW.bot, NEW.provider, NEW.model, NEW.price_source,
        1, NEW.input_tokens, NEW.output_tokens, NEW.cached_read_tokens, NEW.cache_write_tokens, NEW.reasoning_tokens,
        NEW.cost_micros, coalesce(NEW.computed_cost_micros, 0), coalesce(NEW.reported_cost_micros, 0),
        (NEW.computed_cost_micros IS NOT NULL AND NEW.reported_cost_micros IS NOT NULL)::int,
        CASE WHEN NEW.reported_cost_micros IS NOT NULL THEN coalesce(NEW.computed_cost_micros, 0) ELSE 0 END,
        CASE WHEN NEW.computed_cost_micros IS NOT NULL THEN coalesce(NEW.reported_cost_micros, 0) ELSE 0 END
    )::ledger_daily]);
    RETURN NULL;
END $$;
CREATE OR REPLACE TRIGGER ledger_backdated AFTER INSERT ON ledger FOR EACH ROW
    WHEN (NEW.created_at < clock_timestamp() - interval '1 hour')
    EXECUTE FUNCTION oshal_ledger_backdated();
REVOKE ALL ON FUNCTION oshal_ledger_backdated() FROM PUBLIC, oshal_api;
