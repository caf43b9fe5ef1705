-- Row-level security for tables whose rows each belong to one tenant: enabled, forced (on the owner too) and
-- limited to the transaction's tenant (the setting oshal.tenant_id) for reading and writing. The API role owns
-- nothing and cannot bypass it. Migrations call it (they name it in a "-- requires:" line) for each new table.
CREATE OR REPLACE FUNCTION oshal_isolate_tenants(VARIADIC p_tables text[]) RETURNS void
LANGUAGE plpgsql SET search_path = public, pg_temp AS $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY p_tables LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY tenant_isolation ON %I '
                       'USING (tenant_id = NULLIF(current_setting(''oshal.tenant_id'', true), '''')::uuid) '
                       'WITH CHECK (tenant_id = NULLIF(current_setting(''oshal.tenant_id'', true), '''')::uuid)', t);
    END LOOP;
END $$;
REVOKE ALL ON FUNCTION oshal_isolate_tenants(text[]) FROM PUBLIC, oshal_api;
