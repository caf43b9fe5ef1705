-- oshal schema after migrations 001_core .. 014_budget_faults (tools/schema_snapshot.py)
--
-- PostgreSQL database dump
--


-- Dumped from database version 18.6
-- Dumped by pg_dump version 18.6

SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET transaction_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

--
-- Name: public; Type: SCHEMA; Schema: -; Owner: oshal_owner
--

-- *not* creating schema, since initdb creates it


ALTER SCHEMA public OWNER TO oshal_owner;

--
-- Name: oshal_audit(uuid[], text[], text[], text[], jsonb[]); Type: FUNCTION; Schema: public; Owner: oshal_owner
--

CREATE FUNCTION public.oshal_audit(p_tenants uuid[], p_actors text[], p_actions text[], p_targets text[], p_details jsonb[]) RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'public', 'pg_temp'
    AS $$
DECLARE
    v_seq bigint;
    v_hash bytea;
    v_prev bytea;
    v_at timestamptz := clock_timestamp();
    i int;
BEGIN
    SELECT seq, hash INTO v_seq, v_hash FROM audit_chain FOR UPDATE;
    FOR i IN 1 .. coalesce(array_length(p_actions, 1), 0) LOOP
        v_seq := v_seq + 1;
        v_prev := v_hash;
        v_hash := oshal_audit_digest(v_prev, v_seq, v_at, p_tenants[i], p_actors[i], p_actions[i],
                                     coalesce(p_targets[i], ''), coalesce(p_details[i], '{}'));
        INSERT INTO audit_log (seq, tenant_id, at, actor, action, target, detail, prev_hash, hash)
        VALUES (v_seq, p_tenants[i], v_at, p_actors[i], p_actions[i], coalesce(p_targets[i], ''),
                coalesce(p_details[i], '{}'), v_prev, v_hash);
    END LOOP;
    UPDATE audit_chain SET seq = v_seq, hash = v_hash;
    RETURN v_seq;
END $$;


ALTER FUNCTION public.oshal_audit(p_tenants uuid[], p_actors text[], p_actions text[], p_targets text[], p_details jsonb[]) OWNER TO oshal_owner;

--
-- Name: oshal_audit_anchor(bigint, bytea, bytea); Type: FUNCTION; Schema: public; Owner: oshal_owner
--

CREATE FUNCTION public.oshal_audit_anchor(p_seq bigint, p_hash bytea, p_mac bytea) RETURNS void
    LANGUAGE sql SECURITY DEFINER
    SET search_path TO 'public', 'pg_temp'
    AS $$
    INSERT INTO audit_anchors (seq, hash, mac) VALUES (p_seq, p_hash, p_mac) ON CONFLICT (seq) DO NOTHING
$$;


ALTER FUNCTION public.oshal_audit_anchor(p_seq bigint, p_hash bytea, p_mac bytea) OWNER TO oshal_owner;

SET default_tablespace = '';

SET default_table_access_method = heap;

--
-- Name: audit_anchors; Type: TABLE; Schema: public; Owner: oshal_owner
--

CREATE TABLE public.audit_anchors (
    seq bigint NOT NULL,
    hash bytea NOT NULL,
    mac bytea NOT NULL,
    at timestamp with time zone DEFAULT now() NOT NULL
);


ALTER TABLE public.audit_anchors OWNER TO oshal_owner;

--
-- Name: oshal_audit_anchors(); Type: FUNCTION; Schema: public; Owner: oshal_owner
--

CREATE FUNCTION public.oshal_audit_anchors() RETURNS SETOF public.audit_anchors
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path TO 'public', 'pg_temp'
    AS $$
    SELECT * FROM audit_anchors ORDER BY seq
$$;


ALTER FUNCTION public.oshal_audit_anchors() OWNER TO oshal_owner;

--
-- Name: oshal_audit_append_only(); Type: FUNCTION; Schema: public; Owner: oshal_owner
--

CREATE FUNCTION public.oshal_audit_append_only() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path TO 'public', 'pg_temp'
    AS $$
BEGIN
    IF TG_OP = 'DELETE' AND current_user = 'oshal_audit_keeper' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'the audit log is append-only (% on % refused)', TG_OP, TG_TABLE_NAME USING ERRCODE = 'OX403';
END $$;


ALTER FUNCTION public.oshal_audit_append_only() OWNER TO oshal_owner;

--
-- Name: oshal_audit_counts(timestamp with time zone); Type: FUNCTION; Schema: public; Owner: oshal_owner
--

CREATE FUNCTION public.oshal_audit_counts(p_since timestamp with time zone) RETURNS TABLE(action text, actor text, n bigint)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path TO 'public', 'pg_temp'
    AS $$
    SELECT oshal_require_scope('oshal_audit_counts', NULL);
    SELECT action, actor, count(*) FROM audit_log WHERE at >= p_since GROUP BY action, actor
$$;


ALTER FUNCTION public.oshal_audit_counts(p_since timestamp with time zone) OWNER TO oshal_owner;

--
-- Name: oshal_audit_digest(bytea, bigint, timestamp with time zone, uuid, text, text, text, jsonb); Type: FUNCTION; Schema: public; Owner: oshal_owner
--

CREATE FUNCTION public.oshal_audit_digest(p_prev bytea, p_seq bigint, p_at timestamp with time zone, p_tenant uuid, p_actor text, p_action text, p_target text, p_detail jsonb) RETURNS bytea
    LANGUAGE sql IMMUTABLE
    SET search_path TO 'public', 'pg_temp'
    AS $$
    SELECT sha256(p_prev || convert_to(concat_ws(chr(31), p_seq::text,
        floor(extract(epoch FROM p_at) * 1000000)::bigint::text, coalesce(p_tenant::text, ''),
        p_actor, p_action, p_target, p_detail::text), 'UTF8'))
$$;


ALTER FUNCTION public.oshal_audit_digest(p_prev bytea, p_seq bigint, p_at timestamp with time zone, p_tenant uuid, p_actor text, p_action text, p_target text, p_detail jsonb) OWNER TO oshal_owner;

--
-- Name: audit_log; Type: TABLE; Schema: public; Owner: oshal_owner
--

CREATE TABLE public.audit_log (
    seq bigint NOT NULL,
    tenant_id uuid,
    at timestamp with time zone NOT NULL,
    actor text NOT NULL,
    action text NOT NULL,
    target text DEFAULT ''::text NOT NULL,
    detail jsonb DEFAULT '{}'::jsonb NOT NULL,
    prev_hash bytea NOT NULL,
    hash bytea NOT NULL
);

ALTER TABLE ONLY public.audit_log FORCE ROW LEVEL SECURITY;


ALTER TABLE public.audit_log OWNER TO oshal_owner;

--
-- Name: oshal_audit_entries(uuid, bigint, integer); Type: FUNCTION; Schema: public; Owner: oshal_owner
--

CREATE FUNCTION public.oshal_audit_entries(p_tenant uuid, p_after bigint, p_limit integer) RETURNS SETOF public.audit_log
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path TO 'public', 'pg_temp'
    AS $$
    SELECT oshal_require_scope('oshal_audit_entries', p_tenant);
    SELECT * FROM audit_log WHERE seq > p_after AND (p_tenant IS NULL OR tenant_id = p_tenant)
     ORDER BY seq LIMIT p_limit
$$;


ALTER FUNCTION public.oshal_audit_entries(p_tenant uuid, p_after bigint, p_limit integer) OWNER TO oshal_owner;

--
-- Name: oshal_audit_hashes(bigint[]); Type: FUNCTION; Schema: public; Owner: oshal_owner
--

CREATE FUNCTION public.oshal_audit_hashes(p_seqs bigint[]) RETURNS TABLE(seq bigint, hash bytea)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path TO 'public', 'pg_temp'
    AS $$
    SELECT seq, hash FROM audit_log WHERE seq = ANY (p_seqs)
$$;


ALTER FUNCTION public.oshal_audit_hashes(p_seqs bigint[]) OWNER TO oshal_owner;

--
-- Name: oshal_audit_head(); Type: FUNCTION; Schema: public; Owner: oshal_owner
--

CREATE FUNCTION public.oshal_audit_head() RETURNS TABLE(seq bigint, hash bytea, pruned_seq bigint, entries bigint)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path TO 'public', 'pg_temp'
    AS $$
    SELECT c.seq, c.hash, c.pruned_seq, (SELECT count(*) FROM audit_log) FROM audit_chain c
$$;


ALTER FUNCTION public.oshal_audit_head() OWNER TO oshal_owner;

--
-- Name: oshal_audit_prune(timestamp with time zone); Type: FUNCTION; Schema: public; Owner: oshal_owner
--

CREATE FUNCTION public.oshal_audit_prune(p_before timestamp with time zone) RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'public', 'pg_temp'
    AS $$
DECLARE
    v_last bigint;
    v_hash bytea;
    v_count bigint;
BEGIN
    IF p_before > now() - interval '30 days' THEN
        RAISE EXCEPTION 'audit entries are kept at least 30 days (asked to prune before %)', p_before
            USING ERRCODE = 'OX403';
    END IF;
    IF current_user <> 'oshal_audit_keeper' THEN
        RAISE EXCEPTION 'the audit log is not sealed (its functions are owned by %, not oshal_audit_keeper)',
            current_user USING ERRCODE = 'OX403',
            HINT = 'start the platform once with a superuser connection, or run `oshal audit seal`';
    END IF;
    PERFORM 1 FROM audit_chain FOR UPDATE;
    SELECT l.seq, l.hash INTO v_last, v_hash FROM audit_log l WHERE l.at < p_before ORDER BY l.seq DESC LIMIT 1;
    IF v_last IS NULL THEN
        RETURN 0;
    END IF;
    DELETE FROM audit_log WHERE seq <= v_last;
    GET DIAGNOSTICS v_count = ROW_COUNT;
    DELETE FROM audit_anchors WHERE seq <= v_last;
    UPDATE audit_chain SET pruned_seq = v_last, pruned_hash = v_hash;
    PERFORM oshal_audit(ARRAY[NULL::uuid], ARRAY['platform'], ARRAY['audit.pruned'], ARRAY[p_before::text],
                        ARRAY[jsonb_build_object('through_seq', v_last, 'entries', v_count)]);
    RETURN v_count;
END $$;


ALTER FUNCTION public.oshal_audit_prune(p_before timestamp with time zone) OWNER TO oshal_owner;

--
-- Name: oshal_audit_prune_point(timestamp with time zone); Type: FUNCTION; Schema: public; Owner: oshal_owner
--

CREATE FUNCTION public.oshal_audit_prune_point(p_before timestamp with time zone) RETURNS bigint
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path TO 'public', 'pg_temp'
    AS $$
    SELECT coalesce(max(seq), 0) FROM audit_log WHERE at < p_before
$$;


ALTER FUNCTION public.oshal_audit_prune_point(p_before timestamp with time zone) OWNER TO oshal_owner;

--
-- Name: oshal_audit_verify(); Type: FUNCTION; Schema: public; Owner: oshal_owner
--

CREATE FUNCTION public.oshal_audit_verify() RETURNS TABLE(seq bigint, problem text)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path TO 'public', 'pg_temp'
    AS $$
    WITH chain AS (SELECT * FROM audit_chain),
    rows AS (
        SELECT l.*, lag(l.hash) OVER w AS prior_hash, lag(l.seq) OVER w AS prior_seq
          FROM audit_log l WINDOW w AS (ORDER BY l.seq)
    )
    SELECT r.seq, 'entry does not match its hash (edited)'
      FROM rows r
     WHERE r.hash <> oshal_audit_digest(r.prev_hash, r.seq, r.at, r.tenant_id, r.actor, r.action, r.target,
                                        r.detail)
    UNION ALL
    SELECT r.seq, 'link to the previous entry is broken (entries deleted or replaced)'
      FROM rows r, chain c
     WHERE r.prev_hash <> coalesce(r.prior_hash, c.pruned_hash)
        OR r.seq <> coalesce(r.prior_seq, c.pruned_seq) + 1
    UNION ALL
    SELECT c.seq, 'chain head does not match the last entry (entries deleted at the end)'
      FROM chain c
      LEFT JOIN LATERAL (SELECT l.seq, l.hash FROM audit_log l ORDER BY l.seq DESC LIMIT 1) last ON true
     WHERE c.seq <> coalesce(last.seq, c.pruned_seq) OR c.hash <> coalesce(last.hash, c.pruned_hash)
    ORDER BY 1
$$;


ALTER FUNCTION public.oshal_audit_verify() OWNER TO oshal_owner;

--
-- Name: oshal_budget_overruns(timestamp with time zone); Type: FUNCTION; Schema: public; Owner: oshal_owner
--

CREATE FUNCTION public.oshal_budget_overruns(p_since timestamp with time zone) RETURNS TABLE(tenant_id uuid, budget_id uuid, overrun_at timestamp with time zone, overrun_micros bigint, reason text)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path TO 'public', 'pg_temp'
    AS $$
    SELECT oshal_require_scope('oshal_budget_overruns', NULL);
    SELECT b.tenant_id, b.id, b.overrun_at, b.overrun_micros, b.overrun_reason FROM budgets b
     WHERE b.overrun_at > p_since ORDER BY b.overrun_at
$$;


ALTER FUNCTION public.oshal_budget_overruns(p_since timestamp with time zone) OWNER TO oshal_owner;

--
-- Name: oshal_budget_resume(uuid[], integer, double precision); Type: FUNCTION; Schema: public; Owner: oshal_owner
--

CREATE FUNCTION public.oshal_budget_resume(p_tenants uuid[], p_limit integer, p_hold_s double precision) RETURNS TABLE(tenant_id uuid, ticket_id uuid)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'public', 'pg_temp'
    AS $$
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


ALTER FUNCTION public.oshal_budget_resume(p_tenants uuid[], p_limit integer, p_hold_s double precision) OWNER TO oshal_owner;

--
-- Name: oshal_create_tickets(uuid, uuid, uuid[], uuid[], text[], text[], text[], bytea[]); Type: FUNCTION; Schema: public; Owner: oshal_owner
--

CREATE FUNCTION public.oshal_create_tickets(p_tenant uuid, p_by uuid, p_ids uuid[], p_phase_ids uuid[], p_bots text[], p_inputs text[], p_keys text[], p_hashes bytea[]) RETURNS TABLE(id uuid, exhausted text)
    LANGUAGE plpgsql
    AS $$
BEGIN
    PERFORM set_config('oshal.tenant_id', p_tenant::text, true);
    RETURN QUERY
    WITH empty AS MATERIALIZED (  -- once per batch, not once per ticket
        SELECT b.scope, b.subject, format('budget: %s%s budget (%s) is exhausted: %s of %s micro-dollars used',
                                          b.scope, CASE WHEN b.subject = '' THEN '' ELSE ' ' || b.subject END,
                                          b.period, coalesce(u.spent + u.reserved, 0), b.limit_micros) AS why
          FROM budgets b
          LEFT JOIN budget_usage u ON u.budget_id = b.id AND u.window_start = oshal_window(b.period, now())
         WHERE b.scope IN ('tenant', 'bot') AND coalesce(u.spent + u.reserved, 0) >= b.limit_micros
    ), src AS (
        SELECT u.*, (SELECT e.why FROM empty e WHERE e.scope = 'tenant' OR e.subject = u.bot LIMIT 1) AS why
          FROM unnest(p_ids, p_phase_ids, p_bots, p_inputs, p_keys, p_hashes)
               AS u(ticket, phase, bot, input, key, hash)
    ), t AS (
        INSERT INTO tickets (id, tenant_id, bot, status, input, idempotency_key, request_hash, created_by,
                             status_reason, resume_status)
        SELECT src.ticket, p_tenant, src.bot, CASE WHEN src.why IS NULL THEN 'in_progress' ELSE 'paused' END,
               src.input::jsonb, src.key, src.hash, p_by, src.why,
               CASE WHEN src.why IS NULL THEN NULL ELSE 'in_progress' END
          FROM src
        ON CONFLICT (tenant_id, idempotency_key) DO NOTHING
        RETURNING tickets.id
    ), p AS (
        INSERT INTO phases (id, tenant_id, ticket_id, seq, bot, status, attempt, dispatched_at, updated_at)
        SELECT src.phase, p_tenant, src.ticket, 0, src.bot,
               CASE WHEN src.why IS NULL THEN 'dispatched' ELSE 'queued' END,
               CASE WHEN src.why IS NULL THEN 1 ELSE 0 END,
               CASE WHEN src.why IS NULL THEN now() END, now()
          FROM src JOIN t ON t.id = src.ticket
        RETURNING phases.ticket_id
    )
    SELECT p.ticket_id, src.why FROM p JOIN src ON src.ticket = p.ticket_id;
END $$;


ALTER FUNCTION public.oshal_create_tickets(p_tenant uuid, p_by uuid, p_ids uuid[], p_phase_ids uuid[], p_bots text[], p_inputs text[], p_keys text[], p_hashes bytea[]) OWNER TO oshal_owner;

--
-- Name: oshal_due_schedules(integer); Type: FUNCTION; Schema: public; Owner: oshal_owner
--

CREATE FUNCTION public.oshal_due_schedules(p_limit integer) RETURNS TABLE(tenant_id uuid, schedule_id uuid)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path TO 'public', 'pg_temp'
    AS $$
    SELECT oshal_require_scope('oshal_due_schedules', NULL);
    SELECT tenant_id, id FROM schedules WHERE enabled AND next_tick <= now() ORDER BY next_tick LIMIT p_limit
$$;


ALTER FUNCTION public.oshal_due_schedules(p_limit integer) OWNER TO oshal_owner;

--
-- Name: oshal_expire_reservations(integer); Type: FUNCTION; Schema: public; Owner: oshal_owner
--

CREATE FUNCTION public.oshal_expire_reservations(p_limit integer) RETURNS integer
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'public', 'pg_temp'
    AS $$
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


ALTER FUNCTION public.oshal_expire_reservations(p_limit integer) OWNER TO oshal_owner;

--
-- Name: oshal_held_phases(integer); Type: FUNCTION; Schema: public; Owner: oshal_owner
--

CREATE FUNCTION public.oshal_held_phases(p_limit integer) RETURNS TABLE(tenant_id uuid, phase_id uuid, bot text)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path TO 'public', 'pg_temp'
    AS $$
    SELECT oshal_require_scope('oshal_held_phases', NULL);
    SELECT p.tenant_id, p.id, p.bot FROM phases p JOIN tickets t ON t.id = p.ticket_id
     WHERE p.status = 'queued' AND t.status = 'in_progress' ORDER BY p.updated_at LIMIT p_limit
$$;


ALTER FUNCTION public.oshal_held_phases(p_limit integer) OWNER TO oshal_owner;

--
-- Name: oshal_key_check(text, bytea); Type: FUNCTION; Schema: public; Owner: oshal_owner
--

CREATE FUNCTION public.oshal_key_check(p_prefix text, p_digest bytea) RETURNS TABLE(id uuid, tenant_id uuid, role text, expires_at timestamp with time zone, revoked_at timestamp with time zone)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path TO 'public', 'pg_temp'
    AS $$
    SELECT id, tenant_id, role, expires_at, revoked_at FROM api_keys WHERE prefix = p_prefix AND hash = p_digest
$$;


ALTER FUNCTION public.oshal_key_check(p_prefix text, p_digest bytea) OWNER TO oshal_owner;

--
-- Name: oshal_key_inventory(uuid); Type: FUNCTION; Schema: public; Owner: oshal_owner
--

