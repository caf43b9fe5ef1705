-- requires: oshal_isolate_tenants
-- Workflows: the ticket lifecycle (states, transitions enforced here, a timeline), workflow definitions and
-- runs, schedules with an atomic per-tick claim, and artifacts. The transition table is filled from
-- oshal.transitions by the migration runner after every migration.

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

-- Every status (or phase) change is checked against the table and recorded with who and why (the trigger
-- tickets_transition, sql/functions/oshal_ticket_transition.sql).

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

SELECT oshal_isolate_tenants('ticket_events', 'workflow_runs', 'schedules', 'schedule_fires', 'artifacts');
DO $$
BEGIN
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

GRANT UPDATE (status, result, error, finished_at, phase, status_reason, resume_status) ON tickets TO oshal_api;
GRANT SELECT ON ticket_transitions TO oshal_api;
GRANT SELECT, INSERT ON ticket_events, workflow_definitions, schedule_fires, artifacts TO oshal_api;
GRANT SELECT, INSERT, UPDATE (state, finished, updated_at) ON workflow_runs TO oshal_api;
GRANT SELECT, INSERT, UPDATE (cron, timezone, input, policy, enabled, last_tick, next_tick) ON schedules TO oshal_api;
