-- Spend you can trust: budgets with reservations, exact cost per usage type (computed and provider-reported side
-- by side), daily roll-ups that keep totals, and the record of every model and tool call for replay.

-- Prices per usage type: reasoning tokens (NULL = the output price) and a per-request fee.
ALTER TABLE prices ADD COLUMN reasoning_micros_per_mtok bigint CHECK (reasoning_micros_per_mtok >= 0),
                   ADD COLUMN request_micros bigint NOT NULL DEFAULT 0 CHECK (request_micros >= 0),
                   ADD COLUMN cache_write_1h_micros_per_mtok bigint CHECK (cache_write_1h_micros_per_mtok >= 0);

ALTER TABLE ledger ADD COLUMN reasoning_tokens bigint NOT NULL DEFAULT 0 CHECK (reasoning_tokens >= 0),
                   ADD COLUMN computed_cost_micros bigint,
                   ADD COLUMN reported_cost_micros bigint,
                   ADD COLUMN reservation_id uuid;
ALTER TABLE ledger DROP CONSTRAINT ledger_price_source_check;
ALTER TABLE ledger ADD CONSTRAINT ledger_price_source_check
    CHECK (price_source IN ('provider', 'estimated', 'unpriced', 'replay'));

-- Budgets: a limit per tenant, bot, ticket type or single ticket, per day, month or lifetime.
CREATE TABLE budgets (
    id            uuid PRIMARY KEY,
    tenant_id     uuid NOT NULL REFERENCES tenants (id),
    scope         text NOT NULL CHECK (scope IN ('tenant', 'bot', 'type', 'ticket')),
    subject       text NOT NULL DEFAULT '',
    period        text NOT NULL CHECK (period IN ('day', 'month', 'lifetime')),
    limit_micros  bigint NOT NULL CHECK (limit_micros >= 0),
    soft_micros   bigint CHECK (soft_micros >= 0),
    created_by    uuid,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, scope, subject, period),
    CHECK ((scope = 'tenant') = (subject = '')),
    CHECK (soft_micros IS NULL OR soft_micros <= limit_micros)
);

-- What each budget has spent and holds reserved in one window of its period.
CREATE TABLE budget_usage (
    budget_id     uuid NOT NULL REFERENCES budgets (id) ON DELETE CASCADE,
    tenant_id     uuid NOT NULL,
    window_start  timestamptz NOT NULL,
    spent         bigint NOT NULL DEFAULT 0,
    reserved      bigint NOT NULL DEFAULT 0,
    soft_notified boolean NOT NULL DEFAULT false,
    PRIMARY KEY (budget_id, window_start)
);

-- A model call's maximum cost, held against every budget above it until the call's cost settles it.
CREATE TABLE reservations (
    id          uuid PRIMARY KEY,
    tenant_id   uuid NOT NULL,
    ticket_id   uuid NOT NULL,
    bot         text NOT NULL,
    amount      bigint NOT NULL CHECK (amount >= 0),
    status      text NOT NULL CHECK (status IN ('open', 'settled', 'expired')),
    actual      bigint,
    budgets     uuid[] NOT NULL,
    windows     timestamptz[] NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    settled_at  timestamptz
);
CREATE INDEX reservations_open ON reservations (expires_at) WHERE status = 'open';
CREATE INDEX reservations_ticket ON reservations (ticket_id, created_at);

-- Per-call ledger rows older than the retention fold into these; totals are never lost.
CREATE TABLE ledger_daily (
    tenant_id           uuid NOT NULL,
    day                 date NOT NULL,
    bot                 text NOT NULL,
    provider            text NOT NULL,
    model               text NOT NULL,
    price_source        text NOT NULL,
    calls               bigint NOT NULL,
    input_tokens        bigint NOT NULL,
    output_tokens       bigint NOT NULL,
    cached_read_tokens  bigint NOT NULL,
    cache_write_tokens  bigint NOT NULL,
    reasoning_tokens    bigint NOT NULL,
    cost_micros         bigint NOT NULL,
    computed_cost_micros bigint NOT NULL,
    reported_cost_micros bigint NOT NULL,
    -- the calls that carried both a computed and a reported cost, and those two sums over them (reconciliation)
    both_calls          bigint NOT NULL DEFAULT 0,
    both_computed       bigint NOT NULL DEFAULT 0,
    both_reported       bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, day, bot, provider, model, price_source)
);
ALTER TABLE tickets ADD COLUMN rolled_cost_micros bigint NOT NULL DEFAULT 0,
                    ADD COLUMN rolled_calls bigint NOT NULL DEFAULT 0,
                    ADD COLUMN replay_of uuid;