CREATE FUNCTION public.oshal_key_inventory(p_tenant uuid) RETURNS TABLE(id uuid, tenant_id uuid, prefix text, role text, name text, created_at timestamp with time zone, expires_at timestamp with time zone, revoked_at timestamp with time zone, last_used_at timestamp with time zone)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path TO 'public', 'pg_temp'
    AS $$
    SELECT oshal_require_scope('oshal_key_inventory', p_tenant);
    SELECT id, tenant_id, prefix, role, name, created_at, expires_at, revoked_at, last_used_at FROM api_keys
     WHERE p_tenant IS NULL OR tenant_id = p_tenant
$$;


ALTER FUNCTION public.oshal_key_inventory(p_tenant uuid) OWNER TO oshal_owner;

--
-- Name: oshal_keys_used(uuid[]); Type: FUNCTION; Schema: public; Owner: oshal_owner
--

CREATE FUNCTION public.oshal_keys_used(p_ids uuid[]) RETURNS void
    LANGUAGE sql SECURITY DEFINER
    SET search_path TO 'public', 'pg_temp'
    AS $$
    UPDATE api_keys SET last_used_at = now() WHERE id = ANY (p_ids)
$$;


ALTER FUNCTION public.oshal_keys_used(p_ids uuid[]) OWNER TO oshal_owner;

--
-- Name: oshal_ledger_coverage(); Type: FUNCTION; Schema: public; Owner: oshal_owner
--

CREATE FUNCTION public.oshal_ledger_coverage() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
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


ALTER FUNCTION public.oshal_ledger_coverage() OWNER TO oshal_owner;

--
-- Name: oshal_platform_scope(); Type: FUNCTION; Schema: public; Owner: oshal_owner
--

CREATE FUNCTION public.oshal_platform_scope() RETURNS boolean
    LANGUAGE sql STABLE
    SET search_path TO 'public', 'pg_temp'
    AS $$
    SELECT EXISTS (SELECT 1 FROM tenants
                    WHERE name = 'system' AND id::text = current_setting('oshal.tenant_id', true))
$$;


ALTER FUNCTION public.oshal_platform_scope() OWNER TO oshal_owner;

--
-- Name: oshal_record_results(uuid, uuid[], integer[], uuid[], text[], text[], text[], text[], integer[], timestamp with time zone[], timestamp with time zone[], text[], uuid[], uuid[], integer[], text[], text[], text[], bigint[], bigint[], bigint[], bigint[], bigint[], text[], bigint[], bigint[], bigint[], uuid[]); Type: FUNCTION; Schema: public; Owner: oshal_owner
--

CREATE FUNCTION public.oshal_record_results(p_tenant uuid, p_phase uuid[], p_attempt integer[], p_ticket uuid[], p_outcome text[], p_output text[], p_error text[], p_consumer text[], p_deliveries integer[], p_started timestamp with time zone[], p_finished timestamp with time zone[], l_call text[], l_ticket uuid[], l_phase uuid[], l_attempt integer[], l_bot text[], l_provider text[], l_model text[], l_in bigint[], l_out bigint[], l_cr bigint[], l_cw bigint[], l_cost bigint[], l_source text[], l_rs bigint[], l_computed bigint[], l_reported bigint[], l_reservation uuid[]) RETURNS TABLE(finished_ticket uuid, finished_status text, parent uuid)
    LANGUAGE plpgsql
    AS $$
DECLARE
    i int;
    v_ticket uuid;
    v_parent uuid;
    v_type text;
    v_done uuid[] := '{}';
    v_done_status text[] := '{}';
    v_dispatches int;                -- 013
    v_from text;                     -- 013
    v_done_from text[] := '{}';      -- 013
BEGIN
    PERFORM set_config('oshal.tenant_id', p_tenant::text, true);
    PERFORM set_config('oshal.events', 'bulk', true);
    FOR i IN 1 .. coalesce(array_length(p_phase, 1), 0) LOOP
        INSERT INTO attempts (phase_id, attempt, tenant_id, ticket_id, outcome, output, error, consumer,
                              deliveries, started_at, finished_at)
        VALUES (p_phase[i], p_attempt[i], p_tenant, p_ticket[i], p_outcome[i], p_output[i]::jsonb, p_error[i],
                p_consumer[i], p_deliveries[i], p_started[i], p_finished[i])
        -- 013 begin (1/3): one attempt row per execution; a success ends a dead letter; duplicates and fences.
        ON CONFLICT (phase_id, attempt, deliveries) DO NOTHING;
        IF NOT FOUND THEN  -- a redelivered result: recorded before, but its fence may not have been set
            IF p_outcome[i] = 'done' AND EXISTS (SELECT 1 FROM phases WHERE phases.id = p_phase[i]
                                                  AND phases.status = 'done' AND phases.attempt > 1) THEN
                finished_ticket := p_ticket[i]; finished_status := 'fence'; parent := p_phase[i];
                RETURN NEXT;
            END IF;
            CONTINUE;
        END IF;
        UPDATE phases SET status = p_outcome[i], updated_at = now()
        WHERE phases.id = p_phase[i]
          AND (phases.status NOT IN ('done', 'failed', 'dead_letter', 'cancelled')
               OR (phases.status = 'dead_letter' AND p_outcome[i] = 'done'
                   AND EXISTS (SELECT 1 FROM tickets WHERE tickets.id = phases.ticket_id AND tickets.type IS NULL)))
          AND (p_outcome[i] <> 'dead_letter' OR phases.attempt = p_attempt[i])
        RETURNING phases.ticket_id, phases.attempt INTO v_ticket, v_dispatches;
        IF NOT FOUND THEN
            IF p_outcome[i] = 'done' AND EXISTS (SELECT 1 FROM phases WHERE phases.id = p_phase[i]
                                                  AND phases.status = 'done') THEN
                -- Another execution of this phase succeeded first: recorded (and billed), reported as a duplicate.
                finished_ticket := p_ticket[i]; finished_status := 'duplicate'; parent := p_phase[i];
                RETURN NEXT;
            END IF;
            CONTINUE;
        END IF;
        IF p_outcome[i] = 'done' AND v_dispatches > 1 THEN
            -- Sent more than once: copies may still wait in the lane. The collector sets the phase's done marker.
            finished_ticket := v_ticket; finished_status := 'fence'; parent := p_phase[i];
            RETURN NEXT;
        END IF;
        v_from := 'in_progress';
        UPDATE tickets SET status = p_outcome[i], result = p_output[i]::jsonb, error = p_error[i],
                           finished_at = now()
        WHERE tickets.id = v_ticket AND tickets.status = 'in_progress' AND tickets.type IS NULL
        RETURNING tickets.parent_id INTO v_parent;
        IF NOT FOUND AND p_outcome[i] = 'done' THEN
            v_from := 'dead_letter';
            UPDATE tickets SET status = 'done', result = p_output[i]::jsonb, error = NULL, finished_at = now()
            WHERE tickets.id = v_ticket AND tickets.status = 'dead_letter' AND tickets.type IS NULL
            RETURNING tickets.parent_id INTO v_parent;
        END IF;
        IF FOUND THEN
            v_done := v_done || v_ticket;
            v_done_status := v_done_status || p_outcome[i];
            v_done_from := v_done_from || v_from;
        -- 013 end (1/3)
            finished_ticket := v_ticket;
            finished_status := p_outcome[i];
            parent := v_parent;
            RETURN NEXT;
        ELSE
            SELECT tickets.type INTO v_type FROM tickets WHERE tickets.id = v_ticket;
            IF v_type IS NOT NULL THEN
                finished_ticket := v_ticket;
                finished_status := 'step';
                parent := NULL;
                RETURN NEXT;
            END IF;
        END IF;
    END LOOP;
    -- 013 (2/3): the transition's real origin (a success may end a dead letter)
    INSERT INTO ticket_events (tenant_id, ticket_id, from_status, to_status, actor)
    SELECT p_tenant, u.ticket, u.from_status, u.status, 'collector'
      FROM unnest(v_done, v_done_status, v_done_from) AS u(ticket, status, from_status);
    WITH ins AS (
        INSERT INTO ledger (call_id, tenant_id, ticket_id, phase_id, attempt, bot, provider, model, input_tokens,
                            output_tokens, cached_read_tokens, cache_write_tokens, cost_micros, price_source,
                            reasoning_tokens, computed_cost_micros, reported_cost_micros, reservation_id)
        SELECT u.call, p_tenant, u.ticket, u.phase, u.attempt, u.bot, u.provider, u.model, u.i, u.o, u.cr, u.cw,
               u.cost, u.source, u.rs, u.computed, u.reported, u.reservation
        FROM unnest(l_call, l_ticket, l_phase, l_attempt, l_bot, l_provider, l_model, l_in, l_out, l_cr, l_cw,
                    l_cost, l_source, l_rs, l_computed, l_reported, l_reservation)
             AS u(call, ticket, phase, attempt, bot, provider, model, i, o, cr, cw, cost, source, rs, computed,
                  reported, reservation)
        ON CONFLICT (call_id) DO NOTHING
        RETURNING ledger.ticket_id, ledger.bot, ledger.cost_micros, ledger.reservation_id
    ), settled AS (
        UPDATE reservations r SET status = 'settled', actual = ins.cost_micros, settled_at = now()
          FROM ins WHERE r.id = ins.reservation_id AND r.status = 'open'
        RETURNING r.id, r.amount, r.actual, r.budgets, r.windows
    ), held AS (
        -- Only budgets that still exist: one deleted while the call was in flight has nothing to settle.
        SELECT x.id AS budget, x.w AS window_start, -s.amount AS reserved, s.actual AS spent
          FROM settled s, unnest(s.budgets, s.windows) AS x(id, w) JOIN budgets b ON b.id = x.id
    ), unheld AS (
        -- A cost with no open reservation (none was taken, or it expired first) still counts as spent.
        SELECT b.id AS budget, oshal_window(b.period, now()) AS window_start, 0::bigint AS reserved,
               ins.cost_micros AS spent
          FROM ins
          JOIN budgets b ON b.scope = 'tenant' OR (b.scope = 'bot' AND b.subject = ins.bot)
                         OR (b.scope = 'ticket' AND b.subject = ins.ticket_id::text)
                         OR (b.scope = 'type' AND b.subject = (SELECT t.type FROM tickets t WHERE t.id = ins.ticket_id))
         WHERE ins.cost_micros > 0
           AND (ins.reservation_id IS NULL OR NOT EXISTS (SELECT 1 FROM settled s WHERE s.id = ins.reservation_id))
    ), deltas AS (
        SELECT budget, window_start, sum(reserved)::bigint AS reserved, sum(spent)::bigint AS spent
          FROM (SELECT * FROM held UNION ALL SELECT * FROM unheld) d GROUP BY budget, window_start
    )
    INSERT INTO budget_usage AS u (budget_id, tenant_id, window_start, spent, reserved)
    SELECT budget, p_tenant, window_start, spent, reserved FROM deltas
     ORDER BY budget, window_start  -- the order oshal_reserve locks in: the two never deadlock
    ON CONFLICT (budget_id, window_start) DO UPDATE
        SET spent = u.spent + EXCLUDED.spent, reserved = greatest(u.reserved + EXCLUDED.reserved, 0);
END $$;


ALTER FUNCTION public.oshal_record_results(p_tenant uuid, p_phase uuid[], p_attempt integer[], p_ticket uuid[], p_outcome text[], p_output text[], p_error text[], p_consumer text[], p_deliveries integer[], p_started timestamp with time zone[], p_finished timestamp with time zone[], l_call text[], l_ticket uuid[], l_phase uuid[], l_attempt integer[], l_bot text[], l_provider text[], l_model text[], l_in bigint[], l_out bigint[], l_cr bigint[], l_cw bigint[], l_cost bigint[], l_source text[], l_rs bigint[], l_computed bigint[], l_reported bigint[], l_reservation uuid[]) OWNER TO oshal_owner;

--
-- Name: oshal_require_scope(text, uuid); Type: FUNCTION; Schema: public; Owner: oshal_owner
--

CREATE FUNCTION public.oshal_require_scope(p_function text, p_tenant uuid) RETURNS void
    LANGUAGE plpgsql STABLE
    SET search_path TO 'public', 'pg_temp'
    AS $$
BEGIN
    IF oshal_platform_scope() THEN
        RETURN;
    END IF;
    IF p_tenant IS NOT NULL AND p_tenant::text = current_setting('oshal.tenant_id', true) THEN
        RETURN;
    END IF;
    RAISE EXCEPTION '% returns rows of %; this transaction may not see them', p_function,
        CASE WHEN p_tenant IS NULL THEN 'every tenant' ELSE 'tenant ' || p_tenant END
        USING ERRCODE = '42501',
              HINT = 'run it in the platform''s scope (the system tenant set), or for the tenant set';
END $$;


ALTER FUNCTION public.oshal_require_scope(p_function text, p_tenant uuid) OWNER TO oshal_owner;

--
-- Name: oshal_reserve(uuid, uuid, uuid, text, bigint, double precision, integer, double precision); Type: FUNCTION; Schema: public; Owner: oshal_owner
--

CREATE FUNCTION public.oshal_reserve(p_tenant uuid, p_reservation uuid, p_ticket uuid, p_bot text, p_amount bigint, p_ttl_s double precision, p_max_calls integer, p_window_s double precision) RETURNS TABLE(ok boolean, reason text, budget_id uuid, scope text, subject text, period text, limit_micros bigint, remaining bigint, soft_crossed uuid[], released_hold bigint)
    LANGUAGE plpgsql
    AS $$
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


ALTER FUNCTION public.oshal_reserve(p_tenant uuid, p_reservation uuid, p_ticket uuid, p_bot text, p_amount bigint, p_ttl_s double precision, p_max_calls integer, p_window_s double precision) OWNER TO oshal_owner;

--
-- Name: oshal_rollup_ledger(timestamp with time zone); Type: FUNCTION; Schema: public; Owner: oshal_owner
--

CREATE FUNCTION public.oshal_rollup_ledger(p_before timestamp with time zone) RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'public', 'pg_temp'
    AS $$
DECLARE v_count bigint;
BEGIN
    PERFORM set_config('oshal.events', 'bulk', true);  -- a ticket's totals changing is not a transition
    CREATE TEMP TABLE rolled ON COMMIT DROP AS
        SELECT * FROM ledger WHERE created_at < p_before FOR UPDATE;
    INSERT INTO ledger_daily AS d
    SELECT tenant_id, (created_at AT TIME ZONE 'UTC')::date, bot, provider, model, price_source, count(*),
           sum(input_tokens), sum(output_tokens), sum(cached_read_tokens), sum(cache_write_tokens),
           sum(reasoning_tokens), sum(cost_micros), sum(coalesce(computed_cost_micros, 0)),
           sum(coalesce(reported_cost_micros, 0)),
           count(*) FILTER (WHERE computed_cost_micros IS NOT NULL AND reported_cost_micros IS NOT NULL),
           coalesce(sum(computed_cost_micros) FILTER (WHERE reported_cost_micros IS NOT NULL), 0),
           coalesce(sum(reported_cost_micros) FILTER (WHERE computed_cost_micros IS NOT NULL), 0)
      FROM rolled GROUP BY 1, 2, 3, 4, 5, 6
    ON CONFLICT (tenant_id, day, bot, provider, model, price_source) DO UPDATE SET
        calls = d.calls + EXCLUDED.calls, input_tokens = d.input_tokens + EXCLUDED.input_tokens,
        output_tokens = d.output_tokens + EXCLUDED.output_tokens,
        cached_read_tokens = d.cached_read_tokens + EXCLUDED.cached_read_tokens,
        cache_write_tokens = d.cache_write_tokens + EXCLUDED.cache_write_tokens,
        reasoning_tokens = d.reasoning_tokens + EXCLUDED.reasoning_tokens,
        cost_micros = d.cost_micros + EXCLUDED.cost_micros,
        computed_cost_micros = d.computed_cost_micros + EXCLUDED.computed_cost_micros,
        reported_cost_micros = d.reported_cost_micros + EXCLUDED.reported_cost_micros,
        both_calls = d.both_calls + EXCLUDED.both_calls, both_computed = d.both_computed + EXCLUDED.both_computed,
        both_reported = d.both_reported + EXCLUDED.both_reported;
    UPDATE tickets t SET rolled_cost_micros = t.rolled_cost_micros + r.cost, rolled_calls = t.rolled_calls + r.calls
      FROM (SELECT ticket_id, sum(cost_micros) AS cost, count(*) AS calls FROM rolled GROUP BY ticket_id) r
     WHERE t.id = r.ticket_id;
    DELETE FROM ledger l USING rolled r WHERE l.call_id = r.call_id;
    GET DIAGNOSTICS v_count = ROW_COUNT;
    RETURN v_count;
END $$;


ALTER FUNCTION public.oshal_rollup_ledger(p_before timestamp with time zone) OWNER TO oshal_owner;

--
-- Name: oshal_stale_dispatches(interval, timestamp with time zone, uuid, integer); Type: FUNCTION; Schema: public; Owner: oshal_owner
--

CREATE FUNCTION public.oshal_stale_dispatches(p_older_than interval, p_after_at timestamp with time zone, p_after_id uuid, p_limit integer) RETURNS TABLE(tenant_id uuid, phase_id uuid, ticket_id uuid, bot text, attempt integer, updated_at timestamp with time zone)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path TO 'public', 'pg_temp'
    AS $$
    SELECT oshal_require_scope('oshal_stale_dispatches', NULL);
    SELECT p.tenant_id, p.id, p.ticket_id, p.bot, p.attempt, p.updated_at FROM phases p
     WHERE p.status = 'dispatched'
       AND p.updated_at < now() - p_older_than
       AND (p.updated_at, p.id) > (p_after_at, p_after_id)
     ORDER BY p.updated_at, p.id LIMIT p_limit
$$;


ALTER FUNCTION public.oshal_stale_dispatches(p_older_than interval, p_after_at timestamp with time zone, p_after_id uuid, p_limit integer) OWNER TO oshal_owner;

--
-- Name: oshal_stalled_runs(interval, integer); Type: FUNCTION; Schema: public; Owner: oshal_owner
--

CREATE FUNCTION public.oshal_stalled_runs(p_older_than interval, p_limit integer) RETURNS TABLE(tenant_id uuid, ticket_id uuid)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path TO 'public', 'pg_temp'
    AS $$
    SELECT oshal_require_scope('oshal_stalled_runs', NULL);
    SELECT r.tenant_id, r.ticket_id FROM workflow_runs r
    WHERE NOT r.finished AND r.updated_at < now() - p_older_than
      AND EXISTS (SELECT 1 FROM tickets t WHERE t.id = r.ticket_id AND t.status = 'in_progress')
      AND NOT EXISTS (SELECT 1 FROM phases p WHERE p.ticket_id = r.ticket_id
                      AND p.status IN ('queued', 'dispatched'))
      AND NOT EXISTS (SELECT 1 FROM tickets c WHERE c.parent_id = r.ticket_id
                      AND c.status IN ('in_progress', 'backlog', 'approved'))
    ORDER BY r.updated_at LIMIT p_limit
$$;


ALTER FUNCTION public.oshal_stalled_runs(p_older_than interval, p_limit integer) OWNER TO oshal_owner;

--
-- Name: attempts; Type: TABLE; Schema: public; Owner: oshal_owner
--

CREATE TABLE public.attempts (
    phase_id uuid NOT NULL,
    attempt integer NOT NULL,
    tenant_id uuid NOT NULL,
    ticket_id uuid NOT NULL,
    outcome text NOT NULL,
    output jsonb,
    error text,
    consumer text DEFAULT ''::text NOT NULL,
    deliveries integer DEFAULT 1 NOT NULL,
    started_at timestamp with time zone,
    finished_at timestamp with time zone,
    recorded_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT attempts_outcome_check CHECK ((outcome = ANY (ARRAY['done'::text, 'failed'::text, 'dead_letter'::text])))
);

