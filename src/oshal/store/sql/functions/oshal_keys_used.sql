-- Key usage, for the access scan (unused keys, operators who never authenticate). Written in batches.
CREATE OR REPLACE FUNCTION oshal_keys_used(p_ids uuid[]) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
    UPDATE api_keys SET last_used_at = now() WHERE id = ANY (p_ids)
$$;
REVOKE ALL ON FUNCTION oshal_keys_used(uuid[]) FROM PUBLIC, oshal_api;
GRANT EXECUTE ON FUNCTION oshal_keys_used(uuid[]) TO oshal_api;
