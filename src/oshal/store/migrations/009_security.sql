-- requires: oshal_isolate_tenants
-- Security: the hash-chained audit log, kill switches, Security Center findings, key usage, and least
-- privilege tightened (no function is executable by PUBLIC: each file in sql/functions/ revokes it).

-- The audit log is one chain across the platform: each entry carries the hash of the previous one, so an
-- edited entry no longer matches its hash and a deleted one breaks the links. Entries are appended only through
-- oshal_audit (definer), which serialises on the chain head. Anchors (the head's seq and hash, MACed with a key
-- the database never sees) let a verifier detect a chain rewritten from some point on.
CREATE TABLE audit_log (
    seq        bigint PRIMARY KEY,
    tenant_id  uuid,
    at         timestamptz NOT NULL,
    actor      text NOT NULL,
    action     text NOT NULL,
    target     text NOT NULL DEFAULT '',
    detail     jsonb NOT NULL DEFAULT '{}',
    prev_hash  bytea NOT NULL,
    hash       bytea NOT NULL
);
CREATE INDEX audit_log_tenant ON audit_log (tenant_id, seq);
CREATE INDEX audit_log_action_at ON audit_log (action, at);

CREATE TABLE audit_chain (
    id           boolean PRIMARY KEY DEFAULT true CHECK (id),
    seq          bigint NOT NULL,
    hash         bytea NOT NULL,
    pruned_seq   bigint NOT NULL,
    pruned_hash  bytea NOT NULL
);
INSERT INTO audit_chain VALUES (true, 0, '\x0000000000000000000000000000000000000000000000000000000000000000',
                                0, '\x0000000000000000000000000000000000000000000000000000000000000000');

CREATE TABLE audit_anchors (
    seq   bigint PRIMARY KEY,
    hash  bytea NOT NULL,
    mac   bytea NOT NULL,
    at    timestamptz NOT NULL DEFAULT now()
);

-- Entries are appended, verified, anchored and pruned only through the oshal_audit* functions
-- (sql/functions/); the log and its anchors are append-only (oshal_audit_append_only.sql).
ALTER TABLE audit_log ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_log FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON audit_log FOR SELECT
    USING (tenant_id = NULLIF(current_setting('oshal.tenant_id', true), '')::uuid);
DO $$
BEGIN
    EXECUTE format('CREATE POLICY owner_chain ON audit_log TO %I USING (true) WITH CHECK (true)', current_user);
END $$;

-- Kill switches: 'global' or 'bot:<name>'. A row present means engaged; dispatch and tool calls stop.
CREATE TABLE kill_switches (
    scope       text PRIMARY KEY CHECK (scope = 'global' OR scope ~ '^bot:[a-z0-9][a-z0-9-]{0,62}$'),
    reason      text NOT NULL CHECK (length(reason) BETWEEN 1 AND 500),
    engaged_by  text NOT NULL,
    engaged_at  timestamptz NOT NULL DEFAULT now()
);

-- Security Center findings, one row per fingerprint, owned by the platform's system tenant.
CREATE TABLE security_findings (
    fingerprint     text PRIMARY KEY,
    tenant_id       uuid NOT NULL REFERENCES tenants (id),
    scan            text NOT NULL,
    check_id        text NOT NULL,
    severity        text NOT NULL CHECK (severity IN ('info', 'low', 'medium', 'high', 'critical')),
    title           text NOT NULL,
    subject         text NOT NULL,
    remediation     text NOT NULL,
    evidence        jsonb NOT NULL DEFAULT '{}',
    status          text NOT NULL CHECK (status IN ('open', 'fixed')),
    triage          text NOT NULL CHECK (triage IN ('new', 'fix', 'accepted', 'false_positive')),
    accepted_until  timestamptz,
    assessed_by     text,
    assessment      text,
    ticket_id       uuid REFERENCES tickets (id),
    seen_count      int NOT NULL DEFAULT 1,
    first_seen      timestamptz NOT NULL DEFAULT now(),
    last_seen       timestamptz NOT NULL DEFAULT now(),
    fixed_at        timestamptz,
    reopened        int NOT NULL DEFAULT 0
);
CREATE INDEX security_findings_scan ON security_findings (tenant_id, scan, status);

CREATE TABLE security_scans (
    id          uuid PRIMARY KEY,
    tenant_id   uuid NOT NULL REFERENCES tenants (id),
    scan        text NOT NULL,
    started_at  timestamptz NOT NULL,
    finished_at timestamptz NOT NULL DEFAULT now(),
    found       int NOT NULL,
    opened      int NOT NULL,
    fixed       int NOT NULL,
    error       text
);
CREATE INDEX security_scans_recent ON security_scans (tenant_id, scan, finished_at DESC);

SELECT oshal_isolate_tenants('security_findings', 'security_scans');

-- Key usage, for the access scan (unused keys, operators who never authenticate): oshal_keys_used writes it.
ALTER TABLE api_keys ADD COLUMN last_used_at timestamptz;
DO $$
BEGIN
    EXECUTE format('CREATE POLICY owner_usage ON api_keys FOR UPDATE TO %I USING (true)', current_user);
END $$;

GRANT SELECT ON audit_log TO oshal_api;
GRANT SELECT, INSERT, DELETE ON kill_switches TO oshal_api;
GRANT SELECT, INSERT, UPDATE ON security_findings TO oshal_api;
GRANT SELECT, INSERT ON security_scans TO oshal_api;
