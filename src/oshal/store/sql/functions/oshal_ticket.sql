-- What GET /v1/tickets/{id} shows, in one statement that sets the tenant (RLS applies through the view).
-- No sequential scans: the plan kept by a connection was made with the statistics of its first call; made while
-- the tables were small, it scanned every ticket, phase and attempt on each read as they grew (see
-- oshal_record_results, which reads back through this function). No bitmap scans either: with statistics older than
-- a bulk load, the ledger's sum ANDed the ticket's index with the tenant's (RLS) one, reading every ledger entry of
-- the tenant (1 ms at 20,000) for the ticket's one or two; each lateral reads a few rows of one ticket by its index.
CREATE OR REPLACE FUNCTION oshal_ticket(p_tenant uuid, p_ticket uuid) RETURNS SETOF ticket_view
LANGUAGE plpgsql SET enable_seqscan = off SET enable_bitmapscan = off AS $$
BEGIN
    PERFORM set_config('oshal.tenant_id', p_tenant::text, true);
    RETURN QUERY SELECT * FROM ticket_view v WHERE v.id = p_ticket;
END $$;
REVOKE ALL ON FUNCTION oshal_ticket(uuid, uuid) FROM PUBLIC, oshal_api;
GRANT EXECUTE ON FUNCTION oshal_ticket(uuid, uuid) TO oshal_api;
