-- requires: oshal_isolate_tenants
-- Volume (issue 17): a tenant's ticket counts and ledger totals are read from daily roll-ups of the days before a
-- cut-off plus the live rows from the cut-off on, so neither read grows with the tenant's history.
-- The cut-offs are midnights (UTC) the sweeper advances a day at a time (store/sql/functions/oshal_advance_*),
-- never into the last hour; '-infinity' (nothing rolled) until it first runs.
CREATE TABLE rollup_cutoff (
    id                   boolean PRIMARY KEY DEFAULT true CHECK (id),
    -- tickets whose id (a UUIDv7: its creation time) is below tickets_below are counted in ticket_counts_daily
    tickets_before       timestamptz NOT NULL,
    tickets_below        uuid NOT NULL,
    -- ledger rows created before ledger_before are summed in ledger_daily (and stay in ledger for the retention)
    ledger_before        timestamptz NOT NULL,
    tickets_advanced_at  timestamptz,
    ledger_advanced_at   timestamptz,
    CHECK (date_trunc('day', tickets_before, 'UTC') = tickets_before),
    CHECK (date_trunc('day', ledger_before, 'UTC') = ledger_before)
);
INSERT INTO rollup_cutoff (tickets_before, tickets_below, ledger_before)
VALUES ('-infinity', '00000000-0000-0000-0000-000000000000', '-infinity');

-- Tickets below the cut-off, per tenant, day (of their id) and status. A status change (or insert, or delete) of
-- such a ticket adjusts it (oshal_ticket_counts_adjust), so it always equals count(*) over those tickets.
CREATE TABLE ticket_counts_daily (
    tenant_id  uuid NOT NULL,
    day        date NOT NULL,
    status     text NOT NULL,
    n          bigint NOT NULL,
    PRIMARY KEY (tenant_id, day, status)
);
SELECT oshal_isolate_tenants('ticket_counts_daily');
DO $$
BEGIN
    -- Definer functions (run as the owner) advance the roll-up across tenants and adjust it from the trigger.
    EXECUTE format('CREATE POLICY owner_rollup ON ticket_counts_daily TO %I USING (true) WITH CHECK (true)',
                   current_user);
END $$;
-- Read-only to the API: only the owner's definer functions write the roll-ups and move the cut-off.
GRANT SELECT ON ticket_counts_daily, rollup_cutoff TO oshal_api;

-- Ledger rows and daily totals together: every daily total, and the per-call rows not yet rolled into one. A
-- reader of a window that starts or ends inside a rolled day takes that part of the day from the per-call rows
-- (store/ledger.py); filtering this view by a time inside a rolled day counts that whole day or none of it.
CREATE OR REPLACE VIEW ledger_totals WITH (security_invoker = true) AS
SELECT tenant_id, created_at AS at, bot, provider, model, price_source, 1::bigint AS calls, input_tokens,
       output_tokens, cached_read_tokens, cache_write_tokens, reasoning_tokens, cost_micros,
       coalesce(computed_cost_micros, 0) AS computed_cost_micros,
       coalesce(reported_cost_micros, 0) AS reported_cost_micros,
       (computed_cost_micros IS NOT NULL AND reported_cost_micros IS NOT NULL)::int::bigint AS both_calls,
       CASE WHEN reported_cost_micros IS NOT NULL THEN coalesce(computed_cost_micros, 0) ELSE 0 END AS both_computed,
       CASE WHEN computed_cost_micros IS NOT NULL THEN coalesce(reported_cost_micros, 0) ELSE 0 END AS both_reported
  FROM ledger WHERE created_at >= (SELECT ledger_before FROM rollup_cutoff WHERE id)
UNION ALL
SELECT tenant_id, day::timestamp AT TIME ZONE 'UTC', bot, provider, model, price_source, calls, input_tokens,
       output_tokens, cached_read_tokens, cache_write_tokens, reasoning_tokens, cost_micros, computed_cost_micros,
       reported_cost_micros, both_calls, both_computed, both_reported
  FROM ledger_daily;
