-- Refuse unless the transaction may see rows of p_tenant (NULL: of every tenant, the platform's scope only).
CREATE OR REPLACE FUNCTION oshal_require_scope(p_function text, p_tenant uuid) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = public, pg_temp AS $$
BEGIN
    IF oshal_platform_scope() THEN
        RETURN;
    END IF;
    IF p_tenant IS NOT NULL AND p_tenant::text = current_setting('oshal.tenant_id', true) THEN
        RETURN;
    END IF;
    RAISE EXCEPTION '% returns rows of %; this transaction may not see them', p_function,
        CASE WHEN p_tenant IS NULL THEN 'every tenant' ELSE 'tenant ' || p_tenant END
        USING ERRCODE = '42501',
              HINT = 'run it in the platform''s scope (the system tenant set), or for the tenant set';
END $$;
REVOKE ALL ON FUNCTION oshal_require_scope(text, uuid) FROM PUBLIC, oshal_api;
