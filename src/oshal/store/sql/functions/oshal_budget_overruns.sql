-- Overrun budgets across tenants since ``p_since``, for the sweeper to have the spend scan file them at once.
CREATE OR REPLACE FUNCTION oshal_budget_overruns(p_since timestamptz)
RETURNS TABLE (tenant_id uuid, budget_id uuid, overrun_at timestamptz, overrun_micros bigint, reason text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT oshal_require_scope('oshal_budget_overruns', NULL);
    SELECT b.tenant_id, b.id, b.overrun_at, b.overrun_micros, b.overrun_reason FROM budgets b
     WHERE b.overrun_at > p_since ORDER BY b.overrun_at
$$;
REVOKE ALL ON FUNCTION oshal_budget_overruns(timestamptz) FROM PUBLIC, oshal_api;
GRANT EXECUTE ON FUNCTION oshal_budget_overruns(timestamptz) TO oshal_api;
