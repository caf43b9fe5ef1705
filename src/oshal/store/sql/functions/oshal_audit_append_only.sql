-- The audit log and its anchors are append-only: no UPDATE, no TRUNCATE, and DELETE only when it runs as
-- oshal_audit_keeper, a role nobody logs in as, which owns the audit tables and functions once the log is sealed
-- (audit/seal.py). The only function of that role that deletes is oshal_audit_prune.
CREATE OR REPLACE FUNCTION oshal_audit_append_only() RETURNS trigger
LANGUAGE plpgsql SET search_path = public, pg_temp AS $$
BEGIN
    IF TG_OP = 'DELETE' AND current_user = 'oshal_audit_keeper' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'the audit log is append-only (% on % refused)', TG_OP, TG_TABLE_NAME USING ERRCODE = 'OX403';
END $$;
CREATE OR REPLACE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION oshal_audit_append_only();
CREATE OR REPLACE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION oshal_audit_append_only();
CREATE OR REPLACE TRIGGER audit_anchors_append_only BEFORE UPDATE OR DELETE ON audit_anchors
    FOR EACH ROW EXECUTE FUNCTION oshal_audit_append_only();
CREATE OR REPLACE TRIGGER audit_anchors_no_truncate BEFORE TRUNCATE ON audit_anchors
    FOR EACH STATEMENT EXECUTE FUNCTION oshal_audit_append_only();
REVOKE ALL ON FUNCTION oshal_audit_append_only() FROM PUBLIC, oshal_api;
