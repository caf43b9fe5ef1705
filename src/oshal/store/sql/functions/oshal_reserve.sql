-- Reserves ``p_amount`` against every budget above this call, atomically: all of them, or none and the first that
-- would be exceeded (an overrun budget refuses every call). Usage rows are locked in (budget, window) order, once,
-- as everywhere else, so concurrent reservations never deadlock. Also:
-- * refuses a ticket that made ``p_max_calls`` reservations within ``p_window_s`` (runaway protection);
-- * takes over the room a resume held for the ticket (released under the same locks);
-- * keeps a refusal with its amount (what the paused ticket will need to resume);
-- * extends the bot's other open reservations on the ticket (its job is alive; they settle with its result).
CREATE OR REPLACE FUNCTION oshal_reserve(p_tenant uuid, p_reservation uuid, p_ticket uuid, p_bot text,
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
    v_locked uuid[];
BEGIN
    PERFORM set_config('oshal.tenant_id', p_tenant::text, true);
    soft_crossed := '{}';
    SELECT t.type INTO v_type FROM tickets t WHERE t.id = p_ticket;
    -- Reservation rows are locked before usage rows, as expiry and settlement do, and in id order: concurrent calls
    -- of one ticket extend overlapping sets of its open reservations, and an unordered UPDATE deadlocks them.
    -- Only the rows locked here are changed below: a later statement's snapshot also sees rows committed since,
    -- which would be locked out of order.
    SELECT coalesce(array_agg(l.id), '{}') INTO v_locked
      FROM (SELECT r.id FROM reservations r
             WHERE r.ticket_id = p_ticket AND r.status = 'open' AND (r.kind = 'hold' OR r.bot = p_bot)
             ORDER BY r.id FOR UPDATE) l;
    UPDATE reservations r SET expires_at = now() + make_interval(secs => p_ttl_s)
     WHERE r.id = ANY (v_locked) AND r.bot = p_bot AND r.status = 'open' AND r.kind = 'call'
       AND r.expires_at < now() + make_interval(secs => p_ttl_s);
    WITH held AS (
        UPDATE reservations h SET status = 'released', settled_at = now()
         WHERE h.id = ANY (v_locked) AND h.status = 'open' AND h.kind = 'hold'
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
REVOKE ALL ON FUNCTION oshal_reserve(uuid, uuid, uuid, text, bigint, double precision, int, double precision) FROM PUBLIC, oshal_api;
GRANT EXECUTE ON FUNCTION oshal_reserve(uuid, uuid, uuid, text, bigint, double precision, int, double precision) TO oshal_api;
