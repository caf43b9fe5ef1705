-- Budget-paused tickets (of ``p_tenants``, or all) that fit the room their budgets have now, oldest first: for
-- each, the amount its refused call asked (else the largest such amount among its bot's paused tickets, else its
-- bot's latest call, else one micro-dollar) is held against every budget above it, and it is returned for the
-- caller to resume. A ticket whose refused attempt has not reported yet, or that already holds room, waits; an
-- overrun budget resumes nothing under it.
CREATE OR REPLACE FUNCTION oshal_budget_resume(p_tenants uuid[], p_limit int, p_hold_s double precision)
RETURNS TABLE (tenant_id uuid, ticket_id uuid)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    c record;
    v_tenants uuid[];
    v_fits boolean;
    v_ids uuid[];
    v_windows timestamptz[];
    v_resumed int := 0;
BEGIN
    PERFORM oshal_require_scope('oshal_budget_resume', NULL);
    SELECT array_agg(DISTINCT t.tenant_id) INTO v_tenants FROM tickets t
     WHERE t.status = 'paused' AND t.status_reason LIKE 'budget%'
       AND (p_tenants IS NULL OR t.tenant_id = ANY (p_tenants));
    IF v_tenants IS NULL THEN
        RETURN;  -- nothing paused for budget: the common case, one index probe
    END IF;
    -- One pass at a time: the collector and the sweeper both resume, and must not hand out the same room twice.
    PERFORM pg_advisory_xact_lock(x'05A1B0D6'::int);
    -- Lock every current usage row of these tenants' budgets up front, in the order oshal_reserve locks them.
    INSERT INTO budget_usage (budget_id, tenant_id, window_start)
    SELECT b.id, b.tenant_id, oshal_window(b.period, now()) FROM budgets b WHERE b.tenant_id = ANY (v_tenants)
     ORDER BY b.id
    ON CONFLICT DO NOTHING;
    PERFORM 1 FROM budget_usage u JOIN budgets b ON b.id = u.budget_id AND u.window_start = oshal_window(b.period, now())
     WHERE b.tenant_id = ANY (v_tenants) ORDER BY u.budget_id, u.window_start FOR UPDATE OF u;
    FOR c IN
        SELECT p.id AS ticket, p.tenant_id AS tenant, p.bot, p.type,
               coalesce(p.amount, max(p.amount) OVER (PARTITION BY p.tenant_id, p.bot),
                        (SELECT r.amount FROM reservations r WHERE r.tenant_id = p.tenant_id AND r.bot = p.bot
                            AND r.kind = 'call' ORDER BY r.created_at DESC LIMIT 1), 1) AS need
          FROM (SELECT t.id, t.tenant_id, t.type, t.created_at, w.amount,
                       coalesce(w.bot, t.bot, (SELECT q.bot FROM phases q WHERE q.ticket_id = t.id
                                                  AND q.status = 'queued' ORDER BY q.seq LIMIT 1)) AS bot
                  FROM tickets t
                  LEFT JOIN LATERAL (SELECT r.bot, r.amount FROM reservations r
                                      WHERE r.ticket_id = t.id AND r.status = 'refused'
                                      ORDER BY r.created_at DESC LIMIT 1) w ON true
                 WHERE t.status = 'paused' AND t.status_reason LIKE 'budget%' AND t.tenant_id = ANY (v_tenants)
                   AND NOT EXISTS (SELECT 1 FROM phases q WHERE q.ticket_id = t.id AND q.status = 'dispatched')
                   AND NOT EXISTS (SELECT 1 FROM reservations h WHERE h.ticket_id = t.id AND h.status = 'open'
                                                                  AND h.kind = 'hold')) p
         ORDER BY p.created_at, p.id LOOP  -- no LIMIT here: tickets that do not fit must not hide those behind
        SELECT coalesce(bool_and(b.overrun_at IS NULL AND u.spent + u.reserved + c.need <= b.limit_micros), true),
               coalesce(array_agg(b.id), '{}'), coalesce(array_agg(u.window_start), '{}')
          INTO v_fits, v_ids, v_windows
          FROM budgets b JOIN budget_usage u ON u.budget_id = b.id AND u.window_start = oshal_window(b.period, now())
         WHERE b.tenant_id = c.tenant
           AND (b.scope = 'tenant' OR (b.scope = 'bot' AND b.subject = c.bot)
                OR (b.scope = 'type' AND b.subject = c.type) OR (b.scope = 'ticket' AND b.subject = c.ticket::text));
        CONTINUE WHEN NOT v_fits;
        UPDATE budget_usage u SET reserved = u.reserved + c.need
          FROM unnest(v_ids, v_windows) AS x(id, w)
         WHERE u.budget_id = x.id AND u.window_start = x.w;
        INSERT INTO reservations (id, tenant_id, ticket_id, bot, amount, status, kind, budgets, windows, expires_at)
        VALUES (gen_random_uuid(), c.tenant, c.ticket, coalesce(c.bot, ''), c.need, 'open', 'hold', v_ids,
                v_windows, now() + make_interval(secs => p_hold_s));
        tenant_id := c.tenant;
        ticket_id := c.ticket;
        RETURN NEXT;
        v_resumed := v_resumed + 1;
        EXIT WHEN v_resumed >= p_limit;
    END LOOP;
END $$;
REVOKE ALL ON FUNCTION oshal_budget_resume(uuid[], int, double precision) FROM PUBLIC, oshal_api;
GRANT EXECUTE ON FUNCTION oshal_budget_resume(uuid[], int, double precision) TO oshal_api;
