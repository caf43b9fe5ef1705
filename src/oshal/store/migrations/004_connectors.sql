-- requires: oshal_isolate_tenants
-- The integration layer: the connector catalog (global, operator-managed), and per tenant the connections,
-- per-bot tool policies, approvals and the broker's grants. Tenant tables: RLS enabled and forced.

CREATE TABLE connectors (
    id                 text PRIMARY KEY,
    version            text NOT NULL,
    publisher          text NOT NULL,
    category           text NOT NULL,
    title              text NOT NULL DEFAULT '',
    manifest           jsonb NOT NULL,
    digest             text NOT NULL,
    state              text NOT NULL CHECK (state IN ('draft', 'enabled', 'quarantined', 'disabled')),
    signature          jsonb,
    quarantine_reason  text,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE connections (
    tenant_id        uuid NOT NULL,
    connector_id     text NOT NULL REFERENCES connectors (id),
    secret_name      text NOT NULL,
    client_id        text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    last_success_at  timestamptz,
    last_error_at    timestamptz,
    last_error       text,
    PRIMARY KEY (tenant_id, connector_id)
);

CREATE TABLE tool_policies (
    tenant_id     uuid NOT NULL,
    bot           text NOT NULL,
    connector_id  text NOT NULL,
    operation     text NOT NULL,
    mode          text NOT NULL CHECK (mode IN ('auto', 'ask', 'off')),
    updated_by    uuid,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, bot, connector_id, operation)
);

CREATE TABLE approvals (
    id              uuid PRIMARY KEY,
    tenant_id       uuid NOT NULL,
    ticket_id       uuid NOT NULL,
    bot             text NOT NULL,
    connector_id    text NOT NULL,
    operation       text NOT NULL,
    arguments_hash  text NOT NULL,
    arguments       jsonb NOT NULL,
    status          text NOT NULL CHECK (status IN ('pending', 'approved', 'rejected')),
    requested_at    timestamptz NOT NULL DEFAULT now(),
    decided_by      uuid,
    decided_at      timestamptz,
    reason          text
);
CREATE UNIQUE INDEX approvals_request ON approvals (tenant_id, ticket_id, connector_id, operation, arguments_hash);

CREATE TABLE grants (
    id              uuid PRIMARY KEY,
    tenant_id       uuid NOT NULL,
    bot             text NOT NULL,
    ticket_id       uuid NOT NULL,
    connector_id    text NOT NULL,
    operation       text NOT NULL,
    arguments_hash  text NOT NULL,
    approval_id     uuid,
    issued_at       timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL,
    redeemed_at     timestamptz,
    outcome         text
);
CREATE INDEX grants_ticket ON grants (tenant_id, ticket_id);

SELECT oshal_isolate_tenants('connections', 'tool_policies', 'approvals', 'grants');

GRANT SELECT, INSERT, UPDATE ON connectors TO oshal_api;
GRANT SELECT, INSERT, UPDATE ON connections, tool_policies TO oshal_api;
GRANT SELECT, INSERT, UPDATE (status, decided_by, decided_at, reason) ON approvals TO oshal_api;
GRANT SELECT, INSERT, UPDATE (redeemed_at, outcome) ON grants TO oshal_api;
