-- The bars table (migration 020) is partitioned by year of the bar's start. This adds the partition of one year:
-- created like the parent, the rows the DEFAULT partition took for that year moved into it, attached, and its
-- row-level security enabled and forced like every tenant table. Idempotent. A later migration (run as the owner)
-- adds years ahead of time with SELECT oshal_bars_partition(YEAR); bars of a year without a partition are never
-- refused meanwhile: they land in bars_default and move here when their year is added.
CREATE OR REPLACE FUNCTION oshal_bars_partition(p_year int) RETURNS text
LANGUAGE plpgsql SET search_path = public, pg_temp AS $$
DECLARE
    v_name text := format('bars_%s', p_year);
    v_from timestamptz;
    v_to timestamptz;
BEGIN
    IF p_year < 1900 OR p_year > 9998 THEN
        RAISE EXCEPTION 'bars partitions are by year from 1900 to 9998, not %', p_year;
    END IF;
    IF to_regclass(v_name) IS NOT NULL THEN
        RETURN v_name;
    END IF;
    v_from := make_timestamptz(p_year, 1, 1, 0, 0, 0, 'UTC');
    v_to := make_timestamptz(p_year + 1, 1, 1, 0, 0, 0, 'UTC');
    EXECUTE format('CREATE TABLE %I (LIKE bars INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', v_name);
    -- Forced RLS hides every row from the owner outside a tenant's transaction; the move is the owner's own
    -- housekeeping across tenants, so the default partition's RLS is relaxed for it alone, in this transaction.
    ALTER TABLE bars_default NO FORCE ROW LEVEL SECURITY;
    EXECUTE format('WITH moved AS (DELETE FROM bars_default WHERE start >= %L AND start < %L RETURNING *) '
                   'INSERT INTO %I SELECT * FROM moved', v_from, v_to, v_name);
    ALTER TABLE bars_default FORCE ROW LEVEL SECURITY;
    EXECUTE format('ALTER TABLE bars ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)', v_name, v_from, v_to);
    PERFORM oshal_isolate_tenants(v_name);
    RETURN v_name;
END $$;
REVOKE ALL ON FUNCTION oshal_bars_partition(int) FROM PUBLIC, oshal_api;
