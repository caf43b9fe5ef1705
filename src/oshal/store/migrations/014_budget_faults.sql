-- Spend that stays within its limit under faults.
--
-- * Paused work resumes whenever room returns (a call settling below its reservation, a released reservation, a
--   new window), oldest first and as many tickets as fit: each is estimated by the amount its refused call asked
--   for, and the room is held for it until its next call takes it over, so two passes never hand out one room.
-- * A reservation outlives its job: every call a ticket's bot makes extends the bot's open reservations on it.
-- * Cost no open reservation covered is flagged on its ledger row (a late result: settled_late; usage above the
--   reservation's bound: over_reservation_micros); when such cost (or that of a call that reserved nothing) takes
--   a budget past its limit, the budget is marked overrun, which pauses its scope until an operator sets it again.
--   This is judged by a trigger after the statement that writes ledger rows, so oshal_record_results is unchanged.

-- 'hold': room held for a budget-paused ticket being resumed, until its next call takes it over.
-- 'refused': a call refused for budget, kept for what it asked (the estimate its paused ticket resumes by).
ALTER TABLE reservations ADD COLUMN kind text NOT NULL DEFAULT 'call' CHECK (kind IN ('call', 'hold'));
ALTER TABLE reservations DROP CONSTRAINT reservations_status_check;
ALTER TABLE reservations ADD CONSTRAINT reservations_status_check
    CHECK (status IN ('open', 'settled', 'expired', 'released', 'refused'));

ALTER TABLE ledger ADD COLUMN over_reservation_micros bigint NOT NULL DEFAULT 0 CHECK (over_reservation_micros >= 0),
                   ADD COLUMN settled_late boolean NOT NULL DEFAULT false;
CREATE INDEX ledger_uncovered ON ledger (created_at) WHERE over_reservation_micros > 0 OR settled_late;  -- rare rows

ALTER TABLE budgets ADD COLUMN overrun_at timestamptz,
                    ADD COLUMN overrun_micros bigint,
                    ADD COLUMN overrun_reason text;
CREATE INDEX budgets_overrun ON budgets (overrun_at) WHERE overrun_at IS NOT NULL;

-- As in 010, plus: the ticket's room held by a resume is taken over (released under the same locks); an overrun
-- budget refuses every call; a refusal is kept with its amount; the bot's other open reservations on the ticket
-- are extended (its job is alive, and they settle only with the job's result). Every usage row is locked in
-- (budget, window) order, once, as everywhere else.
DROP FUNCTION oshal_reserve(uuid, uuid, uuid, text, bigint, double precision, int, double precision);
CREATE FUNCTION oshal_reserve(p_tenant uuid, p_reservation uuid, p_ticket uuid, p_bot text,
                              p_amount bigint, p_ttl_s double precision, p_max_calls int,
                              p_window_s double precision)
RETURNS TABLE (ok boolean, reason text, budget_id uuid, scope text, subject text, period text,
               limit_micros bigint, remaining bigint, soft_crossed uuid[], released_hold bigint)
LANGUAGE plpgsql AS $$
DECLARE
    b record;
    v_spent bigint;
    v_reserved bigint;
    v_notified boolean;
    v_ids uuid[] := '{}';
    v_windows timestamptz[] := '{}';
    v_soft uuid[] := '{}';
    v_hold_ids uuid[];
    v_hold_windows timestamptz[];
    v_hold_amounts bigint[];
    v_recent int;
    v_type text;
    v_refused boolean := false;
BEGIN
    PERFORM set_config('oshal.tenant_id', p_tenant::text, true);
    soft_crossed := '{}';
    SELECT t.type INTO v_type FROM tickets t WHERE t.id = p_ticket;
    -- Reservation rows are locked before usage rows, as expiry and settlement do.
    UPDATE reservations r SET expires_at = now() + make_interval(secs => p_ttl_s)
     WHERE r.ticket_id = p_ticket AND r.bot = p_bot AND r.status = 'open' AND r.kind = 'call'
       AND r.expires_at < now() + make_interval(secs => p_ttl_s);
    WITH held AS (
        UPDATE reservations h SET status = 'released', settled_at = now()
         WHERE h.ticket_id = p_ticket AND h.status = 'open' AND h.kind = 'hold'
        RETURNING h.amount, h.budgets, h.windows
    ), per_row AS (
        SELECT x.id, x.w, sum(h.amount)::bigint AS amount FROM held h, unnest(h.budgets, h.windows) AS x(id, w)
         GROUP BY x.id, x.w
    )
    SELECT array_agg(id), array_agg(w), array_agg(amount), (SELECT coalesce(sum(amount), 0) FROM held)
      INTO v_hold_ids, v_hold_windows, v_hold_amounts, released_hold FROM per_row;
    released_hold := coalesce(released_hold, 0);
    IF p_max_calls > 0 THEN
        -- Counted since the window began or an operator last resumed the ticket, whichever is later.
        SELECT count(*) INTO v_recent FROM reservations r
         WHERE r.ticket_id = p_ticket AND r.kind = 'call' AND r.status <> 'refused'
           AND r.created_at > greatest(now() - make_interval(secs => p_window_s),
               coalesce((SELECT max(e.at) FROM ticket_events e WHERE e.ticket_id = p_ticket
                         AND e.from_status = 'paused' AND e.to_status = 'in_progress'), '-infinity'));
        IF v_recent >= p_max_calls THEN
            v_refused := true;
            ok := false;
            reason := 'runaway';
            remaining := 0;
            limit_micros := p_max_calls;
        END IF;
    END IF;
    FOR b IN
        SELECT bu.*, x.w AS window_start, x.hold, x.applies
          FROM (SELECT u.id, u.w, sum(u.hold)::bigint AS hold, bool_or(u.applies) AS applies
                  FROM (SELECT m.id, oshal_window(m.period, now()) AS w, 0::bigint AS hold, true AS applies
                          FROM budgets m
                         WHERE m.scope = 'tenant' OR (m.scope = 'bot' AND m.subject = p_bot)
                            OR (m.scope = 'type' AND m.subject = v_type)
                            OR (m.scope = 'ticket' AND m.subject = p_ticket::text)
                        UNION ALL
                        SELECT h.id, h.w, h.amount, false
                          FROM unnest(v_hold_ids, v_hold_windows, v_hold_amounts) AS h(id, w, amount)) u
                 GROUP BY u.id, u.w) x
          JOIN budgets bu ON bu.id = x.id  -- a budget deleted since the hold has nothing to release
         ORDER BY x.id, x.w LOOP
        INSERT INTO budget_usage (budget_id, tenant_id, window_start) VALUES (b.id, p_tenant, b.window_start)
        ON CONFLICT DO NOTHING;
        SELECT u.spent, u.reserved, u.soft_notified INTO v_spent, v_reserved, v_notified FROM budget_usage u
         WHERE u.budget_id = b.id AND u.window_start = b.window_start FOR UPDATE;
        IF b.hold > 0 THEN
            v_reserved := greatest(v_reserved - b.hold, 0);
            UPDATE budget_usage u SET reserved = v_reserved
             WHERE u.budget_id = b.id AND u.window_start = b.window_start;
        END IF;
        CONTINUE WHEN NOT b.applies OR v_refused;  -- the rest of the loop only releases what was held
        IF b.overrun_at IS NOT NULL OR v_spent + v_reserved + p_amount > b.limit_micros THEN
            v_refused := true;
            ok := false;
            reason := CASE WHEN b.overrun_at IS NOT NULL THEN 'overrun' ELSE 'budget' END;
            budget_id := b.id;
            scope := b.scope;
            subject := b.subject;
            period := b.period;
            limit_micros := b.limit_micros;
            remaining := greatest(b.limit_micros - v_spent - v_reserved, 0);
            CONTINUE;
        END IF;
        IF b.soft_micros IS NOT NULL AND NOT v_notified AND v_spent + v_reserved + p_amount >= b.soft_micros THEN
            v_soft := v_soft || b.id;
        END IF;
        v_ids := v_ids || b.id;
        v_windows := v_windows || b.window_start;
    END LOOP;
    IF v_refused THEN
        IF reason <> 'runaway' THEN  -- what the paused ticket will need to resume
            INSERT INTO reservations (id, tenant_id, ticket_id, bot, amount, status, budgets, windows, expires_at,
                                      settled_at)
            VALUES (p_reservation, p_tenant, p_ticket, p_bot, p_amount, 'refused', '{}', '{}', now(), now());
        END IF;
        RETURN NEXT;
        RETURN;
    END IF;
    UPDATE budget_usage u SET reserved = u.reserved + p_amount,
                              soft_notified = u.soft_notified OR u.budget_id = ANY (v_soft)
      FROM unnest(v_ids, v_windows) AS x(id, w)
     WHERE u.budget_id = x.id AND u.window_start = x.w;
    INSERT INTO reservations (id, tenant_id, ticket_id, bot, amount, status, budgets, windows, expires_at)
    VALUES (p_reservation, p_tenant, p_ticket, p_bot, p_amount, 'open', v_ids, v_windows,
            now() + make_interval(secs => p_ttl_s));
    ok := true;
    soft_crossed := v_soft;
    RETURN NEXT;
END $$;

-- Budget-paused tickets (of ``p_tenants``, or all) that fit the room their budgets have now, oldest first: for
-- each, the amount its refused call asked (else the largest such amount among its bot's paused tickets, else its
-- bot's latest call, else one micro-dollar) is held against every budget above it, and it is returned for the
-- caller to resume. A ticket
-- whose refused attempt has not reported yet, or that already holds room, waits; an overrun budget resumes
-- nothing under it.
CREATE INDEX reservations_bot_recent ON reservations (tenant_id, bot, created_at);
CREATE FUNCTION oshal_budget_resume(p_tenants uuid[], p_limit int, p_hold_s double precision)
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

-- Cost that no open reservation covered, judged once the statement that wrote its ledger rows (the collector's,
-- which also settles reservations) is complete: a result that arrived after its reservation was released is
-- flagged late, usage above what its reservation held is flagged with the excess, and when such cost leaves a
-- budget above the call holding more than its limit (spent plus what calls in flight hold), the budget is marked
-- overrun. Settlement itself is untouched: money spent is always counted.
CREATE FUNCTION oshal_ledger_coverage() RETURNS trigger
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
CREATE TRIGGER ledger_coverage AFTER INSERT ON ledger REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION oshal_ledger_coverage();

-- Overrun budgets across tenants since ``p_since``, for the sweeper to have the spend scan file them at once.
CREATE FUNCTION oshal_budget_overruns(p_since timestamptz)
RETURNS TABLE (tenant_id uuid, budget_id uuid, overrun_at timestamptz, overrun_micros bigint, reason text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT oshal_require_scope('oshal_budget_overruns', NULL);
    SELECT b.tenant_id, b.id, b.overrun_at, b.overrun_micros, b.overrun_reason FROM budgets b
     WHERE b.overrun_at > p_since ORDER BY b.overrun_at
$$;

-- As in 010, plus: room held for a resumed ticket that ended without another model call goes back at once.
CREATE INDEX reservations_holds ON reservations (ticket_id) WHERE status = 'open' AND kind = 'hold';
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

-- Superseded by oshal_budget_resume (room-based, not change-based).
DROP FUNCTION oshal_budget_resumable(int, boolean);

REVOKE ALL ON FUNCTION oshal_reserve(uuid, uuid, uuid, text, bigint, double precision, int, double precision),
    oshal_budget_resume(uuid[], int, double precision), oshal_ledger_coverage(),
    oshal_budget_overruns(timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    oshal_reserve(uuid, uuid, uuid, text, bigint, double precision, int, double precision),
    oshal_budget_resume(uuid[], int, double precision), oshal_budget_overruns(timestamptz)
    TO oshal_api;
GRANT UPDATE (expires_at) ON reservations TO oshal_api;
GRANT UPDATE (over_reservation_micros, settled_late) ON ledger TO oshal_api;
GRANT UPDATE (overrun_at, overrun_micros, overrun_reason) ON budgets TO oshal_api;