ALTER TABLE ONLY public.attempts FORCE ROW LEVEL SECURITY;


ALTER TABLE public.attempts OWNER TO oshal_owner;

--
-- Name: ledger; Type: TABLE; Schema: public; Owner: oshal_owner
--

CREATE TABLE public.ledger (
    call_id text NOT NULL,
    tenant_id uuid NOT NULL,
    ticket_id uuid NOT NULL,
    phase_id uuid NOT NULL,
    attempt integer NOT NULL,
    bot text NOT NULL,
    provider text NOT NULL,
    model text NOT NULL,
    input_tokens bigint NOT NULL,
    output_tokens bigint NOT NULL,
    cached_read_tokens bigint DEFAULT 0 NOT NULL,
    cache_write_tokens bigint DEFAULT 0 NOT NULL,
    cost_micros bigint NOT NULL,
    price_source text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    reasoning_tokens bigint DEFAULT 0 NOT NULL,
    computed_cost_micros bigint,
    reported_cost_micros bigint,
    reservation_id uuid,
    over_reservation_micros bigint DEFAULT 0 NOT NULL,
    settled_late boolean DEFAULT false NOT NULL,
    CONSTRAINT ledger_cache_write_tokens_check CHECK ((cache_write_tokens >= 0)),
    CONSTRAINT ledger_cached_read_tokens_check CHECK ((cached_read_tokens >= 0)),
    CONSTRAINT ledger_cost_micros_check CHECK ((cost_micros >= 0)),
    CONSTRAINT ledger_input_tokens_check CHECK ((input_tokens >= 0)),
    CONSTRAINT ledger_output_tokens_check CHECK ((output_tokens >= 0)),
    CONSTRAINT ledger_over_reservation_micros_check CHECK ((over_reservation_micros >= 0)),
    CONSTRAINT ledger_price_source_check CHECK ((price_source = ANY (ARRAY['provider'::text, 'estimated'::text, 'unpriced'::text, 'replay'::text]))),
    CONSTRAINT ledger_reasoning_tokens_check CHECK ((reasoning_tokens >= 0))
);

ALTER TABLE ONLY public.ledger FORCE ROW LEVEL SECURITY;


ALTER TABLE public.ledger OWNER TO oshal_owner;

--
-- Name: phases; Type: TABLE; Schema: public; Owner: oshal_owner
--

CREATE TABLE public.phases (
    id uuid NOT NULL,
    tenant_id uuid NOT NULL,
    ticket_id uuid NOT NULL,
    seq integer DEFAULT 0 NOT NULL,
    bot text NOT NULL,
    status text NOT NULL,
    attempt integer DEFAULT 1 NOT NULL,
    dispatched_at timestamp with time zone,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    input jsonb,
    step text,
    CONSTRAINT phases_status_check CHECK ((status = ANY (ARRAY['queued'::text, 'dispatched'::text, 'done'::text, 'failed'::text, 'dead_letter'::text, 'cancelled'::text])))
);

ALTER TABLE ONLY public.phases FORCE ROW LEVEL SECURITY;


ALTER TABLE public.phases OWNER TO oshal_owner;

--
-- Name: tickets; Type: TABLE; Schema: public; Owner: oshal_owner
--

CREATE TABLE public.tickets (
    id uuid NOT NULL,
    tenant_id uuid NOT NULL,
    bot text,
    status text NOT NULL,
    input jsonb NOT NULL,
    result jsonb,
    error text,
    idempotency_key text,
    request_hash bytea,
    created_by uuid,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    finished_at timestamp with time zone,
    type text,
    phase text,
    parent_id uuid,
    status_reason text,
    resume_status text,
    rolled_cost_micros bigint DEFAULT 0 NOT NULL,
    rolled_calls bigint DEFAULT 0 NOT NULL,
    replay_of uuid,
    CONSTRAINT tickets_addressed CHECK (((bot IS NOT NULL) OR (type IS NOT NULL))),
    CONSTRAINT tickets_status_check CHECK ((status = ANY (ARRAY['backlog'::text, 'approved'::text, 'in_progress'::text, 'approval_required'::text, 'customer_action'::text, 'paused'::text, 'done'::text, 'failed'::text, 'escalated'::text, 'dead_letter'::text, 'cancelled'::text])))
);

ALTER TABLE ONLY public.tickets FORCE ROW LEVEL SECURITY;


ALTER TABLE public.tickets OWNER TO oshal_owner;

--
-- Name: ticket_view; Type: VIEW; Schema: public; Owner: oshal_owner
--

CREATE VIEW public.ticket_view WITH (security_invoker='true') AS
 SELECT t.id,
    t.tenant_id,
    t.bot,
    t.type,
    t.status,
    t.phase,
    t.status_reason,
    t.parent_id,
    t.input,
    t.result,
    t.error,
    t.created_at,
    t.finished_at,
    t.idempotency_key,
    p.id AS phase_id,
    p.attempt,
    p.dispatched_at,
    a.started_at,
    a.deliveries,
    a.consumer,
    ((COALESCE(l.cost, (0)::numeric) + (t.rolled_cost_micros)::numeric))::bigint AS cost_micros,
    (COALESCE(l.calls, (0)::bigint) + t.rolled_calls) AS calls,
    t.replay_of,
    COALESCE(d.duplicates, (0)::bigint) AS duplicates
   FROM ((((public.tickets t
     LEFT JOIN LATERAL ( SELECT phases.id,
            phases.attempt,
            phases.dispatched_at
           FROM public.phases
          WHERE (phases.ticket_id = t.id)
          ORDER BY phases.seq DESC
         LIMIT 1) p ON (true))
     LEFT JOIN LATERAL ( SELECT a_1.started_at,
            a_1.deliveries,
            a_1.consumer
           FROM public.attempts a_1
          WHERE (a_1.phase_id = p.id)
          ORDER BY a_1.attempt DESC, a_1.deliveries DESC
         LIMIT 1) a ON (true))
     LEFT JOIN LATERAL ( SELECT sum(ledger.cost_micros) AS cost,
            count(*) AS calls
           FROM public.ledger
          WHERE (ledger.ticket_id = t.id)) l ON (true))
     LEFT JOIN LATERAL ( SELECT (count(*) - count(DISTINCT a_1.phase_id)) AS duplicates
           FROM public.attempts a_1
          WHERE ((a_1.ticket_id = t.id) AND (a_1.outcome = 'done'::text))) d ON (true));


ALTER VIEW public.ticket_view OWNER TO oshal_owner;

--
-- Name: oshal_ticket(uuid, uuid); Type: FUNCTION; Schema: public; Owner: oshal_owner
--

CREATE FUNCTION public.oshal_ticket(p_tenant uuid, p_ticket uuid) RETURNS SETOF public.ticket_view
    LANGUAGE plpgsql
    AS $$
BEGIN
    PERFORM set_config('oshal.tenant_id', p_tenant::text, true);
    RETURN QUERY SELECT * FROM ticket_view v WHERE v.id = p_ticket;
END $$;


ALTER FUNCTION public.oshal_ticket(p_tenant uuid, p_ticket uuid) OWNER TO oshal_owner;

--
-- Name: oshal_ticket_transition(); Type: FUNCTION; Schema: public; Owner: oshal_owner
--

CREATE FUNCTION public.oshal_ticket_transition() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
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


ALTER FUNCTION public.oshal_ticket_transition() OWNER TO oshal_owner;

--
-- Name: oshal_tool_call(uuid, uuid, text, text, text, text, uuid, text, timestamp with time zone); Type: FUNCTION; Schema: public; Owner: oshal_owner
--

CREATE FUNCTION public.oshal_tool_call(p_tenant uuid, p_ticket uuid, p_bot text, p_connector text, p_operation text, p_digest text, p_grant uuid, p_arguments_hash text, p_expires timestamp with time zone) RETURNS TABLE(granted boolean, ticket_status text, created_by uuid, connector_state text, digest text, mode text, secret_name text, client_id text, connection_expires timestamp with time zone, ciphertext bytea, credential_user uuid, data_key_id uuid, wrapped bytea, kek_id text)
    LANGUAGE plpgsql
    AS $$
DECLARE v_replay uuid;
BEGIN
    PERFORM set_config('oshal.tenant_id', p_tenant::text, true);
    SELECT t.status, t.created_by, c.state, c.digest, coalesce(p.mode, 'off'), n.secret_name, n.client_id,
           n.expires_at, t.replay_of
      INTO ticket_status, created_by, connector_state, digest, mode, secret_name, client_id, connection_expires,
           v_replay
      FROM tickets t
      LEFT JOIN connectors c ON c.id = p_connector
      LEFT JOIN tool_policies p ON p.connector_id = c.id AND p.bot = p_bot AND p.operation = p_operation
      LEFT JOIN connections n ON n.connector_id = c.id
     WHERE t.id = p_ticket;
    granted := FOUND AND ticket_status NOT IN ('done', 'failed', 'dead_letter', 'cancelled')
               AND connector_state = 'enabled' AND digest = p_digest AND mode = 'auto'
               AND secret_name IS NOT NULL AND (connection_expires IS NULL OR connection_expires > now())
               AND NOT EXISTS (SELECT 1 FROM kill_switches WHERE scope IN ('global', 'bot:' || p_bot))
               AND v_replay IS NULL;
    IF granted THEN
        INSERT INTO grants (id, tenant_id, bot, ticket_id, connector_id, operation, arguments_hash, expires_at,
                            redeemed_at)
        VALUES (p_grant, p_tenant, p_bot, p_ticket, p_connector, p_operation, p_arguments_hash, p_expires, now());
        PERFORM oshal_audit(ARRAY[p_tenant], ARRAY['bot:' || p_bot], ARRAY['tool.grant'],
                            ARRAY[p_connector || '.' || p_operation],
                            ARRAY[jsonb_build_object('ticket', p_ticket, 'grant', p_grant, 'mode', 'auto')]);
        SELECT k.ciphertext, k.user_id, d.id, d.wrapped, d.kek_id
          INTO ciphertext, credential_user, data_key_id, wrapped, kek_id
          FROM credentials k JOIN data_keys d ON d.id = k.data_key_id
         WHERE k.tenant_id = p_tenant AND k.name = secret_name
           AND (k.user_id IS NULL OR k.user_id = created_by)
         ORDER BY k.user_id NULLS LAST LIMIT 1;
    END IF;
    RETURN NEXT;
END $$;


ALTER FUNCTION public.oshal_tool_call(p_tenant uuid, p_ticket uuid, p_bot text, p_connector text, p_operation text, p_digest text, p_grant uuid, p_arguments_hash text, p_expires timestamp with time zone) OWNER TO oshal_owner;

--
-- Name: oshal_window(text, timestamp with time zone); Type: FUNCTION; Schema: public; Owner: oshal_owner
--

