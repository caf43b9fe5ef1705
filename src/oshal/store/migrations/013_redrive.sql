-- Re-drives that never race the original, and at most one successful execution per phase (issue 12, items 3-4).

-- An attempt row is one execution: a redelivery of the same envelope to another replica (reclaimed after its
-- first reader stopped answering) runs the harness again, so it is recorded (and billed) apart, under its
-- delivery count. A redelivered *result* of the same execution still finds its row and changes nothing twice.
ALTER TABLE attempts DROP CONSTRAINT attempts_pkey, ADD PRIMARY KEY (phase_id, attempt, deliveries);

-- The sweeper re-sends only dispatched phases whose envelope is in neither the lane nor the output stream; it
-- pages through every stale one (oldest first, keyset on (updated_at, id)) rather than the oldest few, so
-- phases still waiting in a long lane cannot hide lost ones behind them.
CREATE FUNCTION oshal_stale_dispatches(p_older_than interval, p_after_at timestamptz, p_after_id uuid,
                                       p_limit int)
RETURNS TABLE (tenant_id uuid, phase_id uuid, ticket_id uuid, bot text, attempt int, updated_at timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT oshal_require_scope('oshal_stale_dispatches', NULL);
    SELECT p.tenant_id, p.id, p.ticket_id, p.bot, p.attempt, p.updated_at FROM phases p
     WHERE p.status = 'dispatched'
       AND p.updated_at < now() - p_older_than
       AND (p.updated_at, p.id) > (p_after_at, p_after_id)
     ORDER BY p.updated_at, p.id LIMIT p_limit
$$;
REVOKE ALL ON FUNCTION oshal_stale_dispatches(interval, timestamptz, uuid, int) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION oshal_stale_dispatches(interval, timestamptz, uuid, int) TO oshal_api;
DROP FUNCTION oshal_stale_phases(interval, int);  -- judged by time alone; replaced by the function above

-- Changed from 010 only between the "013" markers: (1) ON CONFLICT on the execution (phase, attempt, deliveries);
-- a redelivered done result re-emits its fence; a done result ends a plain ticket's dead letter (phase and
-- ticket); a done result for a phase already done is returned as 'duplicate'; a done result for a phase sent
-- more than once is returned as 'fence'; for both the collector sets the phase's done marker in Redis, which
-- workers check before running an envelope. Rows 'duplicate' and 'fence' carry the ticket in finished_ticket
-- and the phase in parent. (2) ticket_events record the real from_status. Everything else is 010's text.
CREATE OR REPLACE FUNCTION oshal_record_results(
    p_tenant uuid, p_phase uuid[], p_attempt int[], p_ticket uuid[], p_outcome text[], p_output text[],
    p_error text[], p_consumer text[], p_deliveries int[], p_started timestamptz[], p_finished timestamptz[],
    l_call text[], l_ticket uuid[], l_phase uuid[], l_attempt int[], l_bot text[], l_provider text[],
    l_model text[], l_in bigint[], l_out bigint[], l_cr bigint[], l_cw bigint[], l_cost bigint[], l_source text[],
    l_rs bigint[], l_computed bigint[], l_reported bigint[], l_reservation uuid[])
RETURNS TABLE (finished_ticket uuid, finished_status text, parent uuid)
LANGUAGE plpgsql AS $$
DECLARE
    i int;
    v_ticket uuid;
    v_parent uuid;
    v_type text;
    v_done uuid[] := '{}';
    v_done_status text[] := '{}';
    v_dispatches int;                -- 013
    v_from text;                     -- 013
    v_done_from text[] := '{}';      -- 013
