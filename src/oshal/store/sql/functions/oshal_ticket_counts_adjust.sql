-- Keeps ticket_counts_daily equal to count(*) over the tickets below the cut-off when one of them changes status,
-- is inserted (a restore, a backdated id) or deleted: the roll-up counts a ticket once, in the status it had then.
-- The triggers' WHEN is the hot path's only cost: a ticket younger than an hour (every new one, every one a result
-- finishes) is above any cut-off, which never enters the last hour, so the function is not called. The bound is
-- the clock (uuidv7 of now minus an hour), not the transaction's start: a change committed after the cut-off
-- advanced to midnight M happened after M + 1 h, so every ticket below M passes the WHEN; a change before that is
-- committed before the advance counts (it waits for them: LOCK ... IN SHARE MODE).
CREATE OR REPLACE FUNCTION oshal_ticket_counts_adjust() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE v_below uuid := (SELECT tickets_below FROM rollup_cutoff);
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') AND OLD.id < v_below THEN
        INSERT INTO ticket_counts_daily AS c (tenant_id, day, status, n)
        VALUES (OLD.tenant_id, coalesce((uuid_extract_timestamp(OLD.id) AT TIME ZONE 'UTC')::date, date '1970-01-01'),
                OLD.status, -1)
        ON CONFLICT (tenant_id, day, status) DO UPDATE SET n = c.n + EXCLUDED.n;
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') AND NEW.id < v_below THEN
        INSERT INTO ticket_counts_daily AS c (tenant_id, day, status, n)
        VALUES (NEW.tenant_id, coalesce((uuid_extract_timestamp(NEW.id) AT TIME ZONE 'UTC')::date, date '1970-01-01'),
                NEW.status, 1)
        ON CONFLICT (tenant_id, day, status) DO UPDATE SET n = c.n + EXCLUDED.n;
    END IF;
    RETURN NULL;
END $$;
CREATE OR REPLACE TRIGGER ticket_counts_status AFTER UPDATE OF status ON tickets FOR EACH ROW
    WHEN (OLD.status IS DISTINCT FROM NEW.status AND OLD.id < uuidv7(interval '-1 hour'))
    EXECUTE FUNCTION oshal_ticket_counts_adjust();
CREATE OR REPLACE TRIGGER ticket_counts_insert AFTER INSERT ON tickets FOR EACH ROW
    WHEN (NEW.id < uuidv7(interval '-1 hour'))
    EXECUTE FUNCTION oshal_ticket_counts_adjust();
CREATE OR REPLACE TRIGGER ticket_counts_delete AFTER DELETE ON tickets FOR EACH ROW
    WHEN (OLD.id < uuidv7(interval '-1 hour'))
    EXECUTE FUNCTION oshal_ticket_counts_adjust();
REVOKE ALL ON FUNCTION oshal_ticket_counts_adjust() FROM PUBLIC, oshal_api;
