-- One tenant's share of a collector batch: for each result, its attempt row, then the phase and ticket it ends;
-- then every model call's ledger row, which settles the call's reservation and counts against the budgets above
-- it. p_results and p_calls are JSON arrays of records with the fields of oshal_attempt_row and oshal_ledger_row
-- (migration 015), which store/results.py's AttemptRow and LedgerRow send.
--
-- Returns the tickets whose state the collector must follow up: a final status (the ticket finished); 'step' (a
-- workflow's phase ended and its run should advance); 'fence' or 'duplicate' (a phase sent more than once
-- succeeded, or succeeded again: the collector sets the phase's done marker in Redis, which workers check before
-- running an envelope; these rows carry the phase in ``parent``). For a finished child, ``parent`` names its parent
-- so the parent's run advances too.
--
-- * An attempt row is one execution (phase, attempt, deliveries): only a newly inserted one may advance its phase,
--   so a redelivered result changes nothing twice (but re-emits its fence); a dead-letter verdict counts only for
--   the phase's current attempt; a success ends a plain ticket's dead letter.
-- * Phases and tickets are found row by row by primary key: a set-based UPDATE ... FROM unnest() leaves the join
--   order to statistics, and with statistics taken while few rows were open it looped over every open ticket once
--   per result (seen: 370 ms per batch of 1,000). "NOT IN (terminal)" keeps the partial open-phase index out.
-- * A plain ticket finishes only from in_progress (a paused one keeps its result for resume). Its transition is
--   recorded set-based here; oshal.events = 'bulk' keeps the per-row trigger out of the way.
-- * No sequential scans (enable_seqscan off for the call): a connection keeps each statement's plan, made with the
--   statistics of its first call, until the table is analyzed again; planned while the tables were small, the
--   lookups by key above became scans of the whole table as it grew (seen: 500-result batches slowing from 140 to
--   590 ms over five consecutive batches; each result's ticket update read every ticket).
-- * Only what applies runs: no ticket_events insert when nothing finished, no ledger or reservation statements
--   when the batch carries no model calls (the common one-result batch of a bot that calls none).
-- * A call's reservation settles to its cost (what was held is released); a cost with no open reservation still
--   counts as spent. Usage rows are written in (budget, window) order, the order oshal_reserve locks in.
CREATE OR REPLACE FUNCTION oshal_record_results(p_tenant uuid, p_results jsonb, p_calls jsonb)
RETURNS TABLE (finished_ticket uuid, finished_status text, parent uuid)
LANGUAGE plpgsql SET enable_seqscan = off AS $$
DECLARE
    a oshal_attempt_row;
    v_ticket uuid;
    v_parent uuid;
    v_type text;
    v_dispatches int;
    v_from text;
    v_done uuid[] := '{}';
    v_done_status text[] := '{}';
    v_done_from text[] := '{}';
BEGIN
    PERFORM set_config('oshal.tenant_id', p_tenant::text, true);
    PERFORM set_config('oshal.events', 'bulk', true);
    FOR a IN SELECT * FROM jsonb_populate_recordset(NULL::oshal_attempt_row, p_results) LOOP
        INSERT INTO attempts (phase_id, attempt, tenant_id, ticket_id, outcome, output, error, consumer,
                              deliveries, started_at, finished_at)
        VALUES (a.phase_id, a.attempt, p_tenant, a.ticket_id, a.outcome, a.output, a.error, a.consumer,
                a.deliveries, a.started_at, a.finished_at)
        ON CONFLICT (phase_id, attempt, deliveries) DO NOTHING;
        IF NOT FOUND THEN  -- a redelivered result: recorded before, but its fence may not have been set
            IF a.outcome = 'done' AND EXISTS (SELECT 1 FROM phases WHERE phases.id = a.phase_id
                                               AND phases.status = 'done' AND phases.attempt > 1) THEN
                finished_ticket := a.ticket_id; finished_status := 'fence'; parent := a.phase_id;
                RETURN NEXT;
            END IF;
            CONTINUE;
        END IF;
        UPDATE phases SET status = a.outcome, updated_at = now()
        WHERE phases.id = a.phase_id
          AND (phases.status NOT IN ('done', 'failed', 'dead_letter', 'cancelled')
               OR (phases.status = 'dead_letter' AND a.outcome = 'done'
                   AND EXISTS (SELECT 1 FROM tickets WHERE tickets.id = phases.ticket_id AND tickets.type IS NULL)))
          AND (a.outcome <> 'dead_letter' OR phases.attempt = a.attempt)
        RETURNING phases.ticket_id, phases.attempt INTO v_ticket, v_dispatches;
        IF NOT FOUND THEN
            IF a.outcome = 'done' AND EXISTS (SELECT 1 FROM phases WHERE phases.id = a.phase_id
                                               AND phases.status = 'done') THEN
                -- Another execution of this phase succeeded first: recorded (and billed), reported as a duplicate.
                finished_ticket := a.ticket_id; finished_status := 'duplicate'; parent := a.phase_id;
                RETURN NEXT;
            END IF;
            CONTINUE;
        END IF;
        IF a.outcome = 'done' AND v_dispatches > 1 THEN
            -- Sent more than once: copies may still wait in the lane. The collector sets the phase's done marker.
            finished_ticket := v_ticket; finished_status := 'fence'; parent := a.phase_id;
            RETURN NEXT;
        END IF;
        v_from := 'in_progress';
        UPDATE tickets SET status = a.outcome, result = a.output, error = a.error, finished_at = now()
        WHERE tickets.id = v_ticket AND tickets.status = 'in_progress' AND tickets.type IS NULL
        RETURNING tickets.parent_id INTO v_parent;
        IF NOT FOUND AND a.outcome = 'done' THEN
            v_from := 'dead_letter';
            UPDATE tickets SET status = 'done', result = a.output, error = NULL, finished_at = now()
            WHERE tickets.id = v_ticket AND tickets.status = 'dead_letter' AND tickets.type IS NULL
            RETURNING tickets.parent_id INTO v_parent;
        END IF;
        IF FOUND THEN
            v_done := v_done || v_ticket;
            v_done_status := v_done_status || a.outcome;
            v_done_from := v_done_from || v_from;
            finished_ticket := v_ticket; finished_status := a.outcome; parent := v_parent;
            RETURN NEXT;
        ELSE
            SELECT tickets.type INTO v_type FROM tickets WHERE tickets.id = v_ticket;
            IF v_type IS NOT NULL THEN
                finished_ticket := v_ticket; finished_status := 'step'; parent := NULL;
                RETURN NEXT;
            END IF;
        END IF;
    END LOOP;
    IF cardinality(v_done) > 0 THEN
        INSERT INTO ticket_events (tenant_id, ticket_id, from_status, to_status, actor)
        SELECT p_tenant, u.ticket, u.from_status, u.status, 'collector'
          FROM unnest(v_done, v_done_status, v_done_from) AS u(ticket, status, from_status);
    END IF;
    IF jsonb_array_length(p_calls) = 0 THEN  -- no model calls (an echo bot's result): nothing to bill or settle
        RETURN;
    END IF;
    -- The reservations this batch settles, locked in id order first, as oshal_reserve locks them: concurrent
    -- settlements and reservations of one ticket would otherwise take them in different orders and deadlock.
    PERFORM 1 FROM reservations r
     WHERE r.id IN (SELECT c.reservation_id FROM jsonb_populate_recordset(NULL::oshal_ledger_row, p_calls) AS c)
       AND r.status = 'open'
     ORDER BY r.id FOR UPDATE;
    WITH ins AS (
        INSERT INTO ledger (call_id, tenant_id, ticket_id, phase_id, attempt, bot, provider, model, input_tokens,
                            output_tokens, cached_read_tokens, cache_write_tokens, cost_micros, price_source,
                            reasoning_tokens, computed_cost_micros, reported_cost_micros, reservation_id)
        SELECT c.call_id, p_tenant, c.ticket_id, c.phase_id, c.attempt, c.bot, c.provider, c.model, c.input_tokens,
               c.output_tokens, c.cached_read_tokens, c.cache_write_tokens, c.cost_micros, c.price_source,
               c.reasoning_tokens, c.computed_cost_micros, c.reported_cost_micros, c.reservation_id
          FROM jsonb_populate_recordset(NULL::oshal_ledger_row, p_calls) AS c
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
     ORDER BY budget, window_start
    ON CONFLICT (budget_id, window_start) DO UPDATE
        SET spent = u.spent + EXCLUDED.spent, reserved = greatest(u.reserved + EXCLUDED.reserved, 0);
END $$;
REVOKE ALL ON FUNCTION oshal_record_results(uuid, jsonb, jsonb) FROM PUBLIC, oshal_api;
GRANT EXECUTE ON FUNCTION oshal_record_results(uuid, jsonb, jsonb) TO oshal_api;
