-- Workflows: the ticket lifecycle (states, transitions enforced here, a timeline), workflow definitions and
-- runs, schedules with an atomic per-tick claim, and artifacts. The transition table is filled from
-- oshal.lifecycle by the migration runner after every migration.

ALTER TABLE tickets DROP CONSTRAINT tickets_status_check;
UPDATE tickets SET status = 'in_progress' WHERE status IN ('queued', 'dispatched');
ALTER TABLE tickets ADD CONSTRAINT tickets_status_check CHECK (status IN (
    'backlog', 'approved', 'in_progress', 'approval_required', 'customer_action', 'paused', 'done', 'failed',
    'escalated', 'dead_letter', 'cancelled'));
ALTER TABLE tickets
    ALTER COLUMN bot DROP NOT NULL,
    ADD COLUMN type text,
    ADD COLUMN phase text,
    ADD COLUMN parent_id uuid REFERENCES tickets (id),
    ADD COLUMN status_reason text,
    ADD COLUMN resume_status text,
    ADD CONSTRAINT tickets_addressed CHECK (bot IS NOT NULL OR type IS NOT NULL);
CREATE INDEX tickets_parent ON tickets (parent_id) WHERE parent_id IS NOT NULL;

-- A workflow phase carries its own rendered input and the step it belongs to; a plain ticket's has neither.
ALTER TABLE phases ADD COLUMN input jsonb, ADD COLUMN step text;

CREATE TABLE ticket_transitions (
    from_status  text NOT NULL,
    to_status    text NOT NULL,
    PRIMARY KEY (from_status, to_status)
);

CREATE TABLE ticket_events (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id    uuid NOT NULL,
    ticket_id    uuid NOT NULL,
    at           timestamptz NOT NULL DEFAULT clock_timestamp(),
    from_status  text,
    to_status    text NOT NULL,
    phase        text,
    actor        text NOT NULL,
    reason       text
);
CREATE INDEX ticket_events_ticket ON ticket_events (ticket_id, at);

-- Every status (or phase) change is checked against the table and recorded with who and why. The actor and
-- reason come from per-transaction settings; without them the change is the platform's own. The result
-- collector's function below records its (legal by construction) transitions itself, set-based, and marks its
-- transaction with oshal.events = 'bulk' so this per-row trigger stays out of its way (per-row events cost
-- ~20% of ticket throughput on the hot path).
CREATE FUNCTION oshal_ticket_transition() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status = OLD.status AND NEW.phase IS NOT DISTINCT FROM OLD.phase THEN
        RETURN NULL;
    END IF;
    IF NEW.status <> OLD.status AND NOT EXISTS (
        SELECT 1 FROM ticket_transitions WHERE from_status = OLD.status AND to_status = NEW.status
    ) THEN
        RAISE EXCEPTION 'illegal ticket transition from % to %', OLD.status, NEW.status USING ERRCODE = 'OX409';
    END IF;
    INSERT INTO ticket_events (tenant_id, ticket_id, from_status, to_status, phase, actor, reason)
    VALUES (NEW.tenant_id, NEW.id, OLD.status, NEW.status, NEW.phase,
            coalesce(nullif(current_setting('oshal.actor', true), ''), 'platform'),
            coalesce(nullif(current_setting('oshal.reason', true), ''), NEW.status_reason));
    RETURN NULL;
END $$;
-- A ticket's creation is not a transition: its first state, time and creator are on the ticket itself, and the
-- timeline starts from them.
CREATE TRIGGER tickets_transition AFTER UPDATE OF status, phase ON tickets
    FOR EACH ROW WHEN (current_setting('oshal.events', true) IS DISTINCT FROM 'bulk')
    EXECUTE FUNCTION oshal_ticket_transition();

CREATE TABLE workflow_definitions (
    id          uuid PRIMARY KEY,
    tenant_id   uuid REFERENCES tenants (id),  -- NULL: built in, visible to every tenant
    name        text NOT NULL,
    version     int NOT NULL CHECK (version >= 1),
    document    jsonb NOT NULL,
    digest      text NOT NULL,
    created_by  uuid,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE NULLS NOT DISTINCT (tenant_id, name, version)
);

CREATE TABLE workflow_runs (
    ticket_id   uuid PRIMARY KEY REFERENCES tickets (id),
    tenant_id   uuid NOT NULL,
    workflow    text NOT NULL,
    version     int NOT NULL,
    state       jsonb NOT NULL,
    finished    boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX workflow_runs_open ON workflow_runs (updated_at) WHERE NOT finished;

CREATE TABLE schedules (
    id          uuid PRIMARY KEY,
    tenant_id   uuid NOT NULL REFERENCES tenants (id),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 80),
    cron        text NOT NULL,
    timezone    text NOT NULL,
    ticket_type text,
    bot         text,
    input       jsonb NOT NULL,
    policy      text NOT NULL CHECK (policy IN ('skip', 'catch_up_once')),
    enabled     boolean NOT NULL DEFAULT true,
    last_tick   timestamptz,
    next_tick   timestamptz,
    created_by  uuid,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, name),
    CHECK ((ticket_type IS NULL) <> (bot IS NULL))
);
CREATE INDEX schedules_due ON schedules (next_tick) WHERE enabled;