CREATE FUNCTION public.oshal_window(p_period text, p_at timestamp with time zone) RETURNS timestamp with time zone
    LANGUAGE sql IMMUTABLE
    AS $$
    SELECT CASE p_period
        WHEN 'day' THEN date_trunc('day', p_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
        WHEN 'month' THEN date_trunc('month', p_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
        ELSE 'epoch'::timestamptz END
$$;


ALTER FUNCTION public.oshal_window(p_period text, p_at timestamp with time zone) OWNER TO oshal_owner;

--
-- Name: api_keys; Type: TABLE; Schema: public; Owner: oshal_owner
--

CREATE TABLE public.api_keys (
    id uuid NOT NULL,
    tenant_id uuid NOT NULL,
    prefix text NOT NULL,
    hash bytea NOT NULL,
    role text NOT NULL,
    name text DEFAULT ''::text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    expires_at timestamp with time zone,
    revoked_at timestamp with time zone,
    last_used_at timestamp with time zone,
    CONSTRAINT api_keys_role_check CHECK ((role = ANY (ARRAY['operator'::text, 'member'::text])))
);

ALTER TABLE ONLY public.api_keys FORCE ROW LEVEL SECURITY;


ALTER TABLE public.api_keys OWNER TO oshal_owner;

--
-- Name: approvals; Type: TABLE; Schema: public; Owner: oshal_owner
--

CREATE TABLE public.approvals (
    id uuid NOT NULL,
    tenant_id uuid NOT NULL,
    ticket_id uuid NOT NULL,
    bot text NOT NULL,
    connector_id text NOT NULL,
    operation text NOT NULL,
    arguments_hash text NOT NULL,
    arguments jsonb NOT NULL,
    status text NOT NULL,
    requested_at timestamp with time zone DEFAULT now() NOT NULL,
    decided_by uuid,
    decided_at timestamp with time zone,
    reason text,
    CONSTRAINT approvals_status_check CHECK ((status = ANY (ARRAY['pending'::text, 'approved'::text, 'rejected'::text])))
);

ALTER TABLE ONLY public.approvals FORCE ROW LEVEL SECURITY;


ALTER TABLE public.approvals OWNER TO oshal_owner;

--
-- Name: artifacts; Type: TABLE; Schema: public; Owner: oshal_owner
--

CREATE TABLE public.artifacts (
    id uuid NOT NULL,
    tenant_id uuid NOT NULL,
    ticket_id uuid NOT NULL,
    name text NOT NULL,
    object_key text NOT NULL,
    size bigint NOT NULL,
    sha256 text NOT NULL,
    content_type text NOT NULL,
    created_by text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT artifacts_size_check CHECK ((size >= 0))
);

ALTER TABLE ONLY public.artifacts FORCE ROW LEVEL SECURITY;


ALTER TABLE public.artifacts OWNER TO oshal_owner;

--
-- Name: audit_chain; Type: TABLE; Schema: public; Owner: oshal_owner
--

CREATE TABLE public.audit_chain (
    id boolean DEFAULT true NOT NULL,
    seq bigint NOT NULL,
    hash bytea NOT NULL,
    pruned_seq bigint NOT NULL,
    pruned_hash bytea NOT NULL,
    CONSTRAINT audit_chain_id_check CHECK (id)
);


ALTER TABLE public.audit_chain OWNER TO oshal_owner;

--
-- Name: bots; Type: TABLE; Schema: public; Owner: oshal_owner
--

CREATE TABLE public.bots (
    name text NOT NULL,
    description text DEFAULT ''::text NOT NULL,
    harness text NOT NULL,
    provider text NOT NULL,
    model text NOT NULL,
    replicas integer NOT NULL,
    concurrency integer NOT NULL,
    manifest jsonb NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL
);


ALTER TABLE public.bots OWNER TO oshal_owner;

--
-- Name: budget_usage; Type: TABLE; Schema: public; Owner: oshal_owner
--

CREATE TABLE public.budget_usage (
    budget_id uuid NOT NULL,
    tenant_id uuid NOT NULL,
    window_start timestamp with time zone NOT NULL,
    spent bigint DEFAULT 0 NOT NULL,
    reserved bigint DEFAULT 0 NOT NULL,
    soft_notified boolean DEFAULT false NOT NULL
);

ALTER TABLE ONLY public.budget_usage FORCE ROW LEVEL SECURITY;


ALTER TABLE public.budget_usage OWNER TO oshal_owner;

--
-- Name: budgets; Type: TABLE; Schema: public; Owner: oshal_owner
--

CREATE TABLE public.budgets (
    id uuid NOT NULL,
    tenant_id uuid NOT NULL,
    scope text NOT NULL,
    subject text DEFAULT ''::text NOT NULL,
    period text NOT NULL,
    limit_micros bigint NOT NULL,
    soft_micros bigint,
    created_by uuid,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    overrun_at timestamp with time zone,
    overrun_micros bigint,
    overrun_reason text,
    CONSTRAINT budgets_check CHECK (((scope = 'tenant'::text) = (subject = ''::text))),
    CONSTRAINT budgets_check1 CHECK (((soft_micros IS NULL) OR (soft_micros <= limit_micros))),
    CONSTRAINT budgets_limit_micros_check CHECK ((limit_micros >= 0)),
    CONSTRAINT budgets_period_check CHECK ((period = ANY (ARRAY['day'::text, 'month'::text, 'lifetime'::text]))),
    CONSTRAINT budgets_scope_check CHECK ((scope = ANY (ARRAY['tenant'::text, 'bot'::text, 'type'::text, 'ticket'::text]))),
    CONSTRAINT budgets_soft_micros_check CHECK ((soft_micros >= 0))
);

ALTER TABLE ONLY public.budgets FORCE ROW LEVEL SECURITY;


ALTER TABLE public.budgets OWNER TO oshal_owner;

--
-- Name: connections; Type: TABLE; Schema: public; Owner: oshal_owner
--

CREATE TABLE public.connections (
    tenant_id uuid NOT NULL,
    connector_id text NOT NULL,
    secret_name text NOT NULL,
    client_id text,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    last_success_at timestamp with time zone,
    last_error_at timestamp with time zone,
    last_error text,
    expires_at timestamp with time zone
);

ALTER TABLE ONLY public.connections FORCE ROW LEVEL SECURITY;


ALTER TABLE public.connections OWNER TO oshal_owner;

--
-- Name: connectors; Type: TABLE; Schema: public; Owner: oshal_owner
--

CREATE TABLE public.connectors (
    id text NOT NULL,
    version text NOT NULL,
    publisher text NOT NULL,
    category text NOT NULL,
    title text DEFAULT ''::text NOT NULL,
    manifest jsonb NOT NULL,
    digest text NOT NULL,
    state text NOT NULL,
    signature jsonb,
    quarantine_reason text,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT connectors_state_check CHECK ((state = ANY (ARRAY['draft'::text, 'enabled'::text, 'quarantined'::text, 'disabled'::text])))
);


ALTER TABLE public.connectors OWNER TO oshal_owner;

--
-- Name: credentials; Type: TABLE; Schema: public; Owner: oshal_owner
--

CREATE TABLE public.credentials (
    tenant_id uuid NOT NULL,
    name text NOT NULL,
    user_id uuid,
    ciphertext bytea NOT NULL,
    data_key_id uuid NOT NULL,
    version integer DEFAULT 1 NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT credentials_name_check CHECK ((name ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$'::text)),
    CONSTRAINT credentials_version_check CHECK ((version >= 1))
);

ALTER TABLE ONLY public.credentials FORCE ROW LEVEL SECURITY;


ALTER TABLE public.credentials OWNER TO oshal_owner;

--
-- Name: data_keys; Type: TABLE; Schema: public; Owner: oshal_owner
--

CREATE TABLE public.data_keys (
    id uuid NOT NULL,
    tenant_id uuid NOT NULL,
    wrapped bytea NOT NULL,
    kek_id text NOT NULL,
    active boolean DEFAULT true NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT data_keys_check CHECK (((NOT active) OR (length(wrapped) > 0))),
    CONSTRAINT data_keys_kek_id_check CHECK ((kek_id ~ '^[0-9a-f]{16}$'::text))
);

ALTER TABLE ONLY public.data_keys FORCE ROW LEVEL SECURITY;


ALTER TABLE public.data_keys OWNER TO oshal_owner;

--
-- Name: grants; Type: TABLE; Schema: public; Owner: oshal_owner
--

CREATE TABLE public.grants (
    id uuid NOT NULL,
    tenant_id uuid NOT NULL,
    bot text NOT NULL,
    ticket_id uuid NOT NULL,
    connector_id text NOT NULL,
    operation text NOT NULL,
    arguments_hash text NOT NULL,
    approval_id uuid,
    issued_at timestamp with time zone DEFAULT now() NOT NULL,
    expires_at timestamp with time zone NOT NULL,
    redeemed_at timestamp with time zone,
    outcome text
);

ALTER TABLE ONLY public.grants FORCE ROW LEVEL SECURITY;


ALTER TABLE public.grants OWNER TO oshal_owner;

--
-- Name: kill_switches; Type: TABLE; Schema: public; Owner: oshal_owner
--

CREATE TABLE public.kill_switches (
    scope text NOT NULL,
    reason text NOT NULL,
    engaged_by text NOT NULL,
    engaged_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT kill_switches_reason_check CHECK (((length(reason) >= 1) AND (length(reason) <= 500))),
    CONSTRAINT kill_switches_scope_check CHECK (((scope = 'global'::text) OR (scope ~ '^bot:[a-z0-9][a-z0-9-]{0,62}$'::text)))
);


ALTER TABLE public.kill_switches OWNER TO oshal_owner;

--
-- Name: ledger_daily; Type: TABLE; Schema: public; Owner: oshal_owner
--

CREATE TABLE public.ledger_daily (
    tenant_id uuid NOT NULL,
    day date NOT NULL,
    bot text NOT NULL,
    provider text NOT NULL,
    model text NOT NULL,
    price_source text NOT NULL,
    calls bigint NOT NULL,
    input_tokens bigint NOT NULL,
    output_tokens bigint NOT NULL,
    cached_read_tokens bigint NOT NULL,
    cache_write_tokens bigint NOT NULL,
    reasoning_tokens bigint NOT NULL,
    cost_micros bigint NOT NULL,
    computed_cost_micros bigint NOT NULL,
    reported_cost_micros bigint NOT NULL,
    both_calls bigint DEFAULT 0 NOT NULL,
    both_computed bigint DEFAULT 0 NOT NULL,
    both_reported bigint DEFAULT 0 NOT NULL
);

ALTER TABLE ONLY public.ledger_daily FORCE ROW LEVEL SECURITY;


ALTER TABLE public.ledger_daily OWNER TO oshal_owner;

--
-- Name: ledger_totals; Type: VIEW; Schema: public; Owner: oshal_owner
--

CREATE VIEW public.ledger_totals WITH (security_invoker='true') AS
 SELECT ledger.tenant_id,
    ledger.created_at AS at,
    ledger.bot,
    ledger.provider,
    ledger.model,
    ledger.price_source,
    (1)::bigint AS calls,
    ledger.input_tokens,
    ledger.output_tokens,
    ledger.cached_read_tokens,
    ledger.cache_write_tokens,
    ledger.reasoning_tokens,
    ledger.cost_micros,
    COALESCE(ledger.computed_cost_micros, (0)::bigint) AS computed_cost_micros,
    COALESCE(ledger.reported_cost_micros, (0)::bigint) AS reported_cost_micros,
    ((((ledger.computed_cost_micros IS NOT NULL) AND (ledger.reported_cost_micros IS NOT NULL)))::integer)::bigint AS both_calls,
        CASE
            WHEN (ledger.reported_cost_micros IS NOT NULL) THEN COALESCE(ledger.computed_cost_micros, (0)::bigint)
            ELSE (0)::bigint
        END AS both_computed,
        CASE
            WHEN (ledger.computed_cost_micros IS NOT NULL) THEN COALESCE(ledger.reported_cost_micros, (0)::bigint)
            ELSE (0)::bigint
        END AS both_reported
   FROM public.ledger
UNION ALL
 SELECT ledger_daily.tenant_id,
    ((ledger_daily.day)::timestamp without time zone AT TIME ZONE 'UTC'::text) AS at,
    ledger_daily.bot,
    ledger_daily.provider,
    ledger_daily.model,
    ledger_daily.price_source,
    ledger_daily.calls,
    ledger_daily.input_tokens,
    ledger_daily.output_tokens,
    ledger_daily.cached_read_tokens,
    ledger_daily.cache_write_tokens,
    ledger_daily.reasoning_tokens,
    ledger_daily.cost_micros,
    ledger_daily.computed_cost_micros,
    ledger_daily.reported_cost_micros,
    ledger_daily.both_calls,
    ledger_daily.both_computed,
    ledger_daily.both_reported
   FROM public.ledger_daily;


ALTER VIEW public.ledger_totals OWNER TO oshal_owner;

--
-- Name: prices; Type: TABLE; Schema: public; Owner: oshal_owner
--

CREATE TABLE public.prices (
    provider text NOT NULL,
    model text NOT NULL,
    effective_from timestamp with time zone NOT NULL,
    input_micros_per_mtok bigint NOT NULL,
    output_micros_per_mtok bigint NOT NULL,
    cached_read_micros_per_mtok bigint DEFAULT 0 NOT NULL,
    cache_write_micros_per_mtok bigint DEFAULT 0 NOT NULL,
    reasoning_micros_per_mtok bigint,
    request_micros bigint DEFAULT 0 NOT NULL,
    cache_write_1h_micros_per_mtok bigint,
    CONSTRAINT prices_cache_write_1h_micros_per_mtok_check CHECK ((cache_write_1h_micros_per_mtok >= 0)),
    CONSTRAINT prices_input_micros_per_mtok_check CHECK ((input_micros_per_mtok >= 0)),
    CONSTRAINT prices_output_micros_per_mtok_check CHECK ((output_micros_per_mtok >= 0)),
    CONSTRAINT prices_reasoning_micros_per_mtok_check CHECK ((reasoning_micros_per_mtok >= 0)),
    CONSTRAINT prices_request_micros_check CHECK ((request_micros >= 0))
);


ALTER TABLE public.prices OWNER TO oshal_owner;

--
-- Name: recordings; Type: TABLE; Schema: public; Owner: oshal_owner
--

CREATE TABLE public.recordings (
    tenant_id uuid NOT NULL,
    ticket_id uuid NOT NULL,
    phase_seq integer NOT NULL,
    step text NOT NULL,
    kind text NOT NULL,
    seq integer NOT NULL,
    request json NOT NULL,
    response json NOT NULL,
    usage json,
    started_at timestamp with time zone NOT NULL,
    duration_ms double precision NOT NULL,
    CONSTRAINT recordings_kind_check CHECK ((kind = ANY (ARRAY['model'::text, 'tool'::text])))
);

ALTER TABLE ONLY public.recordings FORCE ROW LEVEL SECURITY;


ALTER TABLE public.recordings OWNER TO oshal_owner;

--
-- Name: reservations; Type: TABLE; Schema: public; Owner: oshal_owner
--

CREATE TABLE public.reservations (
    id uuid NOT NULL,
    tenant_id uuid NOT NULL,
    ticket_id uuid NOT NULL,
    bot text NOT NULL,
    amount bigint NOT NULL,
    status text NOT NULL,
    actual bigint,
    budgets uuid[] NOT NULL,
    windows timestamp with time zone[] NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    expires_at timestamp with time zone NOT NULL,
    settled_at timestamp with time zone,
    kind text DEFAULT 'call'::text NOT NULL,
    CONSTRAINT reservations_amount_check CHECK ((amount >= 0)),
    CONSTRAINT reservations_kind_check CHECK ((kind = ANY (ARRAY['call'::text, 'hold'::text]))),
    CONSTRAINT reservations_status_check CHECK ((status = ANY (ARRAY['open'::text, 'settled'::text, 'expired'::text, 'released'::text, 'refused'::text])))
);

ALTER TABLE ONLY public.reservations FORCE ROW LEVEL SECURITY;


ALTER TABLE public.reservations OWNER TO oshal_owner;

--
-- Name: schedule_fires; Type: TABLE; Schema: public; Owner: oshal_owner
--

CREATE TABLE public.schedule_fires (
    schedule_id uuid NOT NULL,
    tick timestamp with time zone NOT NULL,
    tenant_id uuid NOT NULL,
    ticket_id uuid NOT NULL,
    fired_by text NOT NULL,
    fired_at timestamp with time zone DEFAULT now() NOT NULL
);

ALTER TABLE ONLY public.schedule_fires FORCE ROW LEVEL SECURITY;


ALTER TABLE public.schedule_fires OWNER TO oshal_owner;

--
-- Name: schedules; Type: TABLE; Schema: public; Owner: oshal_owner
--

CREATE TABLE public.schedules (
    id uuid NOT NULL,
    tenant_id uuid NOT NULL,
    name text NOT NULL,
    cron text NOT NULL,
    timezone text NOT NULL,
    ticket_type text,
    bot text,
    input jsonb NOT NULL,
    policy text NOT NULL,
    enabled boolean DEFAULT true NOT NULL,
    last_tick timestamp with time zone,
    next_tick timestamp with time zone,
    created_by uuid,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT schedules_check CHECK (((ticket_type IS NULL) <> (bot IS NULL))),
    CONSTRAINT schedules_name_check CHECK (((length(name) >= 1) AND (length(name) <= 80))),
    CONSTRAINT schedules_policy_check CHECK ((policy = ANY (ARRAY['skip'::text, 'catch_up_once'::text])))
);

ALTER TABLE ONLY public.schedules FORCE ROW LEVEL SECURITY;


ALTER TABLE public.schedules OWNER TO oshal_owner;

--
-- Name: schema_migrations; Type: TABLE; Schema: public; Owner: oshal_owner
--

CREATE TABLE public.schema_migrations (
    version text NOT NULL,
    applied_at timestamp with time zone DEFAULT now() NOT NULL
);


ALTER TABLE public.schema_migrations OWNER TO oshal_owner;

--
-- Name: security_findings; Type: TABLE; Schema: public; Owner: oshal_owner
--

CREATE TABLE public.security_findings (
    fingerprint text NOT NULL,
    tenant_id uuid NOT NULL,
    scan text NOT NULL,
    check_id text NOT NULL,
    severity text NOT NULL,
    title text NOT NULL,
    subject text NOT NULL,
    remediation text NOT NULL,
    evidence jsonb DEFAULT '{}'::jsonb NOT NULL,
    status text NOT NULL,
    triage text NOT NULL,
    accepted_until timestamp with time zone,
    assessed_by text,
    assessment text,
    ticket_id uuid,
    seen_count integer DEFAULT 1 NOT NULL,
    first_seen timestamp with time zone DEFAULT now() NOT NULL,
    last_seen timestamp with time zone DEFAULT now() NOT NULL,
    fixed_at timestamp with time zone,
    reopened integer DEFAULT 0 NOT NULL,
    CONSTRAINT security_findings_severity_check CHECK ((severity = ANY (ARRAY['info'::text, 'low'::text, 'medium'::text, 'high'::text, 'critical'::text]))),
    CONSTRAINT security_findings_status_check CHECK ((status = ANY (ARRAY['open'::text, 'fixed'::text]))),
    CONSTRAINT security_findings_triage_check CHECK ((triage = ANY (ARRAY['new'::text, 'fix'::text, 'accepted'::text, 'false_positive'::text])))
);

ALTER TABLE ONLY public.security_findings FORCE ROW LEVEL SECURITY;


ALTER TABLE public.security_findings OWNER TO oshal_owner;

--
-- Name: security_scans; Type: TABLE; Schema: public; Owner: oshal_owner
--

CREATE TABLE public.security_scans (
    id uuid NOT NULL,
    tenant_id uuid NOT NULL,
    scan text NOT NULL,
    started_at timestamp with time zone NOT NULL,
    finished_at timestamp with time zone DEFAULT now() NOT NULL,
    found integer NOT NULL,
    opened integer NOT NULL,
    fixed integer NOT NULL,
    error text
);

ALTER TABLE ONLY public.security_scans FORCE ROW LEVEL SECURITY;


ALTER TABLE public.security_scans OWNER TO oshal_owner;

--
-- Name: tenants; Type: TABLE; Schema: public; Owner: oshal_owner
--

CREATE TABLE public.tenants (
    id uuid NOT NULL,
    name text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT tenants_name_check CHECK (((length(name) >= 1) AND (length(name) <= 100)))
);


ALTER TABLE public.tenants OWNER TO oshal_owner;

--
-- Name: ticket_events; Type: TABLE; Schema: public; Owner: oshal_owner
--

CREATE TABLE public.ticket_events (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    tenant_id uuid NOT NULL,
    ticket_id uuid NOT NULL,
    at timestamp with time zone DEFAULT clock_timestamp() NOT NULL,
    from_status text,
    to_status text NOT NULL,
    phase text,
    actor text NOT NULL,
    reason text
);

ALTER TABLE ONLY public.ticket_events FORCE ROW LEVEL SECURITY;


ALTER TABLE public.ticket_events OWNER TO oshal_owner;

--
-- Name: ticket_transitions; Type: TABLE; Schema: public; Owner: oshal_owner
--

CREATE TABLE public.ticket_transitions (
    from_status text NOT NULL,
    to_status text NOT NULL
);


ALTER TABLE public.ticket_transitions OWNER TO oshal_owner;

--
-- Name: tool_policies; Type: TABLE; Schema: public; Owner: oshal_owner
--

CREATE TABLE public.tool_policies (
    tenant_id uuid NOT NULL,
    bot text NOT NULL,
    connector_id text NOT NULL,
    operation text NOT NULL,
    mode text NOT NULL,
    updated_by uuid,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT tool_policies_mode_check CHECK ((mode = ANY (ARRAY['auto'::text, 'ask'::text, 'off'::text])))
);

ALTER TABLE ONLY public.tool_policies FORCE ROW LEVEL SECURITY;


ALTER TABLE public.tool_policies OWNER TO oshal_owner;

--
-- Name: workflow_definitions; Type: TABLE; Schema: public; Owner: oshal_owner
--

CREATE TABLE public.workflow_definitions (
    id uuid NOT NULL,
    tenant_id uuid,
    name text NOT NULL,
    version integer NOT NULL,
    document jsonb NOT NULL,
    digest text NOT NULL,
    created_by uuid,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT workflow_definitions_version_check CHECK ((version >= 1))
);

ALTER TABLE ONLY public.workflow_definitions FORCE ROW LEVEL SECURITY;


ALTER TABLE public.workflow_definitions OWNER TO oshal_owner;

--
-- Name: workflow_runs; Type: TABLE; Schema: public; Owner: oshal_owner
--

CREATE TABLE public.workflow_runs (
    ticket_id uuid NOT NULL,
    tenant_id uuid NOT NULL,
    workflow text NOT NULL,
    version integer NOT NULL,
    state jsonb NOT NULL,
    finished boolean DEFAULT false NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL
);

ALTER TABLE ONLY public.workflow_runs FORCE ROW LEVEL SECURITY;


ALTER TABLE public.workflow_runs OWNER TO oshal_owner;

--
-- Data for Name: api_keys; Type: TABLE DATA; Schema: public; Owner: oshal_owner
--



--
-- Data for Name: approvals; Type: TABLE DATA; Schema: public; Owner: oshal_owner
--



--
-- Data for Name: artifacts; Type: TABLE DATA; Schema: public; Owner: oshal_owner
--



--
-- Data for Name: attempts; Type: TABLE DATA; Schema: public; Owner: oshal_owner
--



--
-- Data for Name: audit_anchors; Type: TABLE DATA; Schema: public; Owner: oshal_owner
--



--
-- Data for Name: audit_chain; Type: TABLE DATA; Schema: public; Owner: oshal_owner
--

INSERT INTO public.audit_chain VALUES (true, 0, '\x0000000000000000000000000000000000000000000000000000000000000000', 0, '\x0000000000000000000000000000000000000000000000000000000000000000');


--
-- Data for Name: audit_log; Type: TABLE DATA; Schema: public; Owner: oshal_owner
--



--
-- Data for Name: bots; Type: TABLE DATA; Schema: public; Owner: oshal_owner
--



--
-- Data for Name: budget_usage; Type: TABLE DATA; Schema: public; Owner: oshal_owner
--



--
-- Data for Name: budgets; Type: TABLE DATA; Schema: public; Owner: oshal_owner
--



--
-- Data for Name: connections; Type: TABLE DATA; Schema: public; Owner: oshal_owner
--



--
-- Data for Name: connectors; Type: TABLE DATA; Schema: public; Owner: oshal_owner
--



--
-- Data for Name: credentials; Type: TABLE DATA; Schema: public; Owner: oshal_owner
--



--
-- Data for Name: data_keys; Type: TABLE DATA; Schema: public; Owner: oshal_owner
--



--
-- Data for Name: grants; Type: TABLE DATA; Schema: public; Owner: oshal_owner
--



--
-- Data for Name: kill_switches; Type: TABLE DATA; Schema: public; Owner: oshal_owner
--



--
-- Data for Name: ledger; Type: TABLE DATA; Schema: public; Owner: oshal_owner
--



--
-- Data for Name: ledger_daily; Type: TABLE DATA; Schema: public; Owner: oshal_owner
--



--
-- Data for Name: phases; Type: TABLE DATA; Schema: public; Owner: oshal_owner
--



--
-- Data for Name: prices; Type: TABLE DATA; Schema: public; Owner: oshal_owner
--



--
-- Data for Name: recordings; Type: TABLE DATA; Schema: public; Owner: oshal_owner
--



--
-- Data for Name: reservations; Type: TABLE DATA; Schema: public; Owner: oshal_owner
--



--
-- Data for Name: schedule_fires; Type: TABLE DATA; Schema: public; Owner: oshal_owner
--



--
-- Data for Name: schedules; Type: TABLE DATA; Schema: public; Owner: oshal_owner
--



--
-- Data for Name: schema_migrations; Type: TABLE DATA; Schema: public; Owner: oshal_owner
--

INSERT INTO public.schema_migrations VALUES ('001_core', '2026-12-05 17:03:45.841125+00');
INSERT INTO public.schema_migrations VALUES ('002_api_grants', '2026-12-05 17:03:45.856254+00');
INSERT INTO public.schema_migrations VALUES ('003_hot_paths', '2026-12-05 17:03:45.857577+00');
INSERT INTO public.schema_migrations VALUES ('004_connectors', '2026-12-05 17:03:45.861001+00');
INSERT INTO public.schema_migrations VALUES ('005_secrets', '2026-12-05 17:03:45.869039+00');
INSERT INTO public.schema_migrations VALUES ('006_workflows', '2026-12-05 17:03:45.874339+00');
INSERT INTO public.schema_migrations VALUES ('007_connection_health', '2026-12-05 17:03:45.892581+00');
INSERT INTO public.schema_migrations VALUES ('008_tool_call_path', '2026-12-05 17:03:45.893802+00');
INSERT INTO public.schema_migrations VALUES ('009_security', '2026-12-05 17:03:45.894877+00');
INSERT INTO public.schema_migrations VALUES ('010_spend', '2026-12-05 17:03:45.90929+00');
INSERT INTO public.schema_migrations VALUES ('011_audit_hardening', '2026-12-05 17:03:45.947799+00');
INSERT INTO public.schema_migrations VALUES ('012_definers', '2026-12-05 17:03:45.950664+00');
INSERT INTO public.schema_migrations VALUES ('013_redrive', '2026-12-05 17:03:45.959578+00');
INSERT INTO public.schema_migrations VALUES ('014_budget_faults', '2026-12-05 17:03:45.965543+00');


--
-- Data for Name: security_findings; Type: TABLE DATA; Schema: public; Owner: oshal_owner
--



--
-- Data for Name: security_scans; Type: TABLE DATA; Schema: public; Owner: oshal_owner
--



--
-- Data for Name: tenants; Type: TABLE DATA; Schema: public; Owner: oshal_owner
--



--
-- Data for Name: ticket_events; Type: TABLE DATA; Schema: public; Owner: oshal_owner
--



--
-- Data for Name: ticket_transitions; Type: TABLE DATA; Schema: public; Owner: oshal_owner
--

INSERT INTO public.ticket_transitions VALUES ('backlog', 'approved');
INSERT INTO public.ticket_transitions VALUES ('backlog', 'cancelled');
INSERT INTO public.ticket_transitions VALUES ('backlog', 'in_progress');
INSERT INTO public.ticket_transitions VALUES ('backlog', 'paused');
INSERT INTO public.ticket_transitions VALUES ('approved', 'cancelled');
INSERT INTO public.ticket_transitions VALUES ('approved', 'in_progress');
INSERT INTO public.ticket_transitions VALUES ('approved', 'paused');
INSERT INTO public.ticket_transitions VALUES ('in_progress', 'approval_required');
INSERT INTO public.ticket_transitions VALUES ('in_progress', 'cancelled');
INSERT INTO public.ticket_transitions VALUES ('in_progress', 'customer_action');
INSERT INTO public.ticket_transitions VALUES ('in_progress', 'dead_letter');
INSERT INTO public.ticket_transitions VALUES ('in_progress', 'done');
INSERT INTO public.ticket_transitions VALUES ('in_progress', 'escalated');
INSERT INTO public.ticket_transitions VALUES ('in_progress', 'failed');
INSERT INTO public.ticket_transitions VALUES ('in_progress', 'paused');
INSERT INTO public.ticket_transitions VALUES ('approval_required', 'cancelled');
INSERT INTO public.ticket_transitions VALUES ('approval_required', 'customer_action');
INSERT INTO public.ticket_transitions VALUES ('approval_required', 'done');
INSERT INTO public.ticket_transitions VALUES ('approval_required', 'escalated');
INSERT INTO public.ticket_transitions VALUES ('approval_required', 'failed');
INSERT INTO public.ticket_transitions VALUES ('approval_required', 'in_progress');
INSERT INTO public.ticket_transitions VALUES ('approval_required', 'paused');
INSERT INTO public.ticket_transitions VALUES ('customer_action', 'cancelled');
INSERT INTO public.ticket_transitions VALUES ('customer_action', 'done');
INSERT INTO public.ticket_transitions VALUES ('customer_action', 'escalated');
INSERT INTO public.ticket_transitions VALUES ('customer_action', 'in_progress');
INSERT INTO public.ticket_transitions VALUES ('customer_action', 'paused');
INSERT INTO public.ticket_transitions VALUES ('paused', 'approval_required');
INSERT INTO public.ticket_transitions VALUES ('paused', 'approved');
INSERT INTO public.ticket_transitions VALUES ('paused', 'backlog');
INSERT INTO public.ticket_transitions VALUES ('paused', 'cancelled');
INSERT INTO public.ticket_transitions VALUES ('paused', 'customer_action');
INSERT INTO public.ticket_transitions VALUES ('paused', 'in_progress');
INSERT INTO public.ticket_transitions VALUES ('escalated', 'cancelled');
INSERT INTO public.ticket_transitions VALUES ('escalated', 'done');
INSERT INTO public.ticket_transitions VALUES ('escalated', 'failed');
INSERT INTO public.ticket_transitions VALUES ('escalated', 'in_progress');
INSERT INTO public.ticket_transitions VALUES ('failed', 'in_progress');
INSERT INTO public.ticket_transitions VALUES ('dead_letter', 'cancelled');
INSERT INTO public.ticket_transitions VALUES ('dead_letter', 'done');
INSERT INTO public.ticket_transitions VALUES ('dead_letter', 'in_progress');


--
-- Data for Name: tickets; Type: TABLE DATA; Schema: public; Owner: oshal_owner
--



--
-- Data for Name: tool_policies; Type: TABLE DATA; Schema: public; Owner: oshal_owner
--



--
-- Data for Name: workflow_definitions; Type: TABLE DATA; Schema: public; Owner: oshal_owner
--



--
-- Data for Name: workflow_runs; Type: TABLE DATA; Schema: public; Owner: oshal_owner
--



--
-- Name: api_keys api_keys_pkey; Type: CONSTRAINT; Schema: public; Owner: oshal_owner
--

ALTER TABLE ONLY public.api_keys
    ADD CONSTRAINT api_keys_pkey PRIMARY KEY (id);


--
-- Name: api_keys api_keys_prefix_key; Type: CONSTRAINT; Schema: public; Owner: oshal_owner
--

ALTER TABLE ONLY public.api_keys
    ADD CONSTRAINT api_keys_prefix_key UNIQUE (prefix);


--
-- Name: approvals approvals_pkey; Type: CONSTRAINT; Schema: public; Owner: oshal_owner
--

ALTER TABLE ONLY public.approvals
    ADD CONSTRAINT approvals_pkey PRIMARY KEY (id);


--
-- Name: artifacts artifacts_pkey; Type: CONSTRAINT; Schema: public; Owner: oshal_owner
--

ALTER TABLE ONLY public.artifacts
    ADD CONSTRAINT artifacts_pkey PRIMARY KEY (id);


--
-- Name: artifacts artifacts_ticket_id_name_key; Type: CONSTRAINT; Schema: public; Owner: oshal_owner
--

ALTER TABLE ONLY public.artifacts
    ADD CONSTRAINT artifacts_ticket_id_name_key UNIQUE (ticket_id, name);


--
-- Name: attempts attempts_pkey; Type: CONSTRAINT; Schema: public; Owner: oshal_owner
--

ALTER TABLE ONLY public.attempts
    ADD CONSTRAINT attempts_pkey PRIMARY KEY (phase_id, attempt, deliveries);


--
-- Name: audit_anchors audit_anchors_pkey; Type: CONSTRAINT; Schema: public; Owner: oshal_owner
--

ALTER TABLE ONLY public.audit_anchors
    ADD CONSTRAINT audit_anchors_pkey PRIMARY KEY (seq);


--
-- Name: audit_chain audit_chain_pkey; Type: CONSTRAINT; Schema: public; Owner: oshal_owner
--

ALTER TABLE ONLY public.audit_chain
    ADD CONSTRAINT audit_chain_pkey PRIMARY KEY (id);


--
-- Name: audit_log audit_log_pkey; Type: CONSTRAINT; Schema: public; Owner: oshal_owner
--

ALTER TABLE ONLY public.audit_log
    ADD CONSTRAINT audit_log_pkey PRIMARY KEY (seq);


--
-- Name: bots bots_pkey; Type: CONSTRAINT; Schema: public; Owner: oshal_owner
--

ALTER TABLE ONLY public.bots
    ADD CONSTRAINT bots_pkey PRIMARY KEY (name);


--
-- Name: budget_usage budget_usage_pkey; Type: CONSTRAINT; Schema: public; Owner: oshal_owner
--

ALTER TABLE ONLY public.budget_usage
    ADD CONSTRAINT budget_usage_pkey PRIMARY KEY (budget_id, window_start);


--
-- Name: budgets budgets_pkey; Type: CONSTRAINT; Schema: public; Owner: oshal_owner
--

ALTER TABLE ONLY public.budgets
    ADD CONSTRAINT budgets_pkey PRIMARY KEY (id);


--
-- Name: budgets budgets_tenant_id_scope_subject_period_key; Type: CONSTRAINT; Schema: public; Owner: oshal_owner
--

ALTER TABLE ONLY public.budgets
    ADD CONSTRAINT budgets_tenant_id_scope_subject_period_key UNIQUE (tenant_id, scope, subject, period);


--
-- Name: connections connections_pkey; Type: CONSTRAINT; Schema: public; Owner: oshal_owner
--

ALTER TABLE ONLY public.connections
    ADD CONSTRAINT connections_pkey PRIMARY KEY (tenant_id, connector_id);


--
-- Name: connectors connectors_pkey; Type: CONSTRAINT; Schema: public; Owner: oshal_owner
--

ALTER TABLE ONLY public.connectors
    ADD CONSTRAINT connectors_pkey PRIMARY KEY (id);


--
-- Name: data_keys data_keys_pkey; Type: CONSTRAINT; Schema: public; Owner: oshal_owner
--

ALTER TABLE ONLY public.data_keys
    ADD CONSTRAINT data_keys_pkey PRIMARY KEY (id);


--
-- Name: grants grants_pkey; Type: CONSTRAINT; Schema: public; Owner: oshal_owner
--

ALTER TABLE ONLY public.grants
    ADD CONSTRAINT grants_pkey PRIMARY KEY (id);


--
-- Name: kill_switches kill_switches_pkey; Type: CONSTRAINT; Schema: public; Owner: oshal_owner
--

ALTER TABLE ONLY public.kill_switches
    ADD CONSTRAINT kill_switches_pkey PRIMARY KEY (scope);


--
-- Name: ledger_daily ledger_daily_pkey; Type: CONSTRAINT; Schema: public; Owner: oshal_owner
--

ALTER TABLE ONLY public.ledger_daily
    ADD CONSTRAINT ledger_daily_pkey PRIMARY KEY (tenant_id, day, bot, provider, model, price_source);


--
-- Name: ledger ledger_pkey; Type: CONSTRAINT; Schema: public; Owner: oshal_owner
--

ALTER TABLE ONLY public.ledger
    ADD CONSTRAINT ledger_pkey PRIMARY KEY (call_id);


--
-- Name: phases phases_pkey; Type: CONSTRAINT; Schema: public; Owner: oshal_owner
--

ALTER TABLE ONLY public.phases
    ADD CONSTRAINT phases_pkey PRIMARY KEY (id);


--
-- Name: phases phases_ticket_id_seq_key; Type: CONSTRAINT; Schema: public; Owner: oshal_owner
--

ALTER TABLE ONLY public.phases
    ADD CONSTRAINT phases_ticket_id_seq_key UNIQUE (ticket_id, seq);


--
-- Name: prices prices_pkey; Type: CONSTRAINT; Schema: public; Owner: oshal_owner
--

ALTER TABLE ONLY public.prices
    ADD CONSTRAINT prices_pkey PRIMARY KEY (provider, model, effective_from);


--
-- Name: recordings recordings_pkey; Type: CONSTRAINT; Schema: public; Owner: oshal_owner
--

ALTER TABLE ONLY public.recordings
    ADD CONSTRAINT recordings_pkey PRIMARY KEY (ticket_id, phase_seq, kind, seq);


--
-- Name: reservations reservations_pkey; Type: CONSTRAINT; Schema: public; Owner: oshal_owner
--

ALTER TABLE ONLY public.reservations
    ADD CONSTRAINT reservations_pkey PRIMARY KEY (id);


--
-- Name: schedule_fires schedule_fires_pkey; Type: CONSTRAINT; Schema: public; Owner: oshal_owner
--

ALTER TABLE ONLY public.schedule_fires
    ADD CONSTRAINT schedule_fires_pkey PRIMARY KEY (schedule_id, tick);


--
-- Name: schedules schedules_pkey; Type: CONSTRAINT; Schema: public; Owner: oshal_owner
--

ALTER TABLE ONLY public.schedules
    ADD CONSTRAINT schedules_pkey PRIMARY KEY (id);


--
-- Name: schedules schedules_tenant_id_name_key; Type: CONSTRAINT; Schema: public; Owner: oshal_owner
--

ALTER TABLE ONLY public.schedules
    ADD CONSTRAINT schedules_tenant_id_name_key UNIQUE (tenant_id, name);


--
-- Name: schema_migrations schema_migrations_pkey; Type: CONSTRAINT; Schema: public; Owner: oshal_owner
--

ALTER TABLE ONLY public.schema_migrations
    ADD CONSTRAINT schema_migrations_pkey PRIMARY KEY (version);


--
-- Name: security_findings security_findings_pkey; Type: CONSTRAINT; Schema: public; Owner: oshal_owner
--

ALTER TABLE ONLY public.security_findings
    ADD CONSTRAINT security_findings_pkey PRIMARY KEY (fingerprint);


--
-- Name: security_scans security_scans_pkey; Type: CONSTRAINT; Schema: public; Owner: oshal_owner
--

ALTER TABLE ONLY public.security_scans
    ADD CONSTRAINT security_scans_pkey PRIMARY KEY (id);


--
-- Name: tenants tenants_name_key; Type: CONSTRAINT; Schema: public; Owner: oshal_owner
--

ALTER TABLE ONLY public.tenants
    ADD CONSTRAINT tenants_name_key UNIQUE (name);


--
-- Name: tenants tenants_pkey; Type: CONSTRAINT; Schema: public; Owner: oshal_owner
--

ALTER TABLE ONLY public.tenants
    ADD CONSTRAINT tenants_pkey PRIMARY KEY (id);


--
-- Name: ticket_events ticket_events_pkey; Type: CONSTRAINT; Schema: public; Owner: oshal_owner
--

ALTER TABLE ONLY public.ticket_events
    ADD CONSTRAINT ticket_events_pkey PRIMARY KEY (id);


--
-- Name: ticket_transitions ticket_transitions_pkey; Type: CONSTRAINT; Schema: public; Owner: oshal_owner
--

ALTER TABLE ONLY public.ticket_transitions
    ADD CONSTRAINT ticket_transitions_pkey PRIMARY KEY (from_status, to_status);


--
-- Name: tickets tickets_pkey; Type: CONSTRAINT; Schema: public; Owner: oshal_owner
--

ALTER TABLE ONLY public.tickets
    ADD CONSTRAINT tickets_pkey PRIMARY KEY (id);


--
-- Name: tickets tickets_tenant_id_idempotency_key_key; Type: CONSTRAINT; Schema: public; Owner: oshal_owner
--

ALTER TABLE ONLY public.tickets
    ADD CONSTRAINT tickets_tenant_id_idempotency_key_key UNIQUE (tenant_id, idempotency_key);


--
-- Name: tool_policies tool_policies_pkey; Type: CONSTRAINT; Schema: public; Owner: oshal_owner
--

ALTER TABLE ONLY public.tool_policies
    ADD CONSTRAINT tool_policies_pkey PRIMARY KEY (tenant_id, bot, connector_id, operation);


--
-- Name: workflow_definitions workflow_definitions_pkey; Type: CONSTRAINT; Schema: public; Owner: oshal_owner
--

ALTER TABLE ONLY public.workflow_definitions
    ADD CONSTRAINT workflow_definitions_pkey PRIMARY KEY (id);


--
-- Name: workflow_definitions workflow_definitions_tenant_id_name_version_key; Type: CONSTRAINT; Schema: public; Owner: oshal_owner
--

ALTER TABLE ONLY public.workflow_definitions
    ADD CONSTRAINT workflow_definitions_tenant_id_name_version_key UNIQUE NULLS NOT DISTINCT (tenant_id, name, version);


--
-- Name: workflow_runs workflow_runs_pkey; Type: CONSTRAINT; Schema: public; Owner: oshal_owner
--

ALTER TABLE ONLY public.workflow_runs
    ADD CONSTRAINT workflow_runs_pkey PRIMARY KEY (ticket_id);


--
-- Name: api_keys_tenant; Type: INDEX; Schema: public; Owner: oshal_owner
--

CREATE INDEX api_keys_tenant ON public.api_keys USING btree (tenant_id);


--
-- Name: approvals_request; Type: INDEX; Schema: public; Owner: oshal_owner
--

CREATE UNIQUE INDEX approvals_request ON public.approvals USING btree (tenant_id, ticket_id, connector_id, operation, arguments_hash);


--
-- Name: attempts_ticket; Type: INDEX; Schema: public; Owner: oshal_owner
--

CREATE INDEX attempts_ticket ON public.attempts USING btree (ticket_id);


--
-- Name: audit_log_action_at; Type: INDEX; Schema: public; Owner: oshal_owner
--

CREATE INDEX audit_log_action_at ON public.audit_log USING btree (action, at);


--
-- Name: audit_log_tenant; Type: INDEX; Schema: public; Owner: oshal_owner
--

CREATE INDEX audit_log_tenant ON public.audit_log USING btree (tenant_id, seq);


--
-- Name: budgets_overrun; Type: INDEX; Schema: public; Owner: oshal_owner
--

CREATE INDEX budgets_overrun ON public.budgets USING btree (overrun_at) WHERE (overrun_at IS NOT NULL);


--
-- Name: credentials_data_key; Type: INDEX; Schema: public; Owner: oshal_owner
--

CREATE INDEX credentials_data_key ON public.credentials USING btree (data_key_id);


--
-- Name: credentials_key; Type: INDEX; Schema: public; Owner: oshal_owner
--

CREATE UNIQUE INDEX credentials_key ON public.credentials USING btree (tenant_id, name, COALESCE(user_id, '00000000-0000-0000-0000-000000000000'::uuid));


--
-- Name: data_keys_active; Type: INDEX; Schema: public; Owner: oshal_owner
--

CREATE UNIQUE INDEX data_keys_active ON public.data_keys USING btree (tenant_id) WHERE active;


--
-- Name: grants_ticket; Type: INDEX; Schema: public; Owner: oshal_owner
--

CREATE INDEX grants_ticket ON public.grants USING btree (tenant_id, ticket_id);


--
-- Name: ledger_tenant_created; Type: INDEX; Schema: public; Owner: oshal_owner
--

CREATE INDEX ledger_tenant_created ON public.ledger USING btree (tenant_id, created_at DESC);


--
-- Name: ledger_ticket; Type: INDEX; Schema: public; Owner: oshal_owner
--

CREATE INDEX ledger_ticket ON public.ledger USING btree (ticket_id);


--
-- Name: ledger_uncovered; Type: INDEX; Schema: public; Owner: oshal_owner
--

CREATE INDEX ledger_uncovered ON public.ledger USING btree (created_at) WHERE ((over_reservation_micros > 0) OR settled_late);


--
-- Name: phases_open; Type: INDEX; Schema: public; Owner: oshal_owner
--

CREATE INDEX phases_open ON public.phases USING btree (updated_at) WHERE (status = ANY (ARRAY['queued'::text, 'dispatched'::text]));


--
-- Name: reservations_bot_recent; Type: INDEX; Schema: public; Owner: oshal_owner
--

CREATE INDEX reservations_bot_recent ON public.reservations USING btree (tenant_id, bot, created_at);


--
-- Name: reservations_holds; Type: INDEX; Schema: public; Owner: oshal_owner
--

CREATE INDEX reservations_holds ON public.reservations USING btree (ticket_id) WHERE ((status = 'open'::text) AND (kind = 'hold'::text));


--
-- Name: reservations_open; Type: INDEX; Schema: public; Owner: oshal_owner
--

CREATE INDEX reservations_open ON public.reservations USING btree (expires_at) WHERE (status = 'open'::text);


--
-- Name: reservations_ticket; Type: INDEX; Schema: public; Owner: oshal_owner
--

CREATE INDEX reservations_ticket ON public.reservations USING btree (ticket_id, created_at);


--
-- Name: schedules_due; Type: INDEX; Schema: public; Owner: oshal_owner
--

CREATE INDEX schedules_due ON public.schedules USING btree (next_tick) WHERE enabled;


--
-- Name: security_findings_scan; Type: INDEX; Schema: public; Owner: oshal_owner
--

CREATE INDEX security_findings_scan ON public.security_findings USING btree (tenant_id, scan, status);


--
-- Name: security_scans_recent; Type: INDEX; Schema: public; Owner: oshal_owner
--

CREATE INDEX security_scans_recent ON public.security_scans USING btree (tenant_id, scan, finished_at DESC);


--
-- Name: ticket_events_ticket; Type: INDEX; Schema: public; Owner: oshal_owner
--

CREATE INDEX ticket_events_ticket ON public.ticket_events USING btree (ticket_id, at);


--
-- Name: tickets_parent; Type: INDEX; Schema: public; Owner: oshal_owner
--

CREATE INDEX tickets_parent ON public.tickets USING btree (parent_id) WHERE (parent_id IS NOT NULL);


--
-- Name: tickets_paused; Type: INDEX; Schema: public; Owner: oshal_owner
--

CREATE INDEX tickets_paused ON public.tickets USING btree (tenant_id) WHERE (status = 'paused'::text);


--
-- Name: tickets_tenant_id; Type: INDEX; Schema: public; Owner: oshal_owner
--

CREATE INDEX tickets_tenant_id ON public.tickets USING btree (tenant_id, id DESC);


--
-- Name: workflow_runs_open; Type: INDEX; Schema: public; Owner: oshal_owner
--

CREATE INDEX workflow_runs_open ON public.workflow_runs USING btree (updated_at) WHERE (NOT finished);


--
-- Name: audit_anchors audit_anchors_append_only; Type: TRIGGER; Schema: public; Owner: oshal_owner
--

CREATE TRIGGER audit_anchors_append_only BEFORE DELETE OR UPDATE ON public.audit_anchors FOR EACH ROW EXECUTE FUNCTION public.oshal_audit_append_only();


--
-- Name: audit_anchors audit_anchors_no_truncate; Type: TRIGGER; Schema: public; Owner: oshal_owner
--

CREATE TRIGGER audit_anchors_no_truncate BEFORE TRUNCATE ON public.audit_anchors FOR EACH STATEMENT EXECUTE FUNCTION public.oshal_audit_append_only();


--
-- Name: audit_log audit_log_append_only; Type: TRIGGER; Schema: public; Owner: oshal_owner
--

CREATE TRIGGER audit_log_append_only BEFORE DELETE OR UPDATE ON public.audit_log FOR EACH ROW EXECUTE FUNCTION public.oshal_audit_append_only();


--
-- Name: audit_log audit_log_no_truncate; Type: TRIGGER; Schema: public; Owner: oshal_owner
--

CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON public.audit_log FOR EACH STATEMENT EXECUTE FUNCTION public.oshal_audit_append_only();


--
-- Name: ledger ledger_coverage; Type: TRIGGER; Schema: public; Owner: oshal_owner
--

CREATE TRIGGER ledger_coverage AFTER INSERT ON public.ledger REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION public.oshal_ledger_coverage();


--
-- Name: tickets tickets_transition; Type: TRIGGER; Schema: public; Owner: oshal_owner
--

CREATE TRIGGER tickets_transition AFTER UPDATE OF status, phase ON public.tickets FOR EACH ROW WHEN ((current_setting('oshal.events'::text, true) IS DISTINCT FROM 'bulk'::text)) EXECUTE FUNCTION public.oshal_ticket_transition();


--
-- Name: api_keys api_keys_tenant_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: oshal_owner
--

ALTER TABLE ONLY public.api_keys
    ADD CONSTRAINT api_keys_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES public.tenants(id);


--
-- Name: artifacts artifacts_ticket_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: oshal_owner
--

ALTER TABLE ONLY public.artifacts
    ADD CONSTRAINT artifacts_ticket_id_fkey FOREIGN KEY (ticket_id) REFERENCES public.tickets(id);


--
-- Name: budget_usage budget_usage_budget_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: oshal_owner
--

ALTER TABLE ONLY public.budget_usage
    ADD CONSTRAINT budget_usage_budget_id_fkey FOREIGN KEY (budget_id) REFERENCES public.budgets(id) ON DELETE CASCADE;


--
-- Name: budgets budgets_tenant_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: oshal_owner
--

ALTER TABLE ONLY public.budgets
    ADD CONSTRAINT budgets_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES public.tenants(id);


--
-- Name: connections connections_connector_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: oshal_owner
--

ALTER TABLE ONLY public.connections
    ADD CONSTRAINT connections_connector_id_fkey FOREIGN KEY (connector_id) REFERENCES public.connectors(id);


--
-- Name: credentials credentials_data_key_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: oshal_owner
--

ALTER TABLE ONLY public.credentials
    ADD CONSTRAINT credentials_data_key_id_fkey FOREIGN KEY (data_key_id) REFERENCES public.data_keys(id);


--
-- Name: credentials credentials_tenant_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: oshal_owner
--

ALTER TABLE ONLY public.credentials
    ADD CONSTRAINT credentials_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES public.tenants(id) ON DELETE CASCADE;


--
-- Name: data_keys data_keys_tenant_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: oshal_owner
--

ALTER TABLE ONLY public.data_keys
    ADD CONSTRAINT data_keys_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES public.tenants(id) ON DELETE CASCADE;


--
-- Name: phases phases_ticket_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: oshal_owner
--

ALTER TABLE ONLY public.phases
    ADD CONSTRAINT phases_ticket_id_fkey FOREIGN KEY (ticket_id) REFERENCES public.tickets(id);


--
-- Name: schedule_fires schedule_fires_schedule_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: oshal_owner
--

ALTER TABLE ONLY public.schedule_fires
    ADD CONSTRAINT schedule_fires_schedule_id_fkey FOREIGN KEY (schedule_id) REFERENCES public.schedules(id);


--
-- Name: schedules schedules_tenant_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: oshal_owner
--

ALTER TABLE ONLY public.schedules
    ADD CONSTRAINT schedules_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES public.tenants(id);


--
-- Name: security_findings security_findings_tenant_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: oshal_owner
--

ALTER TABLE ONLY public.security_findings
    ADD CONSTRAINT security_findings_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES public.tenants(id);


--
-- Name: security_findings security_findings_ticket_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: oshal_owner
--

ALTER TABLE ONLY public.security_findings
    ADD CONSTRAINT security_findings_ticket_id_fkey FOREIGN KEY (ticket_id) REFERENCES public.tickets(id);


--
-- Name: security_scans security_scans_tenant_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: oshal_owner
--

ALTER TABLE ONLY public.security_scans
    ADD CONSTRAINT security_scans_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES public.tenants(id);


--
-- Name: tickets tickets_parent_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: oshal_owner
--

ALTER TABLE ONLY public.tickets
    ADD CONSTRAINT tickets_parent_id_fkey FOREIGN KEY (parent_id) REFERENCES public.tickets(id);


--
-- Name: tickets tickets_tenant_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: oshal_owner
--

ALTER TABLE ONLY public.tickets
    ADD CONSTRAINT tickets_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES public.tenants(id);


--
-- Name: workflow_definitions workflow_definitions_tenant_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: oshal_owner
--

ALTER TABLE ONLY public.workflow_definitions
    ADD CONSTRAINT workflow_definitions_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES public.tenants(id);


--
-- Name: workflow_runs workflow_runs_ticket_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: oshal_owner
--

ALTER TABLE ONLY public.workflow_runs
    ADD CONSTRAINT workflow_runs_ticket_id_fkey FOREIGN KEY (ticket_id) REFERENCES public.tickets(id);


--
-- Name: api_keys; Type: ROW SECURITY; Schema: public; Owner: oshal_owner
--

ALTER TABLE public.api_keys ENABLE ROW LEVEL SECURITY;

--
-- Name: approvals; Type: ROW SECURITY; Schema: public; Owner: oshal_owner
--

ALTER TABLE public.approvals ENABLE ROW LEVEL SECURITY;

--
-- Name: artifacts; Type: ROW SECURITY; Schema: public; Owner: oshal_owner
--

ALTER TABLE public.artifacts ENABLE ROW LEVEL SECURITY;

--
-- Name: attempts; Type: ROW SECURITY; Schema: public; Owner: oshal_owner
--

ALTER TABLE public.attempts ENABLE ROW LEVEL SECURITY;

--
-- Name: audit_log; Type: ROW SECURITY; Schema: public; Owner: oshal_owner
--

ALTER TABLE public.audit_log ENABLE ROW LEVEL SECURITY;

--
-- Name: budget_usage; Type: ROW SECURITY; Schema: public; Owner: oshal_owner
--

ALTER TABLE public.budget_usage ENABLE ROW LEVEL SECURITY;

--
-- Name: budgets; Type: ROW SECURITY; Schema: public; Owner: oshal_owner
--

ALTER TABLE public.budgets ENABLE ROW LEVEL SECURITY;

--
-- Name: connections; Type: ROW SECURITY; Schema: public; Owner: oshal_owner
--

ALTER TABLE public.connections ENABLE ROW LEVEL SECURITY;

--
-- Name: credentials; Type: ROW SECURITY; Schema: public; Owner: oshal_owner
--

ALTER TABLE public.credentials ENABLE ROW LEVEL SECURITY;

--
-- Name: data_keys; Type: ROW SECURITY; Schema: public; Owner: oshal_owner
--

ALTER TABLE public.data_keys ENABLE ROW LEVEL SECURITY;

--
-- Name: grants; Type: ROW SECURITY; Schema: public; Owner: oshal_owner
--

ALTER TABLE public.grants ENABLE ROW LEVEL SECURITY;

--
-- Name: ledger; Type: ROW SECURITY; Schema: public; Owner: oshal_owner
--

ALTER TABLE public.ledger ENABLE ROW LEVEL SECURITY;

--
-- Name: ledger_daily; Type: ROW SECURITY; Schema: public; Owner: oshal_owner
--

ALTER TABLE public.ledger_daily ENABLE ROW LEVEL SECURITY;

--
-- Name: budgets owner_budget_resume; Type: POLICY; Schema: public; Owner: oshal_owner
--

CREATE POLICY owner_budget_resume ON public.budgets FOR SELECT TO oshal_owner USING (true);


--
-- Name: workflow_definitions owner_builtin; Type: POLICY; Schema: public; Owner: oshal_owner
--

CREATE POLICY owner_builtin ON public.workflow_definitions TO oshal_owner USING ((tenant_id IS NULL)) WITH CHECK ((tenant_id IS NULL));


--
-- Name: audit_log owner_chain; Type: POLICY; Schema: public; Owner: oshal_owner
--

CREATE POLICY owner_chain ON public.audit_log TO oshal_owner USING (true) WITH CHECK (true);


--
-- Name: budget_usage owner_expiry; Type: POLICY; Schema: public; Owner: oshal_owner
--

CREATE POLICY owner_expiry ON public.budget_usage TO oshal_owner USING (true) WITH CHECK (true);


--
-- Name: reservations owner_expiry; Type: POLICY; Schema: public; Owner: oshal_owner
--

CREATE POLICY owner_expiry ON public.reservations TO oshal_owner USING (true) WITH CHECK (true);


--
-- Name: api_keys owner_lookup; Type: POLICY; Schema: public; Owner: oshal_owner
--

CREATE POLICY owner_lookup ON public.api_keys FOR SELECT TO oshal_owner USING (true);


--
-- Name: ledger owner_rollup; Type: POLICY; Schema: public; Owner: oshal_owner
--

CREATE POLICY owner_rollup ON public.ledger TO oshal_owner USING (true) WITH CHECK (true);


--
-- Name: ledger_daily owner_rollup; Type: POLICY; Schema: public; Owner: oshal_owner
--

CREATE POLICY owner_rollup ON public.ledger_daily TO oshal_owner USING (true) WITH CHECK (true);


--
-- Name: tickets owner_rollup_tickets; Type: POLICY; Schema: public; Owner: oshal_owner
--

CREATE POLICY owner_rollup_tickets ON public.tickets FOR UPDATE TO oshal_owner USING (true) WITH CHECK (true);


--
-- Name: workflow_runs owner_runs; Type: POLICY; Schema: public; Owner: oshal_owner
--

CREATE POLICY owner_runs ON public.workflow_runs FOR SELECT TO oshal_owner USING (true);


--
-- Name: schedules owner_schedules; Type: POLICY; Schema: public; Owner: oshal_owner
--

CREATE POLICY owner_schedules ON public.schedules FOR SELECT TO oshal_owner USING (true);


--
-- Name: tickets owner_stall_check; Type: POLICY; Schema: public; Owner: oshal_owner
--

CREATE POLICY owner_stall_check ON public.tickets FOR SELECT TO oshal_owner USING (true);


--
-- Name: phases owner_sweep; Type: POLICY; Schema: public; Owner: oshal_owner
--

CREATE POLICY owner_sweep ON public.phases FOR SELECT TO oshal_owner USING (true);


--
-- Name: api_keys owner_usage; Type: POLICY; Schema: public; Owner: oshal_owner
--

CREATE POLICY owner_usage ON public.api_keys FOR UPDATE TO oshal_owner USING (true);


--
-- Name: phases; Type: ROW SECURITY; Schema: public; Owner: oshal_owner
--

ALTER TABLE public.phases ENABLE ROW LEVEL SECURITY;

--
-- Name: recordings; Type: ROW SECURITY; Schema: public; Owner: oshal_owner
--

ALTER TABLE public.recordings ENABLE ROW LEVEL SECURITY;

--
-- Name: reservations; Type: ROW SECURITY; Schema: public; Owner: oshal_owner
--

ALTER TABLE public.reservations ENABLE ROW LEVEL SECURITY;

--
-- Name: schedule_fires; Type: ROW SECURITY; Schema: public; Owner: oshal_owner
--

ALTER TABLE public.schedule_fires ENABLE ROW LEVEL SECURITY;

--
-- Name: schedules; Type: ROW SECURITY; Schema: public; Owner: oshal_owner
--

ALTER TABLE public.schedules ENABLE ROW LEVEL SECURITY;

--
-- Name: security_findings; Type: ROW SECURITY; Schema: public; Owner: oshal_owner
--

ALTER TABLE public.security_findings ENABLE ROW LEVEL SECURITY;

--
-- Name: security_scans; Type: ROW SECURITY; Schema: public; Owner: oshal_owner
--

ALTER TABLE public.security_scans ENABLE ROW LEVEL SECURITY;

--
-- Name: api_keys tenant_isolation; Type: POLICY; Schema: public; Owner: oshal_owner
--

CREATE POLICY tenant_isolation ON public.api_keys USING ((tenant_id = (NULLIF(current_setting('oshal.tenant_id'::text, true), ''::text))::uuid)) WITH CHECK ((tenant_id = (NULLIF(current_setting('oshal.tenant_id'::text, true), ''::text))::uuid));


--
-- Name: approvals tenant_isolation; Type: POLICY; Schema: public; Owner: oshal_owner
--

CREATE POLICY tenant_isolation ON public.approvals USING ((tenant_id = (NULLIF(current_setting('oshal.tenant_id'::text, true), ''::text))::uuid)) WITH CHECK ((tenant_id = (NULLIF(current_setting('oshal.tenant_id'::text, true), ''::text))::uuid));


--
-- Name: artifacts tenant_isolation; Type: POLICY; Schema: public; Owner: oshal_owner
--

CREATE POLICY tenant_isolation ON public.artifacts USING ((tenant_id = (NULLIF(current_setting('oshal.tenant_id'::text, true), ''::text))::uuid)) WITH CHECK ((tenant_id = (NULLIF(current_setting('oshal.tenant_id'::text, true), ''::text))::uuid));


--
-- Name: attempts tenant_isolation; Type: POLICY; Schema: public; Owner: oshal_owner
--

CREATE POLICY tenant_isolation ON public.attempts USING ((tenant_id = (NULLIF(current_setting('oshal.tenant_id'::text, true), ''::text))::uuid)) WITH CHECK ((tenant_id = (NULLIF(current_setting('oshal.tenant_id'::text, true), ''::text))::uuid));


--
-- Name: audit_log tenant_isolation; Type: POLICY; Schema: public; Owner: oshal_owner
--

CREATE POLICY tenant_isolation ON public.audit_log FOR SELECT USING ((tenant_id = (NULLIF(current_setting('oshal.tenant_id'::text, true), ''::text))::uuid));


--
-- Name: budget_usage tenant_isolation; Type: POLICY; Schema: public; Owner: oshal_owner
--

CREATE POLICY tenant_isolation ON public.budget_usage USING ((tenant_id = (NULLIF(current_setting('oshal.tenant_id'::text, true), ''::text))::uuid)) WITH CHECK ((tenant_id = (NULLIF(current_setting('oshal.tenant_id'::text, true), ''::text))::uuid));


--
-- Name: budgets tenant_isolation; Type: POLICY; Schema: public; Owner: oshal_owner
--

CREATE POLICY tenant_isolation ON public.budgets USING ((tenant_id = (NULLIF(current_setting('oshal.tenant_id'::text, true), ''::text))::uuid)) WITH CHECK ((tenant_id = (NULLIF(current_setting('oshal.tenant_id'::text, true), ''::text))::uuid));


--
-- Name: connections tenant_isolation; Type: POLICY; Schema: public; Owner: oshal_owner
--

CREATE POLICY tenant_isolation ON public.connections USING ((tenant_id = (NULLIF(current_setting('oshal.tenant_id'::text, true), ''::text))::uuid)) WITH CHECK ((tenant_id = (NULLIF(current_setting('oshal.tenant_id'::text, true), ''::text))::uuid));


--
-- Name: credentials tenant_isolation; Type: POLICY; Schema: public; Owner: oshal_owner
--

CREATE POLICY tenant_isolation ON public.credentials USING ((tenant_id = (NULLIF(current_setting('oshal.tenant_id'::text, true), ''::text))::uuid)) WITH CHECK ((tenant_id = (NULLIF(current_setting('oshal.tenant_id'::text, true), ''::text))::uuid));


--
-- Name: data_keys tenant_isolation; Type: POLICY; Schema: public; Owner: oshal_owner
--

CREATE POLICY tenant_isolation ON public.data_keys USING ((tenant_id = (NULLIF(current_setting('oshal.tenant_id'::text, true), ''::text))::uuid)) WITH CHECK ((tenant_id = (NULLIF(current_setting('oshal.tenant_id'::text, true), ''::text))::uuid));


--
-- Name: grants tenant_isolation; Type: POLICY; Schema: public; Owner: oshal_owner
--

CREATE POLICY tenant_isolation ON public.grants USING ((tenant_id = (NULLIF(current_setting('oshal.tenant_id'::text, true), ''::text))::uuid)) WITH CHECK ((tenant_id = (NULLIF(current_setting('oshal.tenant_id'::text, true), ''::text))::uuid));


--
-- Name: ledger tenant_isolation; Type: POLICY; Schema: public; Owner: oshal_owner
--

CREATE POLICY tenant_isolation ON public.ledger USING ((tenant_id = (NULLIF(current_setting('oshal.tenant_id'::text, true), ''::text))::uuid)) WITH CHECK ((tenant_id = (NULLIF(current_setting('oshal.tenant_id'::text, true), ''::text))::uuid));


--
-- Name: ledger_daily tenant_isolation; Type: POLICY; Schema: public; Owner: oshal_owner
--

CREATE POLICY tenant_isolation ON public.ledger_daily USING ((tenant_id = (NULLIF(current_setting('oshal.tenant_id'::text, true), ''::text))::uuid)) WITH CHECK ((tenant_id = (NULLIF(current_setting('oshal.tenant_id'::text, true), ''::text))::uuid));


--
-- Name: phases tenant_isolation; Type: POLICY; Schema: public; Owner: oshal_owner
--

CREATE POLICY tenant_isolation ON public.phases USING ((tenant_id = (NULLIF(current_setting('oshal.tenant_id'::text, true), ''::text))::uuid)) WITH CHECK ((tenant_id = (NULLIF(current_setting('oshal.tenant_id'::text, true), ''::text))::uuid));


--
-- Name: recordings tenant_isolation; Type: POLICY; Schema: public; Owner: oshal_owner
--

CREATE POLICY tenant_isolation ON public.recordings USING ((tenant_id = (NULLIF(current_setting('oshal.tenant_id'::text, true), ''::text))::uuid)) WITH CHECK ((tenant_id = (NULLIF(current_setting('oshal.tenant_id'::text, true), ''::text))::uuid));


--
-- Name: reservations tenant_isolation; Type: POLICY; Schema: public; Owner: oshal_owner
--

CREATE POLICY tenant_isolation ON public.reservations USING ((tenant_id = (NULLIF(current_setting('oshal.tenant_id'::text, true), ''::text))::uuid)) WITH CHECK ((tenant_id = (NULLIF(current_setting('oshal.tenant_id'::text, true), ''::text))::uuid));


--
-- Name: schedule_fires tenant_isolation; Type: POLICY; Schema: public; Owner: oshal_owner
--

CREATE POLICY tenant_isolation ON public.schedule_fires USING ((tenant_id = (NULLIF(current_setting('oshal.tenant_id'::text, true), ''::text))::uuid)) WITH CHECK ((tenant_id = (NULLIF(current_setting('oshal.tenant_id'::text, true), ''::text))::uuid));


--
-- Name: schedules tenant_isolation; Type: POLICY; Schema: public; Owner: oshal_owner
--

CREATE POLICY tenant_isolation ON public.schedules USING ((tenant_id = (NULLIF(current_setting('oshal.tenant_id'::text, true), ''::text))::uuid)) WITH CHECK ((tenant_id = (NULLIF(current_setting('oshal.tenant_id'::text, true), ''::text))::uuid));


--
-- Name: security_findings tenant_isolation; Type: POLICY; Schema: public; Owner: oshal_owner
--

CREATE POLICY tenant_isolation ON public.security_findings USING ((tenant_id = (NULLIF(current_setting('oshal.tenant_id'::text, true), ''::text))::uuid)) WITH CHECK ((tenant_id = (NULLIF(current_setting('oshal.tenant_id'::text, true), ''::text))::uuid));


--
-- Name: security_scans tenant_isolation; Type: POLICY; Schema: public; Owner: oshal_owner
--

CREATE POLICY tenant_isolation ON public.security_scans USING ((tenant_id = (NULLIF(current_setting('oshal.tenant_id'::text, true), ''::text))::uuid)) WITH CHECK ((tenant_id = (NULLIF(current_setting('oshal.tenant_id'::text, true), ''::text))::uuid));


--
-- Name: ticket_events tenant_isolation; Type: POLICY; Schema: public; Owner: oshal_owner
--

CREATE POLICY tenant_isolation ON public.ticket_events USING ((tenant_id = (NULLIF(current_setting('oshal.tenant_id'::text, true), ''::text))::uuid)) WITH CHECK ((tenant_id = (NULLIF(current_setting('oshal.tenant_id'::text, true), ''::text))::uuid));


--
-- Name: tickets tenant_isolation; Type: POLICY; Schema: public; Owner: oshal_owner
--

CREATE POLICY tenant_isolation ON public.tickets USING ((tenant_id = (NULLIF(current_setting('oshal.tenant_id'::text, true), ''::text))::uuid)) WITH CHECK ((tenant_id = (NULLIF(current_setting('oshal.tenant_id'::text, true), ''::text))::uuid));


--
-- Name: tool_policies tenant_isolation; Type: POLICY; Schema: public; Owner: oshal_owner
--

CREATE POLICY tenant_isolation ON public.tool_policies USING ((tenant_id = (NULLIF(current_setting('oshal.tenant_id'::text, true), ''::text))::uuid)) WITH CHECK ((tenant_id = (NULLIF(current_setting('oshal.tenant_id'::text, true), ''::text))::uuid));


--
-- Name: workflow_runs tenant_isolation; Type: POLICY; Schema: public; Owner: oshal_owner
--

CREATE POLICY tenant_isolation ON public.workflow_runs USING ((tenant_id = (NULLIF(current_setting('oshal.tenant_id'::text, true), ''::text))::uuid)) WITH CHECK ((tenant_id = (NULLIF(current_setting('oshal.tenant_id'::text, true), ''::text))::uuid));


--
-- Name: workflow_definitions tenant_or_builtin; Type: POLICY; Schema: public; Owner: oshal_owner
--

CREATE POLICY tenant_or_builtin ON public.workflow_definitions FOR SELECT USING (((tenant_id IS NULL) OR (tenant_id = (NULLIF(current_setting('oshal.tenant_id'::text, true), ''::text))::uuid)));


--
-- Name: workflow_definitions tenant_publish; Type: POLICY; Schema: public; Owner: oshal_owner
--

CREATE POLICY tenant_publish ON public.workflow_definitions FOR INSERT WITH CHECK ((tenant_id = (NULLIF(current_setting('oshal.tenant_id'::text, true), ''::text))::uuid));


--
-- Name: ticket_events; Type: ROW SECURITY; Schema: public; Owner: oshal_owner
--

ALTER TABLE public.ticket_events ENABLE ROW LEVEL SECURITY;

--
-- Name: tickets; Type: ROW SECURITY; Schema: public; Owner: oshal_owner
--

ALTER TABLE public.tickets ENABLE ROW LEVEL SECURITY;

--
-- Name: tool_policies; Type: ROW SECURITY; Schema: public; Owner: oshal_owner
--

ALTER TABLE public.tool_policies ENABLE ROW LEVEL SECURITY;

--
-- Name: workflow_definitions; Type: ROW SECURITY; Schema: public; Owner: oshal_owner
--

ALTER TABLE public.workflow_definitions ENABLE ROW LEVEL SECURITY;

--
-- Name: workflow_runs; Type: ROW SECURITY; Schema: public; Owner: oshal_owner
--

ALTER TABLE public.workflow_runs ENABLE ROW LEVEL SECURITY;

--
-- Name: SCHEMA public; Type: ACL; Schema: -; Owner: oshal_owner
--

REVOKE USAGE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO oshal_api;
GRANT USAGE ON SCHEMA public TO oshal_report;


--
-- Name: FUNCTION oshal_audit(p_tenants uuid[], p_actors text[], p_actions text[], p_targets text[], p_details jsonb[]); Type: ACL; Schema: public; Owner: oshal_owner
--

REVOKE ALL ON FUNCTION public.oshal_audit(p_tenants uuid[], p_actors text[], p_actions text[], p_targets text[], p_details jsonb[]) FROM PUBLIC;
GRANT ALL ON FUNCTION public.oshal_audit(p_tenants uuid[], p_actors text[], p_actions text[], p_targets text[], p_details jsonb[]) TO oshal_api;


--
-- Name: FUNCTION oshal_audit_anchor(p_seq bigint, p_hash bytea, p_mac bytea); Type: ACL; Schema: public; Owner: oshal_owner
--

REVOKE ALL ON FUNCTION public.oshal_audit_anchor(p_seq bigint, p_hash bytea, p_mac bytea) FROM PUBLIC;
GRANT ALL ON FUNCTION public.oshal_audit_anchor(p_seq bigint, p_hash bytea, p_mac bytea) TO oshal_api;


--
-- Name: FUNCTION oshal_audit_anchors(); Type: ACL; Schema: public; Owner: oshal_owner
--

REVOKE ALL ON FUNCTION public.oshal_audit_anchors() FROM PUBLIC;
GRANT ALL ON FUNCTION public.oshal_audit_anchors() TO oshal_api;


--
-- Name: FUNCTION oshal_audit_append_only(); Type: ACL; Schema: public; Owner: oshal_owner
--

REVOKE ALL ON FUNCTION public.oshal_audit_append_only() FROM PUBLIC;


--
-- Name: FUNCTION oshal_audit_counts(p_since timestamp with time zone); Type: ACL; Schema: public; Owner: oshal_owner
--

REVOKE ALL ON FUNCTION public.oshal_audit_counts(p_since timestamp with time zone) FROM PUBLIC;
GRANT ALL ON FUNCTION public.oshal_audit_counts(p_since timestamp with time zone) TO oshal_api;


--
-- Name: FUNCTION oshal_audit_digest(p_prev bytea, p_seq bigint, p_at timestamp with time zone, p_tenant uuid, p_actor text, p_action text, p_target text, p_detail jsonb); Type: ACL; Schema: public; Owner: oshal_owner
--

REVOKE ALL ON FUNCTION public.oshal_audit_digest(p_prev bytea, p_seq bigint, p_at timestamp with time zone, p_tenant uuid, p_actor text, p_action text, p_target text, p_detail jsonb) FROM PUBLIC;


--
-- Name: TABLE audit_log; Type: ACL; Schema: public; Owner: oshal_owner
--

GRANT SELECT ON TABLE public.audit_log TO oshal_api;


--
-- Name: FUNCTION oshal_audit_entries(p_tenant uuid, p_after bigint, p_limit integer); Type: ACL; Schema: public; Owner: oshal_owner
--

REVOKE ALL ON FUNCTION public.oshal_audit_entries(p_tenant uuid, p_after bigint, p_limit integer) FROM PUBLIC;
GRANT ALL ON FUNCTION public.oshal_audit_entries(p_tenant uuid, p_after bigint, p_limit integer) TO oshal_api;


--
-- Name: FUNCTION oshal_audit_hashes(p_seqs bigint[]); Type: ACL; Schema: public; Owner: oshal_owner
--

REVOKE ALL ON FUNCTION public.oshal_audit_hashes(p_seqs bigint[]) FROM PUBLIC;
GRANT ALL ON FUNCTION public.oshal_audit_hashes(p_seqs bigint[]) TO oshal_api;


--
-- Name: FUNCTION oshal_audit_head(); Type: ACL; Schema: public; Owner: oshal_owner
--

REVOKE ALL ON FUNCTION public.oshal_audit_head() FROM PUBLIC;
GRANT ALL ON FUNCTION public.oshal_audit_head() TO oshal_api;


--
-- Name: FUNCTION oshal_audit_prune(p_before timestamp with time zone); Type: ACL; Schema: public; Owner: oshal_owner
--

REVOKE ALL ON FUNCTION public.oshal_audit_prune(p_before timestamp with time zone) FROM PUBLIC;
GRANT ALL ON FUNCTION public.oshal_audit_prune(p_before timestamp with time zone) TO oshal_api;


--
-- Name: FUNCTION oshal_audit_prune_point(p_before timestamp with time zone); Type: ACL; Schema: public; Owner: oshal_owner
--

REVOKE ALL ON FUNCTION public.oshal_audit_prune_point(p_before timestamp with time zone) FROM PUBLIC;
GRANT ALL ON FUNCTION public.oshal_audit_prune_point(p_before timestamp with time zone) TO oshal_api;


--
-- Name: FUNCTION oshal_audit_verify(); Type: ACL; Schema: public; Owner: oshal_owner
--

REVOKE ALL ON FUNCTION public.oshal_audit_verify() FROM PUBLIC;
GRANT ALL ON FUNCTION public.oshal_audit_verify() TO oshal_api;


--
-- Name: FUNCTION oshal_budget_overruns(p_since timestamp with time zone); Type: ACL; Schema: public; Owner: oshal_owner
--

REVOKE ALL ON FUNCTION public.oshal_budget_overruns(p_since timestamp with time zone) FROM PUBLIC;
GRANT ALL ON FUNCTION public.oshal_budget_overruns(p_since timestamp with time zone) TO oshal_api;


--
-- Name: FUNCTION oshal_budget_resume(p_tenants uuid[], p_limit integer, p_hold_s double precision); Type: ACL; Schema: public; Owner: oshal_owner
--

REVOKE ALL ON FUNCTION public.oshal_budget_resume(p_tenants uuid[], p_limit integer, p_hold_s double precision) FROM PUBLIC;
GRANT ALL ON FUNCTION public.oshal_budget_resume(p_tenants uuid[], p_limit integer, p_hold_s double precision) TO oshal_api;


--
-- Name: FUNCTION oshal_create_tickets(p_tenant uuid, p_by uuid, p_ids uuid[], p_phase_ids uuid[], p_bots text[], p_inputs text[], p_keys text[], p_hashes bytea[]); Type: ACL; Schema: public; Owner: oshal_owner
--

REVOKE ALL ON FUNCTION public.oshal_create_tickets(p_tenant uuid, p_by uuid, p_ids uuid[], p_phase_ids uuid[], p_bots text[], p_inputs text[], p_keys text[], p_hashes bytea[]) FROM PUBLIC;
GRANT ALL ON FUNCTION public.oshal_create_tickets(p_tenant uuid, p_by uuid, p_ids uuid[], p_phase_ids uuid[], p_bots text[], p_inputs text[], p_keys text[], p_hashes bytea[]) TO oshal_api;


--
-- Name: FUNCTION oshal_due_schedules(p_limit integer); Type: ACL; Schema: public; Owner: oshal_owner
--

REVOKE ALL ON FUNCTION public.oshal_due_schedules(p_limit integer) FROM PUBLIC;
GRANT ALL ON FUNCTION public.oshal_due_schedules(p_limit integer) TO oshal_api;


--
-- Name: FUNCTION oshal_expire_reservations(p_limit integer); Type: ACL; Schema: public; Owner: oshal_owner
--

REVOKE ALL ON FUNCTION public.oshal_expire_reservations(p_limit integer) FROM PUBLIC;
GRANT ALL ON FUNCTION public.oshal_expire_reservations(p_limit integer) TO oshal_api;


--
-- Name: FUNCTION oshal_held_phases(p_limit integer); Type: ACL; Schema: public; Owner: oshal_owner
--

REVOKE ALL ON FUNCTION public.oshal_held_phases(p_limit integer) FROM PUBLIC;
GRANT ALL ON FUNCTION public.oshal_held_phases(p_limit integer) TO oshal_api;


--
-- Name: FUNCTION oshal_key_check(p_prefix text, p_digest bytea); Type: ACL; Schema: public; Owner: oshal_owner
--

REVOKE ALL ON FUNCTION public.oshal_key_check(p_prefix text, p_digest bytea) FROM PUBLIC;
GRANT ALL ON FUNCTION public.oshal_key_check(p_prefix text, p_digest bytea) TO oshal_api;


--
-- Name: FUNCTION oshal_key_inventory(p_tenant uuid); Type: ACL; Schema: public; Owner: oshal_owner
--

REVOKE ALL ON FUNCTION public.oshal_key_inventory(p_tenant uuid) FROM PUBLIC;
GRANT ALL ON FUNCTION public.oshal_key_inventory(p_tenant uuid) TO oshal_api;


--
-- Name: FUNCTION oshal_keys_used(p_ids uuid[]); Type: ACL; Schema: public; Owner: oshal_owner
--

REVOKE ALL ON FUNCTION public.oshal_keys_used(p_ids uuid[]) FROM PUBLIC;
GRANT ALL ON FUNCTION public.oshal_keys_used(p_ids uuid[]) TO oshal_api;


--
-- Name: FUNCTION oshal_ledger_coverage(); Type: ACL; Schema: public; Owner: oshal_owner
--

REVOKE ALL ON FUNCTION public.oshal_ledger_coverage() FROM PUBLIC;


--
-- Name: FUNCTION oshal_platform_scope(); Type: ACL; Schema: public; Owner: oshal_owner
--

REVOKE ALL ON FUNCTION public.oshal_platform_scope() FROM PUBLIC;


--
-- Name: FUNCTION oshal_record_results(p_tenant uuid, p_phase uuid[], p_attempt integer[], p_ticket uuid[], p_outcome text[], p_output text[], p_error text[], p_consumer text[], p_deliveries integer[], p_started timestamp with time zone[], p_finished timestamp with time zone[], l_call text[], l_ticket uuid[], l_phase uuid[], l_attempt integer[], l_bot text[], l_provider text[], l_model text[], l_in bigint[], l_out bigint[], l_cr bigint[], l_cw bigint[], l_cost bigint[], l_source text[], l_rs bigint[], l_computed bigint[], l_reported bigint[], l_reservation uuid[]); Type: ACL; Schema: public; Owner: oshal_owner
--

REVOKE ALL ON FUNCTION public.oshal_record_results(p_tenant uuid, p_phase uuid[], p_attempt integer[], p_ticket uuid[], p_outcome text[], p_output text[], p_error text[], p_consumer text[], p_deliveries integer[], p_started timestamp with time zone[], p_finished timestamp with time zone[], l_call text[], l_ticket uuid[], l_phase uuid[], l_attempt integer[], l_bot text[], l_provider text[], l_model text[], l_in bigint[], l_out bigint[], l_cr bigint[], l_cw bigint[], l_cost bigint[], l_source text[], l_rs bigint[], l_computed bigint[], l_reported bigint[], l_reservation uuid[]) FROM PUBLIC;
GRANT ALL ON FUNCTION public.oshal_record_results(p_tenant uuid, p_phase uuid[], p_attempt integer[], p_ticket uuid[], p_outcome text[], p_output text[], p_error text[], p_consumer text[], p_deliveries integer[], p_started timestamp with time zone[], p_finished timestamp with time zone[], l_call text[], l_ticket uuid[], l_phase uuid[], l_attempt integer[], l_bot text[], l_provider text[], l_model text[], l_in bigint[], l_out bigint[], l_cr bigint[], l_cw bigint[], l_cost bigint[], l_source text[], l_rs bigint[], l_computed bigint[], l_reported bigint[], l_reservation uuid[]) TO oshal_api;


--
-- Name: FUNCTION oshal_require_scope(p_function text, p_tenant uuid); Type: ACL; Schema: public; Owner: oshal_owner
--

REVOKE ALL ON FUNCTION public.oshal_require_scope(p_function text, p_tenant uuid) FROM PUBLIC;


--
-- Name: FUNCTION oshal_reserve(p_tenant uuid, p_reservation uuid, p_ticket uuid, p_bot text, p_amount bigint, p_ttl_s double precision, p_max_calls integer, p_window_s double precision); Type: ACL; Schema: public; Owner: oshal_owner
--

REVOKE ALL ON FUNCTION public.oshal_reserve(p_tenant uuid, p_reservation uuid, p_ticket uuid, p_bot text, p_amount bigint, p_ttl_s double precision, p_max_calls integer, p_window_s double precision) FROM PUBLIC;
GRANT ALL ON FUNCTION public.oshal_reserve(p_tenant uuid, p_reservation uuid, p_ticket uuid, p_bot text, p_amount bigint, p_ttl_s double precision, p_max_calls integer, p_window_s double precision) TO oshal_api;


--
-- Name: FUNCTION oshal_rollup_ledger(p_before timestamp with time zone); Type: ACL; Schema: public; Owner: oshal_owner
--

REVOKE ALL ON FUNCTION public.oshal_rollup_ledger(p_before timestamp with time zone) FROM PUBLIC;
GRANT ALL ON FUNCTION public.oshal_rollup_ledger(p_before timestamp with time zone) TO oshal_api;


--
-- Name: FUNCTION oshal_stale_dispatches(p_older_than interval, p_after_at timestamp with time zone, p_after_id uuid, p_limit integer); Type: ACL; Schema: public; Owner: oshal_owner
--

REVOKE ALL ON FUNCTION public.oshal_stale_dispatches(p_older_than interval, p_after_at timestamp with time zone, p_after_id uuid, p_limit integer) FROM PUBLIC;
GRANT ALL ON FUNCTION public.oshal_stale_dispatches(p_older_than interval, p_after_at timestamp with time zone, p_after_id uuid, p_limit integer) TO oshal_api;


--
-- Name: FUNCTION oshal_stalled_runs(p_older_than interval, p_limit integer); Type: ACL; Schema: public; Owner: oshal_owner
--

REVOKE ALL ON FUNCTION public.oshal_stalled_runs(p_older_than interval, p_limit integer) FROM PUBLIC;
GRANT ALL ON FUNCTION public.oshal_stalled_runs(p_older_than interval, p_limit integer) TO oshal_api;


--
-- Name: TABLE attempts; Type: ACL; Schema: public; Owner: oshal_owner
--

GRANT SELECT,INSERT ON TABLE public.attempts TO oshal_api;


--
-- Name: TABLE ledger; Type: ACL; Schema: public; Owner: oshal_owner
--

GRANT SELECT,INSERT ON TABLE public.ledger TO oshal_api;
GRANT SELECT ON TABLE public.ledger TO oshal_report;


--
-- Name: COLUMN ledger.over_reservation_micros; Type: ACL; Schema: public; Owner: oshal_owner
--

GRANT UPDATE(over_reservation_micros) ON TABLE public.ledger TO oshal_api;


--
-- Name: COLUMN ledger.settled_late; Type: ACL; Schema: public; Owner: oshal_owner
--

GRANT UPDATE(settled_late) ON TABLE public.ledger TO oshal_api;


--
-- Name: TABLE phases; Type: ACL; Schema: public; Owner: oshal_owner
--

GRANT SELECT,INSERT ON TABLE public.phases TO oshal_api;


--
-- Name: COLUMN phases.status; Type: ACL; Schema: public; Owner: oshal_owner
--

GRANT UPDATE(status) ON TABLE public.phases TO oshal_api;


--
-- Name: COLUMN phases.attempt; Type: ACL; Schema: public; Owner: oshal_owner
--

GRANT UPDATE(attempt) ON TABLE public.phases TO oshal_api;


--
-- Name: COLUMN phases.dispatched_at; Type: ACL; Schema: public; Owner: oshal_owner
--

GRANT UPDATE(dispatched_at) ON TABLE public.phases TO oshal_api;


--
-- Name: COLUMN phases.updated_at; Type: ACL; Schema: public; Owner: oshal_owner
--

GRANT UPDATE(updated_at) ON TABLE public.phases TO oshal_api;


--
-- Name: TABLE tickets; Type: ACL; Schema: public; Owner: oshal_owner
--

GRANT SELECT,INSERT ON TABLE public.tickets TO oshal_api;
GRANT SELECT ON TABLE public.tickets TO oshal_report;


--
-- Name: COLUMN tickets.status; Type: ACL; Schema: public; Owner: oshal_owner
--

GRANT UPDATE(status) ON TABLE public.tickets TO oshal_api;


--
-- Name: COLUMN tickets.result; Type: ACL; Schema: public; Owner: oshal_owner
--

GRANT UPDATE(result) ON TABLE public.tickets TO oshal_api;


--
-- Name: COLUMN tickets.error; Type: ACL; Schema: public; Owner: oshal_owner
--

GRANT UPDATE(error) ON TABLE public.tickets TO oshal_api;


--
-- Name: COLUMN tickets.finished_at; Type: ACL; Schema: public; Owner: oshal_owner
--

GRANT UPDATE(finished_at) ON TABLE public.tickets TO oshal_api;


--
-- Name: COLUMN tickets.phase; Type: ACL; Schema: public; Owner: oshal_owner
--

GRANT UPDATE(phase) ON TABLE public.tickets TO oshal_api;


--
-- Name: COLUMN tickets.status_reason; Type: ACL; Schema: public; Owner: oshal_owner
--

GRANT UPDATE(status_reason) ON TABLE public.tickets TO oshal_api;


--
-- Name: COLUMN tickets.resume_status; Type: ACL; Schema: public; Owner: oshal_owner
--

GRANT UPDATE(resume_status) ON TABLE public.tickets TO oshal_api;


--
-- Name: TABLE ticket_view; Type: ACL; Schema: public; Owner: oshal_owner
--

GRANT SELECT ON TABLE public.ticket_view TO oshal_api;


--
-- Name: FUNCTION oshal_ticket(p_tenant uuid, p_ticket uuid); Type: ACL; Schema: public; Owner: oshal_owner
--

REVOKE ALL ON FUNCTION public.oshal_ticket(p_tenant uuid, p_ticket uuid) FROM PUBLIC;
GRANT ALL ON FUNCTION public.oshal_ticket(p_tenant uuid, p_ticket uuid) TO oshal_api;


--
-- Name: FUNCTION oshal_ticket_transition(); Type: ACL; Schema: public; Owner: oshal_owner
--

REVOKE ALL ON FUNCTION public.oshal_ticket_transition() FROM PUBLIC;


--
-- Name: FUNCTION oshal_tool_call(p_tenant uuid, p_ticket uuid, p_bot text, p_connector text, p_operation text, p_digest text, p_grant uuid, p_arguments_hash text, p_expires timestamp with time zone); Type: ACL; Schema: public; Owner: oshal_owner
--

REVOKE ALL ON FUNCTION public.oshal_tool_call(p_tenant uuid, p_ticket uuid, p_bot text, p_connector text, p_operation text, p_digest text, p_grant uuid, p_arguments_hash text, p_expires timestamp with time zone) FROM PUBLIC;
GRANT ALL ON FUNCTION public.oshal_tool_call(p_tenant uuid, p_ticket uuid, p_bot text, p_connector text, p_operation text, p_digest text, p_grant uuid, p_arguments_hash text, p_expires timestamp with time zone) TO oshal_api;


--
-- Name: FUNCTION oshal_window(p_period text, p_at timestamp with time zone); Type: ACL; Schema: public; Owner: oshal_owner
--

REVOKE ALL ON FUNCTION public.oshal_window(p_period text, p_at timestamp with time zone) FROM PUBLIC;
GRANT ALL ON FUNCTION public.oshal_window(p_period text, p_at timestamp with time zone) TO oshal_api;


--
-- Name: TABLE api_keys; Type: ACL; Schema: public; Owner: oshal_owner
--

GRANT SELECT,INSERT ON TABLE public.api_keys TO oshal_api;


--
-- Name: COLUMN api_keys.revoked_at; Type: ACL; Schema: public; Owner: oshal_owner
--

GRANT UPDATE(revoked_at) ON TABLE public.api_keys TO oshal_api;


--
-- Name: TABLE approvals; Type: ACL; Schema: public; Owner: oshal_owner
--

GRANT SELECT,INSERT ON TABLE public.approvals TO oshal_api;


--
-- Name: COLUMN approvals.status; Type: ACL; Schema: public; Owner: oshal_owner
--

GRANT UPDATE(status) ON TABLE public.approvals TO oshal_api;


--
-- Name: COLUMN approvals.decided_by; Type: ACL; Schema: public; Owner: oshal_owner
--

GRANT UPDATE(decided_by) ON TABLE public.approvals TO oshal_api;


--
-- Name: COLUMN approvals.decided_at; Type: ACL; Schema: public; Owner: oshal_owner
--

GRANT UPDATE(decided_at) ON TABLE public.approvals TO oshal_api;


--
-- Name: COLUMN approvals.reason; Type: ACL; Schema: public; Owner: oshal_owner
--

GRANT UPDATE(reason) ON TABLE public.approvals TO oshal_api;


--
-- Name: TABLE artifacts; Type: ACL; Schema: public; Owner: oshal_owner
--

GRANT SELECT,INSERT ON TABLE public.artifacts TO oshal_api;


--
-- Name: TABLE bots; Type: ACL; Schema: public; Owner: oshal_owner
--

GRANT SELECT ON TABLE public.bots TO oshal_api;
GRANT SELECT ON TABLE public.bots TO oshal_report;


--
-- Name: TABLE budget_usage; Type: ACL; Schema: public; Owner: oshal_owner
--

GRANT SELECT,INSERT ON TABLE public.budget_usage TO oshal_api;
GRANT SELECT ON TABLE public.budget_usage TO oshal_report;


--
-- Name: COLUMN budget_usage.spent; Type: ACL; Schema: public; Owner: oshal_owner
--

GRANT UPDATE(spent) ON TABLE public.budget_usage TO oshal_api;


--
-- Name: COLUMN budget_usage.reserved; Type: ACL; Schema: public; Owner: oshal_owner
--

GRANT UPDATE(reserved) ON TABLE public.budget_usage TO oshal_api;


--
-- Name: COLUMN budget_usage.soft_notified; Type: ACL; Schema: public; Owner: oshal_owner
--

GRANT UPDATE(soft_notified) ON TABLE public.budget_usage TO oshal_api;


--
-- Name: TABLE budgets; Type: ACL; Schema: public; Owner: oshal_owner
--

GRANT SELECT,INSERT,DELETE ON TABLE public.budgets TO oshal_api;
GRANT SELECT ON TABLE public.budgets TO oshal_report;


--
-- Name: COLUMN budgets.limit_micros; Type: ACL; Schema: public; Owner: oshal_owner
--

GRANT UPDATE(limit_micros) ON TABLE public.budgets TO oshal_api;


--
-- Name: COLUMN budgets.soft_micros; Type: ACL; Schema: public; Owner: oshal_owner
--

GRANT UPDATE(soft_micros) ON TABLE public.budgets TO oshal_api;


--
-- Name: COLUMN budgets.created_by; Type: ACL; Schema: public; Owner: oshal_owner
--

GRANT UPDATE(created_by) ON TABLE public.budgets TO oshal_api;


--
-- Name: COLUMN budgets.updated_at; Type: ACL; Schema: public; Owner: oshal_owner
--

GRANT UPDATE(updated_at) ON TABLE public.budgets TO oshal_api;


--
-- Name: COLUMN budgets.overrun_at; Type: ACL; Schema: public; Owner: oshal_owner
--

GRANT UPDATE(overrun_at) ON TABLE public.budgets TO oshal_api;


--
-- Name: COLUMN budgets.overrun_micros; Type: ACL; Schema: public; Owner: oshal_owner
--

GRANT UPDATE(overrun_micros) ON TABLE public.budgets TO oshal_api;


--
-- Name: COLUMN budgets.overrun_reason; Type: ACL; Schema: public; Owner: oshal_owner
--

GRANT UPDATE(overrun_reason) ON TABLE public.budgets TO oshal_api;


--
-- Name: TABLE connections; Type: ACL; Schema: public; Owner: oshal_owner
--

GRANT SELECT,INSERT,UPDATE ON TABLE public.connections TO oshal_api;


--
-- Name: TABLE connectors; Type: ACL; Schema: public; Owner: oshal_owner
--

GRANT SELECT,INSERT,UPDATE ON TABLE public.connectors TO oshal_api;


--
-- Name: TABLE credentials; Type: ACL; Schema: public; Owner: oshal_owner
--

GRANT SELECT,INSERT,DELETE ON TABLE public.credentials TO oshal_api;


--
-- Name: COLUMN credentials.ciphertext; Type: ACL; Schema: public; Owner: oshal_owner
--

GRANT UPDATE(ciphertext) ON TABLE public.credentials TO oshal_api;


--
-- Name: COLUMN credentials.data_key_id; Type: ACL; Schema: public; Owner: oshal_owner
--

GRANT UPDATE(data_key_id) ON TABLE public.credentials TO oshal_api;


--
-- Name: COLUMN credentials.version; Type: ACL; Schema: public; Owner: oshal_owner
--

GRANT UPDATE(version) ON TABLE public.credentials TO oshal_api;


--
-- Name: COLUMN credentials.updated_at; Type: ACL; Schema: public; Owner: oshal_owner
--

GRANT UPDATE(updated_at) ON TABLE public.credentials TO oshal_api;


--
-- Name: TABLE data_keys; Type: ACL; Schema: public; Owner: oshal_owner
--

GRANT SELECT,INSERT ON TABLE public.data_keys TO oshal_api;


--
-- Name: COLUMN data_keys.wrapped; Type: ACL; Schema: public; Owner: oshal_owner
--

GRANT UPDATE(wrapped) ON TABLE public.data_keys TO oshal_api;


--
-- Name: COLUMN data_keys.kek_id; Type: ACL; Schema: public; Owner: oshal_owner
--

GRANT UPDATE(kek_id) ON TABLE public.data_keys TO oshal_api;


--
-- Name: COLUMN data_keys.active; Type: ACL; Schema: public; Owner: oshal_owner
--

GRANT UPDATE(active) ON TABLE public.data_keys TO oshal_api;


--
-- Name: TABLE grants; Type: ACL; Schema: public; Owner: oshal_owner
--

GRANT SELECT,INSERT ON TABLE public.grants TO oshal_api;


--
-- Name: COLUMN grants.redeemed_at; Type: ACL; Schema: public; Owner: oshal_owner
--

GRANT UPDATE(redeemed_at) ON TABLE public.grants TO oshal_api;


--
-- Name: COLUMN grants.outcome; Type: ACL; Schema: public; Owner: oshal_owner
--

GRANT UPDATE(outcome) ON TABLE public.grants TO oshal_api;


--
-- Name: TABLE kill_switches; Type: ACL; Schema: public; Owner: oshal_owner
--

GRANT SELECT,INSERT,DELETE ON TABLE public.kill_switches TO oshal_api;


--
-- Name: TABLE ledger_daily; Type: ACL; Schema: public; Owner: oshal_owner
--

GRANT SELECT ON TABLE public.ledger_daily TO oshal_api;
GRANT SELECT ON TABLE public.ledger_daily TO oshal_report;


--
-- Name: TABLE ledger_totals; Type: ACL; Schema: public; Owner: oshal_owner
--

GRANT SELECT ON TABLE public.ledger_totals TO oshal_api;
GRANT SELECT ON TABLE public.ledger_totals TO oshal_report;


--
-- Name: TABLE prices; Type: ACL; Schema: public; Owner: oshal_owner
--

GRANT SELECT,INSERT ON TABLE public.prices TO oshal_api;
GRANT SELECT ON TABLE public.prices TO oshal_report;


--
-- Name: TABLE recordings; Type: ACL; Schema: public; Owner: oshal_owner
--

GRANT SELECT,INSERT ON TABLE public.recordings TO oshal_api;


--
-- Name: COLUMN recordings.request; Type: ACL; Schema: public; Owner: oshal_owner
--

GRANT UPDATE(request) ON TABLE public.recordings TO oshal_api;


--
-- Name: COLUMN recordings.response; Type: ACL; Schema: public; Owner: oshal_owner
--

GRANT UPDATE(response) ON TABLE public.recordings TO oshal_api;


--
-- Name: COLUMN recordings.usage; Type: ACL; Schema: public; Owner: oshal_owner
--

GRANT UPDATE(usage) ON TABLE public.recordings TO oshal_api;


--
-- Name: COLUMN recordings.started_at; Type: ACL; Schema: public; Owner: oshal_owner
--

GRANT UPDATE(started_at) ON TABLE public.recordings TO oshal_api;


--
-- Name: COLUMN recordings.duration_ms; Type: ACL; Schema: public; Owner: oshal_owner
--

GRANT UPDATE(duration_ms) ON TABLE public.recordings TO oshal_api;


--
-- Name: TABLE reservations; Type: ACL; Schema: public; Owner: oshal_owner
--

GRANT SELECT,INSERT ON TABLE public.reservations TO oshal_api;


--
-- Name: COLUMN reservations.status; Type: ACL; Schema: public; Owner: oshal_owner
--

GRANT UPDATE(status) ON TABLE public.reservations TO oshal_api;


--
-- Name: COLUMN reservations.actual; Type: ACL; Schema: public; Owner: oshal_owner
--

GRANT UPDATE(actual) ON TABLE public.reservations TO oshal_api;


--
-- Name: COLUMN reservations.expires_at; Type: ACL; Schema: public; Owner: oshal_owner
--

GRANT UPDATE(expires_at) ON TABLE public.reservations TO oshal_api;


--
-- Name: COLUMN reservations.settled_at; Type: ACL; Schema: public; Owner: oshal_owner
--

GRANT UPDATE(settled_at) ON TABLE public.reservations TO oshal_api;


--
-- Name: TABLE schedule_fires; Type: ACL; Schema: public; Owner: oshal_owner
--

GRANT SELECT,INSERT ON TABLE public.schedule_fires TO oshal_api;


--
-- Name: TABLE schedules; Type: ACL; Schema: public; Owner: oshal_owner
--

GRANT SELECT,INSERT ON TABLE public.schedules TO oshal_api;


--
-- Name: COLUMN schedules.cron; Type: ACL; Schema: public; Owner: oshal_owner
--

GRANT UPDATE(cron) ON TABLE public.schedules TO oshal_api;


--
-- Name: COLUMN schedules.timezone; Type: ACL; Schema: public; Owner: oshal_owner
--

GRANT UPDATE(timezone) ON TABLE public.schedules TO oshal_api;


--
-- Name: COLUMN schedules.input; Type: ACL; Schema: public; Owner: oshal_owner
--

GRANT UPDATE(input) ON TABLE public.schedules TO oshal_api;


--
-- Name: COLUMN schedules.policy; Type: ACL; Schema: public; Owner: oshal_owner
--

GRANT UPDATE(policy) ON TABLE public.schedules TO oshal_api;


--
-- Name: COLUMN schedules.enabled; Type: ACL; Schema: public; Owner: oshal_owner
--

GRANT UPDATE(enabled) ON TABLE public.schedules TO oshal_api;


--
-- Name: COLUMN schedules.last_tick; Type: ACL; Schema: public; Owner: oshal_owner
--

GRANT UPDATE(last_tick) ON TABLE public.schedules TO oshal_api;


--
-- Name: COLUMN schedules.next_tick; Type: ACL; Schema: public; Owner: oshal_owner
--

GRANT UPDATE(next_tick) ON TABLE public.schedules TO oshal_api;


--
-- Name: TABLE security_findings; Type: ACL; Schema: public; Owner: oshal_owner
--

GRANT SELECT,INSERT,UPDATE ON TABLE public.security_findings TO oshal_api;


--
-- Name: TABLE security_scans; Type: ACL; Schema: public; Owner: oshal_owner
--

GRANT SELECT,INSERT ON TABLE public.security_scans TO oshal_api;


--
-- Name: TABLE tenants; Type: ACL; Schema: public; Owner: oshal_owner
--

GRANT SELECT,INSERT ON TABLE public.tenants TO oshal_api;
GRANT SELECT ON TABLE public.tenants TO oshal_report;


--
-- Name: TABLE ticket_events; Type: ACL; Schema: public; Owner: oshal_owner
--

GRANT SELECT,INSERT ON TABLE public.ticket_events TO oshal_api;
GRANT SELECT ON TABLE public.ticket_events TO oshal_report;


--
-- Name: TABLE ticket_transitions; Type: ACL; Schema: public; Owner: oshal_owner
--

GRANT SELECT ON TABLE public.ticket_transitions TO oshal_api;


--
-- Name: TABLE tool_policies; Type: ACL; Schema: public; Owner: oshal_owner
--

GRANT SELECT,INSERT,UPDATE ON TABLE public.tool_policies TO oshal_api;


--
-- Name: TABLE workflow_definitions; Type: ACL; Schema: public; Owner: oshal_owner
--

GRANT SELECT,INSERT ON TABLE public.workflow_definitions TO oshal_api;


--
-- Name: TABLE workflow_runs; Type: ACL; Schema: public; Owner: oshal_owner
--

GRANT SELECT,INSERT ON TABLE public.workflow_runs TO oshal_api;
GRANT SELECT ON TABLE public.workflow_runs TO oshal_report;


--
-- Name: COLUMN workflow_runs.state; Type: ACL; Schema: public; Owner: oshal_owner
--

GRANT UPDATE(state) ON TABLE public.workflow_runs TO oshal_api;


--
-- Name: COLUMN workflow_runs.finished; Type: ACL; Schema: public; Owner: oshal_owner
--

GRANT UPDATE(finished) ON TABLE public.workflow_runs TO oshal_api;


--
-- Name: COLUMN workflow_runs.updated_at; Type: ACL; Schema: public; Owner: oshal_owner
--

GRANT UPDATE(updated_at) ON TABLE public.workflow_runs TO oshal_api;


--
-- PostgreSQL database dump complete
--


