-- Tickets and their first phase in one statement, dispatched; or paused (not dispatched) when a tenant or bot
-- budget above them has nothing left (raising the budget resumes them). Returns each inserted ticket with why it
-- was held; a row whose idempotency key exists already is skipped and the caller resolves it.
--
-- Like every hot-path function here it sets the tenant for its own implicit transaction and runs as the caller
-- (SECURITY INVOKER), so RLS still decides what it sees and writes: one statement in autocommit mode instead of
-- BEGIN, the tenant setting, the statement and COMMIT.
--
-- No sequential scans (enable_seqscan off for the call, so for the foreign key checks it fires too): a connection
-- keeps each plan made at its first use; made while the tables were small, the checks of each new phase's ticket
-- scanned every ticket as the table grew.
CREATE OR REPLACE FUNCTION oshal_create_tickets(p_tenant uuid, p_by uuid, p_ids uuid[], p_phase_ids uuid[], p_bots text[],
                                     p_inputs text[], p_keys text[], p_hashes bytea[])
RETURNS TABLE (id uuid, exhausted text)
LANGUAGE plpgsql SET enable_seqscan = off AS $$
BEGIN
    PERFORM set_config('oshal.tenant_id', p_tenant::text, true);
    RETURN QUERY
    WITH empty AS MATERIALIZED (  -- once per batch, not once per ticket
        SELECT b.scope, b.subject, format('budget: %s%s budget (%s) is exhausted: %s of %s micro-dollars used',
                                          b.scope, CASE WHEN b.subject = '' THEN '' ELSE ' ' || b.subject END,
                                          b.period, coalesce(u.spent + u.reserved, 0), b.limit_micros) AS why
          FROM budgets b
          LEFT JOIN budget_usage u ON u.budget_id = b.id AND u.window_start = oshal_window(b.period, now())
         WHERE b.scope IN ('tenant', 'bot') AND coalesce(u.spent + u.reserved, 0) >= b.limit_micros
    ), src AS (
        SELECT u.*, (SELECT e.why FROM empty e WHERE e.scope = 'tenant' OR e.subject = u.bot LIMIT 1) AS why
          FROM unnest(p_ids, p_phase_ids, p_bots, p_inputs, p_keys, p_hashes)
               AS u(ticket, phase, bot, input, key, hash)
    ), t AS (
        INSERT INTO tickets (id, tenant_id, bot, status, input, idempotency_key, request_hash, created_by,
                             status_reason, resume_status)
        SELECT src.ticket, p_tenant, src.bot, CASE WHEN src.why IS NULL THEN 'in_progress' ELSE 'paused' END,
               src.input::jsonb, src.key, src.hash, p_by, src.why,
               CASE WHEN src.why IS NULL THEN NULL ELSE 'in_progress' END
          FROM src
        ON CONFLICT (tenant_id, idempotency_key) DO NOTHING
        RETURNING tickets.id
    ), p AS (
        INSERT INTO phases (id, tenant_id, ticket_id, seq, bot, status, attempt, dispatched_at, updated_at)
        SELECT src.phase, p_tenant, src.ticket, 0, src.bot,
               CASE WHEN src.why IS NULL THEN 'dispatched' ELSE 'queued' END,
               CASE WHEN src.why IS NULL THEN 1 ELSE 0 END,
               CASE WHEN src.why IS NULL THEN now() END, now()
          FROM src JOIN t ON t.id = src.ticket
        RETURNING phases.ticket_id
    )
    SELECT p.ticket_id, src.why FROM p JOIN src ON src.ticket = p.ticket_id;
END $$;
REVOKE ALL ON FUNCTION oshal_create_tickets(uuid, uuid, uuid[], uuid[], text[], text[], text[], bytea[]) FROM PUBLIC, oshal_api;
GRANT EXECUTE ON FUNCTION oshal_create_tickets(uuid, uuid, uuid[], uuid[], text[], text[], text[], bytea[]) TO oshal_api;