-- The claim: one row per (schedule, tick). Whichever scheduler inserts it first fires; the rest see a conflict.
CREATE TABLE schedule_fires (
    schedule_id  uuid NOT NULL REFERENCES schedules (id),
    tick         timestamptz NOT NULL,
    tenant_id    uuid NOT NULL,
    ticket_id    uuid NOT NULL,
    fired_by     text NOT NULL,
    fired_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (schedule_id, tick)
);

CREATE TABLE artifacts (
    id            uuid PRIMARY KEY,
    tenant_id     uuid NOT NULL,
    ticket_id     uuid NOT NULL REFERENCES tickets (id),
    name          text NOT NULL,
    object_key    text NOT NULL,
    size          bigint NOT NULL CHECK (size >= 0),
    sha256        text NOT NULL,
    content_type  text NOT NULL,
    created_by    text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (ticket_id, name)
);

DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['ticket_events', 'workflow_runs', 'schedules', 'schedule_fires', 'artifacts'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format(
            'CREATE POLICY tenant_isolation ON %I USING (tenant_id = NULLIF(current_setting(''oshal.tenant_id'', true), '''')::uuid) '
            'WITH CHECK (tenant_id = NULLIF(current_setting(''oshal.tenant_id'', true), '''')::uuid)', t);
    END LOOP;
    ALTER TABLE workflow_definitions ENABLE ROW LEVEL SECURITY;
    ALTER TABLE workflow_definitions FORCE ROW LEVEL SECURITY;
    CREATE POLICY tenant_or_builtin ON workflow_definitions FOR SELECT
        USING (tenant_id IS NULL OR tenant_id = NULLIF(current_setting('oshal.tenant_id', true), '')::uuid);
    CREATE POLICY tenant_publish ON workflow_definitions FOR INSERT
        WITH CHECK (tenant_id = NULLIF(current_setting('oshal.tenant_id', true), '')::uuid);
    EXECUTE format('CREATE POLICY owner_builtin ON workflow_definitions TO %I USING (tenant_id IS NULL) '
                   'WITH CHECK (tenant_id IS NULL)', current_user);
    EXECUTE format('CREATE POLICY owner_runs ON workflow_runs FOR SELECT TO %I USING (true)', current_user);
    EXECUTE format('CREATE POLICY owner_schedules ON schedules FOR SELECT TO %I USING (true)', current_user);
    EXECUTE format('CREATE POLICY owner_stall_check ON tickets FOR SELECT TO %I USING (true)', current_user);
END $$;

-- The sweeper's cross-tenant view of runs that wait on nothing open: their advance was lost to a crash.
CREATE FUNCTION oshal_stalled_runs(p_older_than interval, p_limit int)
RETURNS TABLE (tenant_id uuid, ticket_id uuid)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT r.tenant_id, r.ticket_id FROM workflow_runs r
    WHERE NOT r.finished AND r.updated_at < now() - p_older_than
      AND EXISTS (SELECT 1 FROM tickets t WHERE t.id = r.ticket_id AND t.status = 'in_progress')
      AND NOT EXISTS (SELECT 1 FROM phases p WHERE p.ticket_id = r.ticket_id
                      AND p.status IN ('queued', 'dispatched'))
      AND NOT EXISTS (SELECT 1 FROM tickets c WHERE c.parent_id = r.ticket_id
                      AND c.status IN ('in_progress', 'backlog', 'approved'))
    ORDER BY r.updated_at LIMIT p_limit
$$;

-- The scheduler's cross-tenant view of schedules that are due.
CREATE FUNCTION oshal_due_schedules(p_limit int)
RETURNS TABLE (tenant_id uuid, schedule_id uuid)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT tenant_id, id FROM schedules WHERE enabled AND next_tick <= now() ORDER BY next_tick LIMIT p_limit
$$;
REVOKE ALL ON FUNCTION oshal_stalled_runs(interval, int) FROM PUBLIC;
REVOKE ALL ON FUNCTION oshal_due_schedules(int) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION oshal_stalled_runs(interval, int), oshal_due_schedules(int) TO oshal_api;

-- The hot paths, reworked for the lifecycle.
DROP FUNCTION oshal_ticket(uuid, uuid);
DROP VIEW ticket_view;
CREATE VIEW ticket_view WITH (security_invoker = true) AS
SELECT t.id, t.tenant_id, t.bot, t.type, t.status, t.phase, t.status_reason, t.parent_id, t.input, t.result,
       t.error, t.created_at, t.finished_at, t.idempotency_key, p.id AS phase_id, p.attempt, p.dispatched_at,
       a.started_at, a.deliveries, a.consumer,
       coalesce(l.cost, 0)::bigint AS cost_micros, coalesce(l.calls, 0)::bigint AS calls
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

CREATE OR REPLACE FUNCTION oshal_create_tickets(p_tenant uuid, p_by uuid, p_ids uuid[], p_phase_ids uuid[],
                                                p_bots text[], p_inputs text[], p_keys text[], p_hashes bytea[])
RETURNS SETOF uuid
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('oshal.tenant_id', p_tenant::text, true);
    RETURN QUERY
    WITH src AS (
        SELECT * FROM unnest(p_ids, p_phase_ids, p_bots, p_inputs, p_keys, p_hashes)
               AS u(ticket, phase, bot, input, key, hash)
    ), t AS (
        INSERT INTO tickets (id, tenant_id, bot, status, input, idempotency_key, request_hash, created_by)
        SELECT src.ticket, p_tenant, src.bot, 'in_progress', src.input::jsonb, src.key, src.hash, p_by FROM src
        ON CONFLICT (tenant_id, idempotency_key) DO NOTHING
        RETURNING tickets.id
    ), p AS (
        INSERT INTO phases (id, tenant_id, ticket_id, seq, bot, status, attempt, dispatched_at, updated_at)
        SELECT src.phase, p_tenant, src.ticket, 0, src.bot, 'dispatched', 1, now(), now()
        FROM src JOIN t ON t.id = src.ticket
        RETURNING phases.ticket_id
    )
    SELECT p.ticket_id FROM p;
END $$;

-- As before, plus: a plain ticket finishes only from in_progress (a paused one keeps its result for resume);
-- a workflow ticket's phase result is returned as 'step' for the engine to advance, and a finished child
-- names its parent so the parent's run advances too.
DROP FUNCTION oshal_record_results(uuid, uuid[], int[], uuid[], text[], text[], text[], text[], int[],
    timestamptz[], timestamptz[], text[], uuid[], uuid[], int[], text[], text[], text[], bigint[], bigint[],
    bigint[], bigint[], bigint[], text[]);
CREATE FUNCTION oshal_record_results(
    p_tenant uuid, p_phase uuid[], p_attempt int[], p_ticket uuid[], p_outcome text[], p_output text[],
    p_error text[], p_consumer text[], p_deliveries int[], p_started timestamptz[], p_finished timestamptz[],
    l_call text[], l_ticket uuid[], l_phase uuid[], l_attempt int[], l_bot text[], l_provider text[],
    l_model text[], l_in bigint[], l_out bigint[], l_cr bigint[], l_cw bigint[], l_cost bigint[], l_source text[])
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
    INSERT INTO ledger (call_id, tenant_id, ticket_id, phase_id, attempt, bot, provider, model, input_tokens,
                        output_tokens, cached_read_tokens, cache_write_tokens, cost_micros, price_source)
    SELECT u.call, p_tenant, u.ticket, u.phase, u.attempt, u.bot, u.provider, u.model, u.i, u.o, u.cr, u.cw,
           u.cost, u.source
    FROM unnest(l_call, l_ticket, l_phase, l_attempt, l_bot, l_provider, l_model, l_in, l_out, l_cr, l_cw,
                l_cost, l_source)
         AS u(call, ticket, phase, attempt, bot, provider, model, i, o, cr, cw, cost, source)
    ON CONFLICT (call_id) DO NOTHING;
END $$;

GRANT SELECT ON ticket_view TO oshal_api;
REVOKE ALL ON FUNCTION oshal_ticket(uuid, uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION oshal_ticket(uuid, uuid) TO oshal_api;
REVOKE ALL ON FUNCTION oshal_record_results(uuid, uuid[], int[], uuid[], text[], text[], text[], text[],
    int[], timestamptz[], timestamptz[], text[], uuid[], uuid[], int[], text[], text[], text[], bigint[],
    bigint[], bigint[], bigint[], bigint[], text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION oshal_record_results(uuid, uuid[], int[], uuid[], text[], text[], text[], text[],
    int[], timestamptz[], timestamptz[], text[], uuid[], uuid[], int[], text[], text[], text[], bigint[],
    bigint[], bigint[], bigint[], bigint[], text[]) TO oshal_api;

GRANT UPDATE (status, result, error, finished_at, phase, status_reason, resume_status) ON tickets TO oshal_api;
GRANT SELECT ON ticket_transitions TO oshal_api;
GRANT SELECT, INSERT ON ticket_events, workflow_definitions, schedule_fires, artifacts TO oshal_api;
GRANT SELECT, INSERT, UPDATE (state, finished, updated_at) ON workflow_runs TO oshal_api;
GRANT SELECT, INSERT, UPDATE (cron, timezone, input, policy, enabled, last_tick, next_tick) ON schedules TO oshal_api;