BEGIN
    PERFORM set_config('oshal.tenant_id', p_tenant::text, true);
    PERFORM set_config('oshal.events', 'bulk', true);
    FOR i IN 1 .. coalesce(array_length(p_phase, 1), 0) LOOP
        INSERT INTO attempts (phase_id, attempt, tenant_id, ticket_id, outcome, output, error, consumer,
                              deliveries, started_at, finished_at)
        VALUES (p_phase[i], p_attempt[i], p_tenant, p_ticket[i], p_outcome[i], p_output[i]::jsonb, p_error[i],
                p_consumer[i], p_deliveries[i], p_started[i], p_finished[i])
        -- 013 begin (1/3): one attempt row per execution; a success ends a dead letter; duplicates and fences.
        ON CONFLICT (phase_id, attempt, deliveries) DO NOTHING;
        IF NOT FOUND THEN  -- a redelivered result: recorded before, but its fence may not have been set
            IF p_outcome[i] = 'done' AND EXISTS (SELECT 1 FROM phases WHERE phases.id = p_phase[i]
                                                  AND phases.status = 'done' AND phases.attempt > 1) THEN
                finished_ticket := p_ticket[i]; finished_status := 'fence'; parent := p_phase[i];
                RETURN NEXT;
            END IF;
            CONTINUE;
        END IF;
        UPDATE phases SET status = p_outcome[i], updated_at = now()
        WHERE phases.id = p_phase[i]
          AND (phases.status NOT IN ('done', 'failed', 'dead_letter', 'cancelled')
               OR (phases.status = 'dead_letter' AND p_outcome[i] = 'done'
                   AND EXISTS (SELECT 1 FROM tickets WHERE tickets.id = phases.ticket_id AND tickets.type IS NULL)))
          AND (p_outcome[i] <> 'dead_letter' OR phases.attempt = p_attempt[i])
        RETURNING phases.ticket_id, phases.attempt INTO v_ticket, v_dispatches;
        IF NOT FOUND THEN
            IF p_outcome[i] = 'done' AND EXISTS (SELECT 1 FROM phases WHERE phases.id = p_phase[i]
                                                  AND phases.status = 'done') THEN
                -- Another execution of this phase succeeded first: recorded (and billed), reported as a duplicate.
                finished_ticket := p_ticket[i]; finished_status := 'duplicate'; parent := p_phase[i];
                RETURN NEXT;
            END IF;
            CONTINUE;
        END IF;
        IF p_outcome[i] = 'done' AND v_dispatches > 1 THEN
            -- Sent more than once: copies may still wait in the lane. The collector sets the phase's done marker.
            finished_ticket := v_ticket; finished_status := 'fence'; parent := p_phase[i];
            RETURN NEXT;
        END IF;
        v_from := 'in_progress';
        UPDATE tickets SET status = p_outcome[i], result = p_output[i]::jsonb, error = p_error[i],
                           finished_at = now()
        WHERE tickets.id = v_ticket AND tickets.status = 'in_progress' AND tickets.type IS NULL
        RETURNING tickets.parent_id INTO v_parent;
        IF NOT FOUND AND p_outcome[i] = 'done' THEN
            v_from := 'dead_letter';
            UPDATE tickets SET status = 'done', result = p_output[i]::jsonb, error = NULL, finished_at = now()
            WHERE tickets.id = v_ticket AND tickets.status = 'dead_letter' AND tickets.type IS NULL
            RETURNING tickets.parent_id INTO v_parent;
        END IF;
        IF FOUND THEN
            v_done := v_done || v_ticket;
            v_done_status := v_done_status || p_outcome[i];
            v_done_from := v_done_from || v_from;
        -- 013 end (1/3)
            finished_ticket := v_ticket;
            finished_status := p_outcome[i];
            parent := v_parent;
            RETURN NEXT;
        ELSE
            SELECT tickets.type INTO v_type FROM tickets WHERE tickets.id = v_ticket;
            IF v_type IS NOT NULL THEN
                finished_ticket := v_ticket;
                finished_status := 'step';
                parent := NULL;
                RETURN NEXT;
            END IF;
        END IF;
    END LOOP;
    -- 013 (2/3): the transition's real origin (a success may end a dead letter)
    INSERT INTO ticket_events (tenant_id, ticket_id, from_status, to_status, actor)
    SELECT p_tenant, u.ticket, u.from_status, u.status, 'collector'
      FROM unnest(v_done, v_done_status, v_done_from) AS u(ticket, status, from_status);
    WITH ins AS (
        INSERT INTO ledger (call_id, tenant_id, ticket_id, phase_id, attempt, bot, provider, model, input_tokens,
                            output_tokens, cached_read_tokens, cache_write_tokens, cost_micros, price_source,
                            reasoning_tokens, computed_cost_micros, reported_cost_micros, reservation_id)
        SELECT u.call, p_tenant, u.ticket, u.phase, u.attempt, u.bot, u.provider, u.model, u.i, u.o, u.cr, u.cw,
               u.cost, u.source, u.rs, u.computed, u.reported, u.reservation
        FROM unnest(l_call, l_ticket, l_phase, l_attempt, l_bot, l_provider, l_model, l_in, l_out, l_cr, l_cw,
                    l_cost, l_source, l_rs, l_computed, l_reported, l_reservation)
             AS u(call, ticket, phase, attempt, bot, provider, model, i, o, cr, cw, cost, source, rs, computed,
                  reported, reservation)
        ON CONFLICT (call_id) DO NOTHING
        RETURNING ledger.ticket_id, ledger.bot, ledger.cost_micros, ledger.reservation_id
    ), settled AS (
        UPDATE reservations r SET status = 'settled', actual = ins.cost_micros, settled_at = now()
          FROM ins WHERE r.id = ins.reservation_id AND r.status = 'open'
        RETURNING r.id, r.amount, r.actual, r.budgets, r.windows
    ), held AS (
        -- Only budgets that still exist: one deleted while the call was in flight has nothing to settle.
        SELECT x.id AS budget, x.w AS window_start, -s.amount AS reserved, s.actual AS spent
          FROM settled s, unnest(s.budgets, s.windows) AS x(id, w) JOIN budgets b ON b.id = x.id
    ), unheld AS (
        -- A cost with no open reservation (none was taken, or it expired first) still counts as spent.
        SELECT b.id AS budget, oshal_window(b.period, now()) AS window_start, 0::bigint AS reserved,
               ins.cost_micros AS spent
          FROM ins
          JOIN budgets b ON b.scope = 'tenant' OR (b.scope = 'bot' AND b.subject = ins.bot)
                         OR (b.scope = 'ticket' AND b.subject = ins.ticket_id::text)
                         OR (b.scope = 'type' AND b.subject = (SELECT t.type FROM tickets t WHERE t.id = ins.ticket_id))
         WHERE ins.cost_micros > 0
           AND (ins.reservation_id IS NULL OR NOT EXISTS (SELECT 1 FROM settled s WHERE s.id = ins.reservation_id))
    ), deltas AS (
        SELECT budget, window_start, sum(reserved)::bigint AS reserved, sum(spent)::bigint AS spent
          FROM (SELECT * FROM held UNION ALL SELECT * FROM unheld) d GROUP BY budget, window_start
    )
    INSERT INTO budget_usage AS u (budget_id, tenant_id, window_start, spent, reserved)
    SELECT budget, p_tenant, window_start, spent, reserved FROM deltas
     ORDER BY budget, window_start  -- the order oshal_reserve locks in: the two never deadlock
    ON CONFLICT (budget_id, window_start) DO UPDATE
        SET spent = u.spent + EXCLUDED.spent, reserved = greatest(u.reserved + EXCLUDED.reserved, 0);
END $$;

-- 013 (3/3): executions beyond the first successful one per phase (a duplicate ran and was billed).
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
