-- Every anchor, oldest first, for checking the chain against them.
CREATE OR REPLACE FUNCTION oshal_audit_anchors()
RETURNS SETOF audit_anchors
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT * FROM audit_anchors ORDER BY seq
$$;
REVOKE ALL ON FUNCTION oshal_audit_anchors() FROM PUBLIC, oshal_api;
GRANT EXECUTE ON FUNCTION oshal_audit_anchors() TO oshal_api;
