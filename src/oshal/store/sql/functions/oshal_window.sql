-- The start of the window ``p_at`` falls in (UTC calendar days and months).
CREATE OR REPLACE FUNCTION oshal_window(p_period text, p_at timestamptz) RETURNS timestamptz
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE p_period
        WHEN 'day' THEN date_trunc('day', p_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
        WHEN 'month' THEN date_trunc('month', p_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
        ELSE 'epoch'::timestamptz END
$$;
REVOKE ALL ON FUNCTION oshal_window(text, timestamptz) FROM PUBLIC, oshal_api;
GRANT EXECUTE ON FUNCTION oshal_window(text, timestamptz) TO oshal_api;
