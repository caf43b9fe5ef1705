-- The platform's scope: the transaction's tenant is the system tenant (the platform's own loops and its
-- operators). Ordinary tenants and transactions without a tenant are not in it.
CREATE OR REPLACE FUNCTION oshal_platform_scope() RETURNS boolean
LANGUAGE sql STABLE SET search_path = public, pg_temp AS $$
    SELECT EXISTS (SELECT 1 FROM tenants
                    WHERE name = 'system' AND id::text = current_setting('oshal.tenant_id', true))
$$;
REVOKE ALL ON FUNCTION oshal_platform_scope() FROM PUBLIC, oshal_api;
