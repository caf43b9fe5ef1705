-- Reservations whose call never reported (a crashed bot) expire: what they held is released. Room held for a
-- resumed ticket that ended without another model call goes back at once.
CREATE OR REPLACE FUNCTION oshal_expire_reservations(p_limit int) RETURNS int
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    v_count int;
    v_ids uuid[];
    v_windows timestamptz[];
    v_amounts bigint[];
BEGIN
    UPDATE reservations h SET expires_at = '-infinity'
     WHERE h.status = 'open' AND h.kind = 'hold' AND h.expires_at > '-infinity'
       AND EXISTS (SELECT 1 FROM tickets t WHERE t.id = h.ticket_id
                      AND t.status IN ('done', 'failed', 'dead_letter', 'cancelled'));
    WITH gone AS (
        UPDATE reservations r SET status = 'expired', settled_at = now()
         WHERE r.id IN (SELECT id FROM reservations WHERE status = 'open' AND expires_at < now()
                        ORDER BY expires_at LIMIT p_limit FOR UPDATE SKIP LOCKED)
        RETURNING r.amount, r.budgets, r.windows
    ), held AS (
        SELECT x.id, x.w, sum(g.amount)::bigint AS amount FROM gone g, unnest(g.budgets, g.windows) AS x(id, w)
         GROUP BY x.id, x.w
    )
    SELECT array_agg(id ORDER BY id, w), array_agg(w ORDER BY id, w), array_agg(amount ORDER BY id, w),
           (SELECT count(*) FROM gone)
      INTO v_ids, v_windows, v_amounts, v_count FROM held;
    -- Lock the usage rows in the order oshal_reserve does, then release what the expired calls held.
    PERFORM 1 FROM budget_usage u JOIN unnest(v_ids, v_windows) AS x(id, w)
                ON u.budget_id = x.id AND u.window_start = x.w ORDER BY u.budget_id, u.window_start FOR UPDATE OF u;
    UPDATE budget_usage u SET reserved = greatest(u.reserved - x.amount, 0)
      FROM unnest(v_ids, v_windows, v_amounts) AS x(id, w, amount)
     WHERE u.budget_id = x.id AND u.window_start = x.w;
    RETURN coalesce(v_count, 0);
END $$;
REVOKE ALL ON FUNCTION oshal_expire_reservations(int) FROM PUBLIC, oshal_api;
GRANT EXECUTE ON FUNCTION oshal_expire_reservations(int) TO oshal_api;
