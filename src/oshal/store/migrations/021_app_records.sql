-- requires: oshal_isolate_tenants
-- Application records (issue 16): a generic, append-only key/value store for the applications built on the platform
-- (the trading desk's signals, risk decisions, orders, fills and journal; any other app's own records). A record is
-- named by (app, collection, key) within its tenant and is written once: creating it again with the same body is a
-- no-op and with a different body a conflict, which is what makes an application's retried step idempotent.
CREATE TABLE app_records (
    tenant_id   uuid NOT NULL REFERENCES tenants (id),
    app         text NOT NULL CHECK (app ~ '^[a-z][a-z0-9-]{0,39}$'),
    collection  text NOT NULL CHECK (collection ~ '^[a-z][a-z0-9-]{0,39}$'),
    key         text NOT NULL CHECK (key ~ '^[a-z0-9][a-z0-9._-]{0,199}$'),
    body        jsonb NOT NULL CHECK (octet_length(body::text) <= 262144),
    created_by  uuid,
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (tenant_id, app, collection, key)
);
-- Listing a collection in the order its records were written (the cursor is (created_at, key)).
CREATE INDEX app_records_listing ON app_records (tenant_id, app, collection, created_at, key);

SELECT oshal_isolate_tenants('app_records');
-- Records are immutable: the API role creates and reads them, never updates or deletes one.
GRANT SELECT, INSERT ON app_records TO oshal_api;
