-- requires: oshal_isolate_tenants
-- Core schema: tenants, keys, bot registry, tickets, phases, attempts, ledger, prices.
-- Runs as the owner role. Tenant-owned tables get RLS enabled AND forced, keyed on the
-- per-transaction setting oshal.tenant_id; the API role owns nothing and cannot bypass it.

CREATE TABLE tenants (
    id          uuid PRIMARY KEY,
    name        text NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 100),
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
    id           uuid PRIMARY KEY,
    tenant_id    uuid NOT NULL REFERENCES tenants (id),
    prefix       text NOT NULL UNIQUE,
    hash         bytea NOT NULL,
    role         text NOT NULL CHECK (role IN ('operator', 'member')),
    name         text NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz,
    revoked_at   timestamptz
);
CREATE INDEX api_keys_tenant ON api_keys (tenant_id);

CREATE TABLE bots (
    name         text PRIMARY KEY,
    description  text NOT NULL DEFAULT '',
    harness      text NOT NULL,
    provider     text NOT NULL,
    model        text NOT NULL,
    replicas     int NOT NULL,
    concurrency  int NOT NULL,
    manifest     jsonb NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE tickets (
    id               uuid PRIMARY KEY,
    tenant_id        uuid NOT NULL REFERENCES tenants (id),
    bot              text NOT NULL,
    status           text NOT NULL CHECK (status IN ('queued', 'dispatched', 'done', 'failed', 'dead_letter', 'cancelled')),
    input            jsonb NOT NULL,
    result           jsonb,
    error            text,
    idempotency_key  text,
    request_hash     bytea,
    created_by       uuid,
    created_at       timestamptz NOT NULL DEFAULT now(),
    finished_at      timestamptz,
    UNIQUE (tenant_id, idempotency_key)
);
-- Deliberately no index on status: with statistics taken while few tickets were open, the planner would
-- pick such an index for "WHERE id = $1 AND status IN (open)" and scan every open ticket per update.
CREATE INDEX tickets_tenant_id ON tickets (tenant_id, id DESC);

CREATE TABLE phases (
    id             uuid PRIMARY KEY,
    tenant_id      uuid NOT NULL,
    ticket_id      uuid NOT NULL REFERENCES tickets (id),
    seq            int NOT NULL DEFAULT 0,
    bot            text NOT NULL,
    status         text NOT NULL CHECK (status IN ('queued', 'dispatched', 'done', 'failed', 'dead_letter', 'cancelled')),
    attempt        int NOT NULL DEFAULT 1,
    dispatched_at  timestamptz,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (ticket_id, seq)
);
-- Only open phases are indexed for the sweeper: the index stays as small as the work in flight. Writers
-- that look a phase up by id test "status NOT IN (terminal)", which this index cannot serve, so their plan
-- stays a primary-key lookup whatever the statistics say.
CREATE INDEX phases_open ON phases (updated_at) WHERE status IN ('queued', 'dispatched');

CREATE TABLE attempts (
    phase_id     uuid NOT NULL,
    attempt      int NOT NULL,
    tenant_id    uuid NOT NULL,
    ticket_id    uuid NOT NULL,
    outcome      text NOT NULL CHECK (outcome IN ('done', 'failed', 'dead_letter')),
    output       jsonb,
    error        text,
    consumer     text NOT NULL DEFAULT '',
    deliveries   int NOT NULL DEFAULT 1,
    started_at   timestamptz,
    finished_at  timestamptz,
    recorded_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (phase_id, attempt)
);
CREATE INDEX attempts_ticket ON attempts (ticket_id);

CREATE TABLE ledger (
    call_id             text PRIMARY KEY,
    tenant_id           uuid NOT NULL,
    ticket_id           uuid NOT NULL,
    phase_id            uuid NOT NULL,
    attempt             int NOT NULL,
    bot                 text NOT NULL,
    provider            text NOT NULL,
    model               text NOT NULL,
    input_tokens        bigint NOT NULL CHECK (input_tokens >= 0),
    output_tokens       bigint NOT NULL CHECK (output_tokens >= 0),
    cached_read_tokens  bigint NOT NULL DEFAULT 0 CHECK (cached_read_tokens >= 0),
    cache_write_tokens  bigint NOT NULL DEFAULT 0 CHECK (cache_write_tokens >= 0),
    cost_micros         bigint NOT NULL CHECK (cost_micros >= 0),
    price_source        text NOT NULL CHECK (price_source IN ('provider', 'estimated', 'unpriced')),
    created_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ledger_tenant_created ON ledger (tenant_id, created_at DESC);
CREATE INDEX ledger_ticket ON ledger (ticket_id);

CREATE TABLE prices (
    provider                   text NOT NULL,
    model                      text NOT NULL,
    effective_from             timestamptz NOT NULL,
    input_micros_per_mtok      bigint NOT NULL CHECK (input_micros_per_mtok >= 0),
    output_micros_per_mtok     bigint NOT NULL CHECK (output_micros_per_mtok >= 0),
    cached_read_micros_per_mtok bigint NOT NULL DEFAULT 0,
    cache_write_micros_per_mtok bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (provider, model, effective_from)
);

-- Row-level security: enabled and forced on every table that holds tenant data.
SELECT oshal_isolate_tenants('api_keys', 'tickets', 'phases', 'attempts', 'ledger');
DO $$
BEGIN
    -- The owner (migrations, and SECURITY DEFINER functions such as the key check and the sweeper's) may read
    -- across tenants.
    EXECUTE format('CREATE POLICY owner_lookup ON api_keys FOR SELECT TO %I USING (true)', current_user);
    EXECUTE format('CREATE POLICY owner_sweep ON phases FOR SELECT TO %I USING (true)', current_user);
END $$;
