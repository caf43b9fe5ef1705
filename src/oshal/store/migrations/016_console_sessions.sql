-- requires: oshal_isolate_tenants
-- Web console sessions (issue 14). A browser trades an API key for a session once; the cookie then carries a
-- random token whose SHA-256 digest is all that is kept. A session acts as its key: revoking or expiring the key
-- ends every session made with it (oshal_session_check joins the key on every request).
CREATE TABLE console_sessions (
    digest       bytea PRIMARY KEY,
    tenant_id    uuid NOT NULL REFERENCES tenants (id),
    key_id       uuid NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    CHECK (expires_at > created_at)
);
CREATE INDEX console_sessions_key ON console_sessions (key_id);
CREATE INDEX console_sessions_expiry ON console_sessions (expires_at);

SELECT oshal_isolate_tenants('console_sessions');
DO $$
BEGIN
    -- the session check runs before a tenant is known (SECURITY DEFINER, as the key check), and the sweep of
    -- expired sessions spans tenants
    EXECUTE format('CREATE POLICY owner_lookup ON console_sessions FOR SELECT TO %I USING (true)', current_user);
    EXECUTE format('CREATE POLICY owner_sweep ON console_sessions FOR DELETE TO %I USING (true)', current_user);
END $$;
GRANT SELECT, INSERT, DELETE ON console_sessions TO oshal_api;

-- The console lists what waits for an operator on every page load: tickets at an approval gate are few.
CREATE INDEX tickets_awaiting_approval ON tickets (tenant_id, id) WHERE status = 'approval_required';