-- Every model call and tool call at its boundary, for replay. Secrets are never part of what is stored.
CREATE TABLE recordings (
    tenant_id   uuid NOT NULL,
    ticket_id   uuid NOT NULL,
    phase_seq   int NOT NULL,    -- the phase's place in its ticket (a replay of a run dispatches the same order)
    step        text NOT NULL,   -- the workflow step, or '' for a plain ticket (for people reading a diff)
    kind        text NOT NULL CHECK (kind IN ('model', 'tool')),
    seq         int NOT NULL,    -- the call's place among this phase's calls of this kind
    -- json, not jsonb: a replay must hand back exactly what was answered, key order included, or a model would
    -- see a tool result that reads differently from the one it saw.
    request     json NOT NULL,
    response    json NOT NULL,
    usage       json,
    started_at  timestamptz NOT NULL,
    duration_ms double precision NOT NULL,
    PRIMARY KEY (ticket_id, phase_seq, kind, seq)
);

DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['budgets', 'budget_usage', 'reservations', 'ledger_daily', 'recordings'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format(
            'CREATE POLICY tenant_isolation ON %I USING (tenant_id = NULLIF(current_setting(''oshal.tenant_id'', true), '''')::uuid) '
            'WITH CHECK (tenant_id = NULLIF(current_setting(''oshal.tenant_id'', true), '''')::uuid)', t);
    END LOOP;
    -- The definer functions below (run as the owner) expire reservations and roll the ledger up across tenants.
    EXECUTE format('CREATE POLICY owner_expiry ON reservations TO %I USING (true) WITH CHECK (true)', current_user);
    EXECUTE format('CREATE POLICY owner_expiry ON budget_usage TO %I USING (true) WITH CHECK (true)', current_user);
    EXECUTE format('CREATE POLICY owner_rollup ON ledger_daily TO %I USING (true) WITH CHECK (true)', current_user);
    EXECUTE format('CREATE POLICY owner_rollup ON ledger TO %I USING (true) WITH CHECK (true)', current_user);
    EXECUTE format('CREATE POLICY owner_rollup_tickets ON tickets FOR UPDATE TO %I USING (true) WITH CHECK (true)',
                   current_user);
END $$;

-- The start of the window ``p_at`` falls in (UTC calendar days and months).
CREATE FUNCTION oshal_window(p_period text, p_at timestamptz) RETURNS timestamptz
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE p_period
        WHEN 'day' THEN date_trunc('day', p_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
        WHEN 'month' THEN date_trunc('month', p_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
        ELSE 'epoch'::timestamptz END
$$;

-- Reserve ``p_amount`` against every budget above this call, atomically: all of them, or none and the first that
-- would be exceeded (rows locked in id order, so concurrent reservations never deadlock). Also refuses a ticket
-- that made ``p_max_calls`` reservations within ``p_window_s`` (runaway protection).
CREATE FUNCTION oshal_reserve(p_tenant uuid, p_reservation uuid, p_ticket uuid, p_bot text,
                              p_amount bigint, p_ttl_s double precision, p_max_calls int,
                              p_window_s double precision)
RETURNS TABLE (ok boolean, reason text, budget_id uuid, scope text, subject text, period text,
               limit_micros bigint, remaining bigint, soft_crossed uuid[])
LANGUAGE plpgsql AS $$
DECLARE
    b record;
    v_window timestamptz;
    v_spent bigint;
    v_reserved bigint;
    v_notified boolean;
    v_ids uuid[] := '{}';
    v_windows timestamptz[] := '{}';
    v_soft uuid[] := '{}';
    v_recent int;
    p_type text;
BEGIN
    PERFORM set_config('oshal.tenant_id', p_tenant::text, true);
    soft_crossed := '{}';
    SELECT t.type INTO p_type FROM tickets t WHERE t.id = p_ticket;
    IF p_max_calls > 0 THEN
        -- Counted since the window began or an operator last resumed the ticket, whichever is later.
        SELECT count(*) INTO v_recent FROM reservations r
         WHERE r.ticket_id = p_ticket AND r.created_at > greatest(now() - make_interval(secs => p_window_s),
               coalesce((SELECT max(e.at) FROM ticket_events e WHERE e.ticket_id = p_ticket
                         AND e.from_status = 'paused' AND e.to_status = 'in_progress'), '-infinity'));
        IF v_recent >= p_max_calls THEN
            ok := false;
            reason := 'runaway';
            remaining := 0;
            limit_micros := p_max_calls;
            RETURN NEXT;
            RETURN;
        END IF;
    END IF;
    FOR b IN SELECT * FROM budgets bu
              WHERE bu.scope = 'tenant' OR (bu.scope = 'bot' AND bu.subject = p_bot)
                 OR (bu.scope = 'type' AND bu.subject = p_type) OR (bu.scope = 'ticket' AND bu.subject = p_ticket::text)
              ORDER BY bu.id LOOP
        v_window := oshal_window(b.period, now());
        INSERT INTO budget_usage (budget_id, tenant_id, window_start) VALUES (b.id, p_tenant, v_window)
        ON CONFLICT DO NOTHING;
        SELECT u.spent, u.reserved, u.soft_notified INTO v_spent, v_reserved, v_notified FROM budget_usage u
         WHERE u.budget_id = b.id AND u.window_start = v_window FOR UPDATE;
        IF v_spent + v_reserved + p_amount > b.limit_micros THEN
            ok := false;
            reason := 'budget';
            budget_id := b.id;
            scope := b.scope;
            subject := b.subject;
            period := b.period;
            limit_micros := b.limit_micros;
            remaining := greatest(b.limit_micros - v_spent - v_reserved, 0);
            RETURN NEXT;
            RETURN;
        END IF;
        IF b.soft_micros IS NOT NULL AND NOT v_notified AND v_spent + v_reserved + p_amount >= b.soft_micros THEN
            v_soft := v_soft || b.id;
        END IF;
        v_ids := v_ids || b.id;
        v_windows := v_windows || v_window;
    END LOOP;
    UPDATE budget_usage u SET reserved = u.reserved + p_amount,
                              soft_notified = u.soft_notified OR u.budget_id = ANY (v_soft)
      FROM unnest(v_ids, v_windows) AS x(id, w)
     WHERE u.budget_id = x.id AND u.window_start = x.w;
    INSERT INTO reservations (id, tenant_id, ticket_id, bot, amount, status, budgets, windows, expires_at)
    VALUES (p_reservation, p_tenant, p_ticket, p_bot, p_amount, 'open', v_ids, v_windows,
            now() + make_interval(secs => p_ttl_s));
    ok := true;
    soft_crossed := v_soft;
    RETURN NEXT;
END $$;

-- Reservations whose call never reported (a crashed bot) expire: what they held is released.
CREATE FUNCTION oshal_expire_reservations(p_limit int) RETURNS int
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    v_count int;
    v_ids uuid[];
    v_windows timestamptz[];
    v_amounts bigint[];
BEGIN
    WITH gone AS (
        UPDATE reservations r SET status = 'expired', settled_at = now()
         WHERE r.id IN (SELECT id FROM reservations WHERE status = 'open' AND expires_at < now()
                        ORDER BY expires_at LIMIT p_limit FOR UPDATE SKIP LOCKED)
        RETURNING r.amount, r.budgets, r.windows
    ), held AS (
        SELECT x.id, x.w, sum(g.amount)::bigint AS amount FROM gone g, unnest(g.budgets, g.windows) AS x(id, w)
         GROUP BY x.id, x.w
    )
    SELECT array_agg(id ORDER BY id, w), array_agg(w ORDER BY id, w), array_agg(amount ORDER BY id, w),
           (SELECT count(*) FROM gone)
      INTO v_ids, v_windows, v_amounts, v_count FROM held;
    -- Lock the usage rows in the order oshal_reserve does, then release what the expired calls held.
    PERFORM 1 FROM budget_usage u JOIN unnest(v_ids, v_windows) AS x(id, w)
                ON u.budget_id = x.id AND u.window_start = x.w ORDER BY u.budget_id, u.window_start FOR UPDATE OF u;
    UPDATE budget_usage u SET reserved = greatest(u.reserved - x.amount, 0)
      FROM unnest(v_ids, v_windows, v_amounts) AS x(id, w, amount)
     WHERE u.budget_id = x.id AND u.window_start = x.w;
    RETURN coalesce(v_count, 0);
END $$;

-- Fold per-call rows older than ``p_before`` into daily totals (and each ticket's own totals), then drop them.
CREATE FUNCTION oshal_rollup_ledger(p_before timestamptz) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE v_count bigint;
BEGIN
    PERFORM set_config('oshal.events', 'bulk', true);  -- a ticket's totals changing is not a transition
    CREATE TEMP TABLE rolled ON COMMIT DROP AS
        SELECT * FROM ledger WHERE created_at < p_before FOR UPDATE;
    INSERT INTO ledger_daily AS d
    SELECT tenant_id, (created_at AT TIME ZONE 'UTC')::date, bot, provider, model, price_source, count(*),
           sum(input_tokens), sum(output_tokens), sum(cached_read_tokens), sum(cache_write_tokens),
           sum(reasoning_tokens), sum(cost_micros), sum(coalesce(computed_cost_micros, 0)),
           sum(coalesce(reported_cost_micros, 0)),
           count(*) FILTER (WHERE computed_cost_micros IS NOT NULL AND reported_cost_micros IS NOT NULL),
           coalesce(sum(computed_cost_micros) FILTER (WHERE reported_cost_micros IS NOT NULL), 0),
           coalesce(sum(reported_cost_micros) FILTER (WHERE computed_cost_micros IS NOT NULL), 0)
      FROM rolled GROUP BY 1, 2, 3, 4, 5, 6
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
    UPDATE tickets t SET rolled_cost_micros = t.rolled_cost_micros + r.cost, rolled_calls = t.rolled_calls + r.calls
      FROM (SELECT ticket_id, sum(cost_micros) AS cost, count(*) AS calls FROM rolled GROUP BY ticket_id) r
     WHERE t.id = r.ticket_id;
    DELETE FROM ledger l USING rolled r WHERE l.call_id = r.call_id;
    GET DIAGNOSTICS v_count = ROW_COUNT;
    RETURN v_count;
END $$;

-- Ledger rows and daily totals together, for summaries that span the retention boundary.
CREATE VIEW ledger_totals WITH (security_invoker = true) AS
SELECT tenant_id, created_at AS at, bot, provider, model, price_source, 1::bigint AS calls, input_tokens,
       output_tokens, cached_read_tokens, cache_write_tokens, reasoning_tokens, cost_micros,
       coalesce(computed_cost_micros, 0) AS computed_cost_micros,
       coalesce(reported_cost_micros, 0) AS reported_cost_micros,
       (computed_cost_micros IS NOT NULL AND reported_cost_micros IS NOT NULL)::int::bigint AS both_calls,
       CASE WHEN reported_cost_micros IS NOT NULL THEN coalesce(computed_cost_micros, 0) ELSE 0 END AS both_computed,
       CASE WHEN computed_cost_micros IS NOT NULL THEN coalesce(reported_cost_micros, 0) ELSE 0 END AS both_reported
  FROM ledger
UNION ALL
SELECT tenant_id, day::timestamp AT TIME ZONE 'UTC', bot, provider, model, price_source, calls, input_tokens,
       output_tokens, cached_read_tokens, cache_write_tokens, reasoning_tokens, cost_micros, computed_cost_micros,
       reported_cost_micros, both_calls, both_computed, both_reported
  FROM ledger_daily;

DROP FUNCTION oshal_ticket(uuid, uuid);
DROP VIEW ticket_view;
CREATE VIEW ticket_view WITH (security_invoker = true) AS
SELECT t.id, t.tenant_id, t.bot, t.type, t.status, t.phase, t.status_reason, t.parent_id, t.input, t.result,
       t.error, t.created_at, t.finished_at, t.idempotency_key, p.id AS phase_id, p.attempt, p.dispatched_at,
       a.started_at, a.deliveries, a.consumer,
       (coalesce(l.cost, 0) + t.rolled_cost_micros)::bigint AS cost_micros,
       (coalesce(l.calls, 0) + t.rolled_calls)::bigint AS calls, t.replay_of
FROM tickets t
LEFT JOIN LATERAL (
    SELECT id, attempt, dispatched_at FROM phases WHERE phases.ticket_id = t.id ORDER BY seq DESC LIMIT 1
) p ON true
LEFT JOIN LATERAL (
    SELECT started_at, deliveries, consumer FROM attempts a
    WHERE a.phase_id = p.id ORDER BY attempt DESC LIMIT 1
) a ON true
LEFT JOIN LATERAL (
    SELECT sum(cost_micros) AS cost, count(*) AS calls FROM ledger WHERE ledger.ticket_id = t.id
) l ON true;

CREATE FUNCTION oshal_ticket(p_tenant uuid, p_ticket uuid) RETURNS SETOF ticket_view
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('oshal.tenant_id', p_tenant::text, true);
    RETURN QUERY SELECT * FROM ticket_view v WHERE v.id = p_ticket;
END $$;

-- Tickets are created paused (not dispatched) when a budget above them has nothing left; raising the budget
-- resumes them. Returns each inserted ticket with whether it was held.
DROP FUNCTION oshal_create_tickets(uuid, uuid, uuid[], uuid[], text[], text[], text[], bytea[]);
CREATE FUNCTION oshal_create_tickets(p_tenant uuid, p_by uuid, p_ids uuid[], p_phase_ids uuid[], p_bots text[],
                                     p_inputs text[], p_keys text[], p_hashes bytea[])
RETURNS TABLE (id uuid, exhausted text)
LANGUAGE plpgsql AS $$
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

-- Held phases (a kill switch, or a paused ticket's queued first phase) are dispatched only for tickets at work.
CREATE OR REPLACE FUNCTION oshal_held_phases(p_limit int)
RETURNS TABLE (tenant_id uuid, phase_id uuid, bot text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT p.tenant_id, p.id, p.bot FROM phases p JOIN tickets t ON t.id = p.ticket_id
     WHERE p.status = 'queued' AND t.status = 'in_progress' ORDER BY p.updated_at LIMIT p_limit
$$;

-- As before, plus: ledger rows carry reasoning tokens, the computed and the provider-reported cost and their
-- reservation; a call's reservation settles to its cost (what was held is released) and every new cost counts
-- against the budgets above it, in the same statement.
DROP FUNCTION oshal_record_results(uuid, uuid[], int[], uuid[], text[], text[], text[], text[], int[],
    timestamptz[], timestamptz[], text[], uuid[], uuid[], int[], text[], text[], text[], bigint[], bigint[],
    bigint[], bigint[], bigint[], text[]);
CREATE FUNCTION oshal_record_results(
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
BEGIN
    PERFORM set_config('oshal.tenant_id', p_tenant::text, true);
    PERFORM set_config('oshal.events', 'bulk', true);
    FOR i IN 1 .. coalesce(array_length(p_phase, 1), 0) LOOP
        INSERT INTO attempts (phase_id, attempt, tenant_id, ticket_id, outcome, output, error, consumer,
                              deliveries, started_at, finished_at)
        VALUES (p_phase[i], p_attempt[i], p_tenant, p_ticket[i], p_outcome[i], p_output[i]::jsonb, p_error[i],
                p_consumer[i], p_deliveries[i], p_started[i], p_finished[i])
        ON CONFLICT (phase_id, attempt) DO NOTHING;
        CONTINUE WHEN NOT FOUND;
        UPDATE phases SET status = p_outcome[i], updated_at = now()
        WHERE phases.id = p_phase[i] AND phases.status NOT IN ('done', 'failed', 'dead_letter', 'cancelled')
          AND (p_outcome[i] <> 'dead_letter' OR phases.attempt = p_attempt[i])
        RETURNING phases.ticket_id INTO v_ticket;
        CONTINUE WHEN NOT FOUND;
        UPDATE tickets SET status = p_outcome[i], result = p_output[i]::jsonb, error = p_error[i],
                           finished_at = now()
        WHERE tickets.id = v_ticket AND tickets.status = 'in_progress' AND tickets.type IS NULL
        RETURNING tickets.parent_id INTO v_parent;
        IF FOUND THEN
            v_done := v_done || v_ticket;
            v_done_status := v_done_status || p_outcome[i];
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
    INSERT INTO ticket_events (tenant_id, ticket_id, from_status, to_status, actor)
    SELECT p_tenant, u.ticket, 'in_progress', u.status, 'collector' FROM unnest(v_done, v_done_status) AS u(ticket, status);
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

DO $$
DECLARE f regprocedure;
BEGIN
    FOR f IN SELECT p.oid::regprocedure FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
              WHERE n.nspname = 'public' LOOP
        EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
    END LOOP;
END $$;
GRANT EXECUTE ON FUNCTION
    oshal_create_tickets(uuid, uuid, uuid[], uuid[], text[], text[], text[], bytea[]),
    oshal_record_results(uuid, uuid[], int[], uuid[], text[], text[], text[], text[], int[], timestamptz[],
                         timestamptz[], text[], uuid[], uuid[], int[], text[], text[], text[], bigint[], bigint[],
                         bigint[], bigint[], bigint[], text[], bigint[], bigint[], bigint[], uuid[]),
    oshal_reserve(uuid, uuid, uuid, text, bigint, double precision, int, double precision),
    oshal_expire_reservations(int), oshal_rollup_ledger(timestamptz), oshal_window(text, timestamptz),
    oshal_ticket(uuid, uuid)
    TO oshal_api;
GRANT SELECT ON ticket_view, ledger_totals, ledger_daily TO oshal_api;
GRANT INSERT ON prices TO oshal_api;  -- a new effective-dated row; existing rows are never updated
GRANT SELECT, INSERT, UPDATE (limit_micros, soft_micros, updated_at, created_by), DELETE ON budgets TO oshal_api;
GRANT SELECT, INSERT, UPDATE (spent, reserved, soft_notified) ON budget_usage TO oshal_api;
GRANT SELECT, INSERT, UPDATE (status, actual, settled_at) ON reservations TO oshal_api;
GRANT SELECT, INSERT, UPDATE (request, response, usage, started_at, duration_ms) ON recordings TO oshal_api;

-- The tool-call hot path refuses a killed bot (the general path explains why), audits the grant it issues, and
-- never reaches a connector for a replay ticket (the general path answers from the original's recordings).
CREATE OR REPLACE FUNCTION oshal_tool_call(p_tenant uuid, p_ticket uuid, p_bot text, p_connector text,
                                           p_operation text, p_digest text, p_grant uuid, p_arguments_hash text,
                                           p_expires timestamptz)
RETURNS TABLE (granted boolean, ticket_status text, created_by uuid, connector_state text, digest text,
               mode text, secret_name text, client_id text, connection_expires timestamptz,
               ciphertext bytea, credential_user uuid, data_key_id uuid, wrapped bytea, kek_id text)
LANGUAGE plpgsql AS $$
DECLARE v_replay uuid;
BEGIN
    PERFORM set_config('oshal.tenant_id', p_tenant::text, true);
    SELECT t.status, t.created_by, c.state, c.digest, coalesce(p.mode, 'off'), n.secret_name, n.client_id,
           n.expires_at, t.replay_of
      INTO ticket_status, created_by, connector_state, digest, mode, secret_name, client_id, connection_expires,
           v_replay
      FROM tickets t
      LEFT JOIN connectors c ON c.id = p_connector
      LEFT JOIN tool_policies p ON p.connector_id = c.id AND p.bot = p_bot AND p.operation = p_operation
      LEFT JOIN connections n ON n.connector_id = c.id
     WHERE t.id = p_ticket;
    granted := FOUND AND ticket_status NOT IN ('done', 'failed', 'dead_letter', 'cancelled')
               AND connector_state = 'enabled' AND digest = p_digest AND mode = 'auto'
               AND secret_name IS NOT NULL AND (connection_expires IS NULL OR connection_expires > now())
               AND NOT EXISTS (SELECT 1 FROM kill_switches WHERE scope IN ('global', 'bot:' || p_bot))
               AND v_replay IS NULL;
    IF granted THEN
        INSERT INTO grants (id, tenant_id, bot, ticket_id, connector_id, operation, arguments_hash, expires_at,
                            redeemed_at)
        VALUES (p_grant, p_tenant, p_bot, p_ticket, p_connector, p_operation, p_arguments_hash, p_expires, now());
        PERFORM oshal_audit(ARRAY[p_tenant], ARRAY['bot:' || p_bot], ARRAY['tool.grant'],
                            ARRAY[p_connector || '.' || p_operation],
                            ARRAY[jsonb_build_object('ticket', p_ticket, 'grant', p_grant, 'mode', 'auto')]);
        SELECT k.ciphertext, k.user_id, d.id, d.wrapped, d.kek_id
          INTO ciphertext, credential_user, data_key_id, wrapped, kek_id
          FROM credentials k JOIN data_keys d ON d.id = k.data_key_id
         WHERE k.tenant_id = p_tenant AND k.name = secret_name
           AND (k.user_id IS NULL OR k.user_id = created_by)
         ORDER BY k.user_id NULLS LAST LIMIT 1;
    END IF;
    RETURN NEXT;
END $$;

-- Paused tickets are few; the sweeper looks for budget-paused ones to resume.
CREATE INDEX tickets_paused ON tickets (tenant_id) WHERE status = 'paused';

-- Budget-paused tickets (across tenants) whose budgets have room again, for the sweeper to resume.
-- Only once something changed since the ticket paused: a budget above it was raised (or removed), or a new
-- window began; otherwise a ticket whose next call needs more than is left would bounce every sweep.
CREATE FUNCTION oshal_budget_resumable(p_limit int, p_after_change boolean)
RETURNS TABLE (tenant_id uuid, ticket_id uuid)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    WITH paused AS (
        SELECT t.*, coalesce((SELECT max(e.at) FROM ticket_events e WHERE e.ticket_id = t.id
                               AND e.to_status = 'paused'), t.created_at) AS paused_at
          FROM tickets t WHERE t.status = 'paused' AND t.status_reason LIKE 'budget%'
    ), scoped AS (
        SELECT p.id AS ticket, b.* FROM paused p JOIN budgets b ON b.tenant_id = p.tenant_id
           AND (b.scope = 'tenant' OR (b.scope = 'bot' AND b.subject = p.bot)
                OR (b.scope = 'bot' AND b.subject IN (SELECT q.bot FROM phases q
                                                       WHERE q.ticket_id = p.id AND q.status = 'queued'))
                OR (b.scope = 'type' AND b.subject = p.type) OR (b.scope = 'ticket' AND b.subject = p.id::text))
    )
    SELECT t.tenant_id, t.id FROM paused t
     WHERE (p_after_change OR NOT EXISTS (SELECT 1 FROM scoped s WHERE s.ticket = t.id)
            OR EXISTS (SELECT 1 FROM scoped s WHERE s.ticket = t.id
                        AND (s.updated_at > t.paused_at OR oshal_window(s.period, now()) > t.paused_at)))
       AND NOT EXISTS (
           SELECT 1 FROM budgets b LEFT JOIN budget_usage u ON u.budget_id = b.id
                                        AND u.window_start = oshal_window(b.period, now())
            WHERE b.tenant_id = t.tenant_id AND coalesce(u.spent + u.reserved, 0) >= b.limit_micros
              AND (b.scope = 'tenant' OR (b.scope = 'bot' AND b.subject = t.bot)
                   OR (b.scope = 'bot' AND b.subject IN (SELECT q.bot FROM phases q
                                                          WHERE q.ticket_id = t.id AND q.status = 'queued'))
                   OR (b.scope = 'type' AND b.subject = t.type) OR (b.scope = 'ticket' AND b.subject = t.id::text)))
       AND NOT EXISTS (SELECT 1 FROM phases p WHERE p.ticket_id = t.id AND p.status = 'dispatched')
     LIMIT p_limit
$$;
DO $$
BEGIN
    EXECUTE format('CREATE POLICY owner_budget_resume ON budgets FOR SELECT TO %I USING (true)', current_user);
END $$;
REVOKE ALL ON FUNCTION oshal_budget_resumable(int, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION oshal_budget_resumable(int, boolean) TO oshal_api;
