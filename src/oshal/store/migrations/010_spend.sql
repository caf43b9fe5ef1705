-- requires: oshal_isolate_tenants
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

SELECT oshal_isolate_tenants('budgets', 'budget_usage', 'reservations', 'ledger_daily', 'recordings');
DO $$
BEGIN
    -- Definer functions (run as the owner) expire reservations and roll the ledger up across tenants.
    EXECUTE format('CREATE POLICY owner_expiry ON reservations TO %I USING (true) WITH CHECK (true)', current_user);
    EXECUTE format('CREATE POLICY owner_expiry ON budget_usage TO %I USING (true) WITH CHECK (true)', current_user);
    EXECUTE format('CREATE POLICY owner_rollup ON ledger_daily TO %I USING (true) WITH CHECK (true)', current_user);
    EXECUTE format('CREATE POLICY owner_rollup ON ledger TO %I USING (true) WITH CHECK (true)', current_user);
    EXECUTE format('CREATE POLICY owner_rollup_tickets ON tickets FOR UPDATE TO %I USING (true) WITH CHECK (true)',
                   current_user);
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

-- Signatures that changed since 003 (databases migrated before sql/functions/ drop the old versions here): the
-- ticket view (now in 013) gained columns, oshal_create_tickets returns each ticket with why it was held.
DROP FUNCTION IF EXISTS oshal_ticket(uuid, uuid);
DROP VIEW IF EXISTS ticket_view;
DROP FUNCTION IF EXISTS oshal_create_tickets(uuid, uuid, uuid[], uuid[], text[], text[], text[], bytea[]);
DROP FUNCTION IF EXISTS oshal_record_results(uuid, uuid[], int[], uuid[], text[], text[], text[], text[], int[],
    timestamptz[], timestamptz[], text[], uuid[], uuid[], int[], text[], text[], text[], bigint[], bigint[],
    bigint[], bigint[], bigint[], text[]);

GRANT SELECT ON ledger_totals, ledger_daily TO oshal_api;
GRANT INSERT ON prices TO oshal_api;  -- a new effective-dated row; existing rows are never updated
GRANT SELECT, INSERT, UPDATE (limit_micros, soft_micros, updated_at, created_by), DELETE ON budgets TO oshal_api;
GRANT SELECT, INSERT, UPDATE (spent, reserved, soft_notified) ON budget_usage TO oshal_api;
GRANT SELECT, INSERT, UPDATE (status, actual, settled_at) ON reservations TO oshal_api;
GRANT SELECT, INSERT, UPDATE (request, response, usage, started_at, duration_ms) ON recordings TO oshal_api;

-- Paused tickets are few; the sweeper looks for budget-paused ones to resume.
CREATE INDEX tickets_paused ON tickets (tenant_id) WHERE status = 'paused';

DO $$
BEGIN
    EXECUTE format('CREATE POLICY owner_budget_resume ON budgets FOR SELECT TO %I USING (true)', current_user);
END $$;
