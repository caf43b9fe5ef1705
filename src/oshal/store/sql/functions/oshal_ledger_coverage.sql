-- Cost that no open reservation covered, judged once the statement that wrote its ledger rows (the collector's,
-- which also settles reservations) is complete: a result that arrived after its reservation was released is
-- flagged late, usage above what its reservation held is flagged with the excess, and when such cost leaves a
-- budget above the call holding more than its limit (spent plus what calls in flight hold), the budget is marked
-- overrun. Settlement itself is untouched: money spent is always counted.
CREATE OR REPLACE FUNCTION oshal_ledger_coverage() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- A reservation still open has not been settled by this statement (nothing to judge yet).
    IF NOT EXISTS (SELECT 1 FROM added a LEFT JOIN reservations r ON r.id = a.reservation_id
                    WHERE a.cost_micros > 0 AND r.status IS DISTINCT FROM 'open'
                      AND (r.id IS NULL OR r.status <> 'settled' OR r.settled_at <> now() OR r.actual > r.amount)) THEN
        RETURN NULL;  -- every cost settled within its reservation: the common case, one probe per batch
    END IF;
    WITH judged AS (
        SELECT a.call_id, a.tenant_id, a.ticket_id, a.bot, coalesce(r.status IN ('expired', 'released'), false) AS late,
               CASE WHEN s.settled THEN greatest(r.actual - r.amount, 0) ELSE 0 END AS over,
               CASE WHEN s.settled THEN greatest(r.actual - r.amount, 0) ELSE a.cost_micros END AS uncovered
          FROM added a
          LEFT JOIN reservations r ON r.id = a.reservation_id
          CROSS JOIN LATERAL (SELECT coalesce(r.status = 'settled' AND r.settled_at = now(), false) AS settled) s
         WHERE a.cost_micros > 0 AND r.status IS DISTINCT FROM 'open'
    ), flagged AS (
        UPDATE ledger l SET settled_late = j.late, over_reservation_micros = j.over
          FROM judged j WHERE l.call_id = j.call_id AND (j.late OR j.over > 0)
    )
    UPDATE budgets b
       SET overrun_at = now(), overrun_micros = x.spent + x.in_flight - b.limit_micros, overrun_reason = x.why
      FROM (SELECT DISTINCT ON (bu.id) bu.id, us.spent, us.reserved - held.amount AS in_flight,
                   CASE WHEN j.late THEN format('the result of call %s arrived after its reservation was released',
                                                j.call_id)
                        WHEN j.over > 0 THEN format('call %s cost %s micro-dollars more than its reservation held',
                                                    j.call_id, j.over)
                        ELSE format('call %s cost %s micro-dollars without a reservation', j.call_id, j.uncovered)
                   END AS why
              FROM judged j
              JOIN budgets bu ON bu.tenant_id = j.tenant_id
                   AND (bu.scope = 'tenant' OR (bu.scope = 'bot' AND bu.subject = j.bot)
                        OR (bu.scope = 'ticket' AND bu.subject = j.ticket_id::text)
                        OR (bu.scope = 'type' AND bu.subject = (SELECT t.type FROM tickets t WHERE t.id = j.ticket_id)))
              JOIN budget_usage us ON us.budget_id = bu.id AND us.window_start = oshal_window(bu.period, now())
              -- room held for resumed tickets is not a call in flight: it must not make an overrun of its own
              CROSS JOIN LATERAL (SELECT coalesce(sum(h.amount), 0) AS amount FROM reservations h
                                   WHERE h.status = 'open' AND h.kind = 'hold' AND h.tenant_id = bu.tenant_id
                                     AND bu.id = ANY (h.budgets)) held
             WHERE j.uncovered > 0 AND us.spent + us.reserved - held.amount > bu.limit_micros
               AND bu.overrun_at IS NULL
             ORDER BY bu.id, j.late DESC, j.uncovered DESC) x
     WHERE b.id = x.id;
    RETURN NULL;
END $$;
CREATE OR REPLACE TRIGGER ledger_coverage AFTER INSERT ON ledger REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION oshal_ledger_coverage();
REVOKE ALL ON FUNCTION oshal_ledger_coverage() FROM PUBLIC, oshal_api;
