-- Re-drives that never race the original, and at most one successful execution per phase (issue 12, items 3-4).

-- An attempt row is one execution: a redelivery of the same envelope to another replica (reclaimed after its
-- first reader stopped answering) runs the harness again, so it is recorded (and billed) apart, under its
-- delivery count. A redelivered *result* of the same execution still finds its row and changes nothing twice.
ALTER TABLE attempts DROP CONSTRAINT attempts_pkey, ADD PRIMARY KEY (phase_id, attempt, deliveries);

-- The sweeper re-sends only dispatched phases whose envelope is in neither the lane nor the output stream
-- (oshal_stale_dispatches); oshal_stale_phases judged by time alone.
DROP FUNCTION IF EXISTS oshal_stale_phases(interval, int);

-- What GET /v1/tickets/{id} shows (sql/functions/oshal_ticket.sql reads it). security_invoker: the caller's RLS
-- applies through the view. ``duplicates``: executions beyond the first successful one per phase (a duplicate ran
-- and was billed).
CREATE OR REPLACE VIEW ticket_view WITH (security_invoker = true) AS
SELECT t.id, t.tenant_id, t.bot, t.type, t.status, t.phase, t.status_reason, t.parent_id, t.input, t.result,
       t.error, t.created_at, t.finished_at, t.idempotency_key, p.id AS phase_id, p.attempt, p.dispatched_at,
       a.started_at, a.deliveries, a.consumer,
       (coalesce(l.cost, 0) + t.rolled_cost_micros)::bigint AS cost_micros,
       (coalesce(l.calls, 0) + t.rolled_calls)::bigint AS calls, t.replay_of,
       coalesce(d.duplicates, 0)::bigint AS duplicates
FROM tickets t
LEFT JOIN LATERAL (
    SELECT id, attempt, dispatched_at FROM phases WHERE phases.ticket_id = t.id ORDER BY seq DESC LIMIT 1
) p ON true
LEFT JOIN LATERAL (
    SELECT started_at, deliveries, consumer FROM attempts a
    WHERE a.phase_id = p.id ORDER BY attempt DESC, deliveries DESC LIMIT 1
) a ON true
LEFT JOIN LATERAL (
    SELECT sum(cost_micros) AS cost, count(*) AS calls FROM ledger WHERE ledger.ticket_id = t.id
) l ON true
LEFT JOIN LATERAL (
    SELECT count(*) - count(DISTINCT a.phase_id) AS duplicates FROM attempts a
     WHERE a.ticket_id = t.id AND a.outcome = 'done'
) d ON true;
GRANT SELECT ON ticket_view TO oshal_api;
