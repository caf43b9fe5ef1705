-- Least privilege for the API role: no ownership, no DELETE, no BYPASSRLS; only what the API does.
GRANT USAGE ON SCHEMA public TO oshal_api;
GRANT SELECT, INSERT ON tenants TO oshal_api;
GRANT SELECT, INSERT, UPDATE (revoked_at) ON api_keys TO oshal_api;
GRANT SELECT ON bots, prices TO oshal_api;
GRANT SELECT, INSERT, UPDATE (status, result, error, finished_at) ON tickets TO oshal_api;
GRANT SELECT, INSERT, UPDATE (status, attempt, dispatched_at, updated_at) ON phases TO oshal_api;
GRANT SELECT, INSERT ON attempts, ledger TO oshal_api;
