-- The exact bytes an entry's hash covers. The time is in epoch microseconds and jsonb's text form is canonical,
-- so the same entry always hashes the same whatever the session's time zone.
CREATE OR REPLACE FUNCTION oshal_audit_digest(p_prev bytea, p_seq bigint, p_at timestamptz, p_tenant uuid, p_actor text,
                                   p_action text, p_target text, p_detail jsonb) RETURNS bytea
LANGUAGE sql IMMUTABLE SET search_path = public, pg_temp AS $$
    SELECT sha256(p_prev || convert_to(concat_ws(chr(31), p_seq::text,
        floor(extract(epoch FROM p_at) * 1000000)::bigint::text, coalesce(p_tenant::text, ''),
        p_actor, p_action, p_target, p_detail::text), 'UTF8'))
$$;
REVOKE ALL ON FUNCTION oshal_audit_digest(bytea, bigint, timestamptz, uuid, text, text, text, jsonb) FROM PUBLIC, oshal_api;
