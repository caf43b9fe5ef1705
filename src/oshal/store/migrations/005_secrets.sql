-- requires: oshal_isolate_tenants
-- Credentials encrypted at rest (envelope encryption, see oshal.secrets).
-- data_keys holds each tenant's data keys, wrapped by a key-encryption key (KEK) that never reaches the
-- database; kek_id is only the KEK's public fingerprint. credentials holds AES-256-GCM ciphertexts bound to
-- (tenant, name, user). Both tables get RLS enabled AND forced, with the same tenant_isolation policy as 001.
-- A tenant's rows go with the tenant (ON DELETE CASCADE; the API role cannot delete tenants).

CREATE TABLE data_keys (
    id          uuid PRIMARY KEY,
    tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    -- Empty once retired: a data key that no credential uses any more is destroyed, not kept.
    wrapped     bytea NOT NULL,
    kek_id      text NOT NULL CHECK (kek_id ~ '^[0-9a-f]{16}$'),
    active      boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CHECK (NOT active OR length(wrapped) > 0)
);
-- At most one active data key per tenant: two writers racing to create the first one cannot both win.
CREATE UNIQUE INDEX data_keys_active ON data_keys (tenant_id) WHERE active;

CREATE TABLE credentials (
    tenant_id    uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name         text NOT NULL CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$'),
    user_id      uuid,
    ciphertext   bytea NOT NULL,
    data_key_id  uuid NOT NULL REFERENCES data_keys (id),
    version      int NOT NULL DEFAULT 1 CHECK (version >= 1),
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
-- One credential per (tenant, name, user); a tenant-wide credential has no user (the zero uuid stands in).
CREATE UNIQUE INDEX credentials_key
    ON credentials (tenant_id, name, coalesce(user_id, '00000000-0000-0000-0000-000000000000'::uuid));
CREATE INDEX credentials_data_key ON credentials (data_key_id);

SELECT oshal_isolate_tenants('data_keys', 'credentials');

-- Least privilege: KEK rotation walks the tenants (SELECT on tenants is granted already) and re-wraps each
-- tenant's keys inside that tenant's transaction, so no definer function is needed and RLS stays in force.
-- Data keys are never deleted (a retired one is emptied); credentials may be.
GRANT SELECT, INSERT, UPDATE (wrapped, kek_id, active) ON data_keys TO oshal_api;
GRANT SELECT, INSERT, UPDATE (ciphertext, data_key_id, version, updated_at), DELETE ON credentials TO oshal_api;
