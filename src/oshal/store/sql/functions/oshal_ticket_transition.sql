-- Every ticket status (or phase) change is checked against ticket_transitions and recorded with who and why. The
-- actor and reason come from per-transaction settings; without them the change is the platform's own. A security
-- finding's ticket is the one kind that reopens: done (fixed) goes back to escalated when the Security Center sees
-- the problem again. The result collector (oshal_record_results) records its own transitions set-based and marks
-- its transaction with oshal.events = 'bulk' so this per-row trigger stays out of its way (per-row events cost
-- ~20% of ticket throughput on the hot path). A ticket's creation is not a transition: its first state, time and
-- creator are on the ticket itself, and the timeline starts from them.
CREATE OR REPLACE FUNCTION oshal_ticket_transition() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status = OLD.status AND NEW.phase IS NOT DISTINCT FROM OLD.phase THEN
        RETURN NULL;
    END IF;
    IF NEW.status <> OLD.status AND NOT EXISTS (
        SELECT 1 FROM ticket_transitions WHERE from_status = OLD.status AND to_status = NEW.status
    ) AND NOT (NEW.type = 'security_finding' AND OLD.status = 'done' AND NEW.status = 'escalated') THEN
        RAISE EXCEPTION 'illegal ticket transition from % to %', OLD.status, NEW.status USING ERRCODE = 'OX409';
    END IF;
    INSERT INTO ticket_events (tenant_id, ticket_id, from_status, to_status, phase, actor, reason)
    VALUES (NEW.tenant_id, NEW.id, OLD.status, NEW.status, NEW.phase,
            coalesce(nullif(current_setting('oshal.actor', true), ''), 'platform'),
            coalesce(nullif(current_setting('oshal.reason', true), ''), NEW.status_reason));
    RETURN NULL;
END $$;
CREATE OR REPLACE TRIGGER tickets_transition AFTER UPDATE OF status, phase ON tickets
    FOR EACH ROW WHEN (current_setting('oshal.events', true) IS DISTINCT FROM 'bulk')
    EXECUTE FUNCTION oshal_ticket_transition();
REVOKE ALL ON FUNCTION oshal_ticket_transition() FROM PUBLIC, oshal_api;
