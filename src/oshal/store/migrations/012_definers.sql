-- SECURITY DEFINER functions justified one by one (security/roles.py DEFINERS lists each and why it bypasses RLS).
-- None returns another tenant's rows to a transaction with no tenant set or with an ordinary tenant set:
--   * the auth gate's lookup returns a key's row only to a caller who presents that key's digest
--     (oshal_key_check);
--   * functions that return rows of every tenant (the platform's loops, its Security Center, the audit export)
--     run only in the platform's scope, a transaction whose tenant is the system tenant (oshal_require_scope);
--   * the two that a tenant could ask about take the tenant explicitly and return only its rows
--     (oshal_key_inventory, oshal_audit_entries).
-- The functions are in sql/functions/; what they replaced goes here (databases migrated before dropped it here).
DROP FUNCTION IF EXISTS oshal_key_by_prefix(text);
DROP FUNCTION IF EXISTS oshal_key_inventory();
DROP FUNCTION IF EXISTS oshal_audit_entries(bigint, int);
