-- Security: the hash-chained audit log, kill switches, Security Center findings, key usage, and least
-- privilege tightened (no function is executable by PUBLIC; the read-only reporting role's grants).

-- The audit log is one chain across the platform: each entry carries the hash of the previous one, so an
-- edited entry no longer matches its hash and a deleted one breaks the links. Entries are appended only through
-- oshal_audit (definer), which serialises on the chain head. Anchors (the head's seq and hash, MACed with a key
-- the database never sees) let a verifier detect a chain rewritten from some point on.
CREATE TABLE audit_log (
    seq        bigint PRIMARY KEY,
    tenant_id  uuid,
    at         timestamptz NOT NULL,
    actor      text NOT NULL,
    action     text NOT NULL,
    target     text NOT NULL DEFAULT '',
    detail     jsonb NOT NULL DEFAULT '{}',
    prev_hash  bytea NOT NULL,
    hash       bytea NOT NULL
);
CREATE INDEX audit_log_tenant ON audit_log (tenant_id, seq);
CREATE INDEX audit_log_action_at ON audit_log (action, at);

CREATE TABLE audit_chain (
    id           boolean PRIMARY KEY DEFAULT true CHECK (id),
    seq          bigint NOT NULL,
    hash         bytea NOT NULL,
    pruned_seq   bigint NOT NULL,
    pruned_hash  bytea NOT NULL
);
INSERT INTO audit_chain VALUES (true, 0, '\x0000000000000000000000000000000000000000000000000000000000000000',
                                0, '\x0000000000000000000000000000000000000000000000000000000000000000');

CREATE TABLE audit_anchors (
    seq   bigint PRIMARY KEY,
    hash  bytea NOT NULL,
    mac   bytea NOT NULL,
    at    timestamptz NOT NULL DEFAULT now()
);

-- The exact bytes an entry's hash covers. The time is in epoch microseconds and jsonb's text form is canonical,
-- so the same entry always hashes the same whatever the session's time zone.
CREATE FUNCTION oshal_audit_digest(p_prev bytea, p_seq bigint, p_at timestamptz, p_tenant uuid, p_actor text,
                                   p_action text, p_target text, p_detail jsonb) RETURNS bytea
LANGUAGE sql IMMUTABLE SET search_path = public, pg_temp AS $$
    SELECT sha256(p_prev || convert_to(concat_ws(chr(31), p_seq::text,
        floor(extract(epoch FROM p_at) * 1000000)::bigint::text, coalesce(p_tenant::text, ''),
        p_actor, p_action, p_target, p_detail::text), 'UTF8'))
$$;

CREATE FUNCTION oshal_audit(p_tenants uuid[], p_actors text[], p_actions text[], p_targets text[],
                            p_details jsonb[]) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
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

-- Append-only: no UPDATE, and DELETE only through the retention function below.
CREATE FUNCTION oshal_audit_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND current_setting('oshal.audit_prune', true) = 'on' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'the audit log is append-only (% refused)', TG_OP USING ERRCODE = 'OX403';
END $$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION oshal_audit_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION oshal_audit_append_only();

-- Every break in the chain: an entry whose hash does not match its content, a broken link, a gap, or a head that
-- does not match the last entry. No rows means the chain is intact.
CREATE FUNCTION oshal_audit_verify()
RETURNS TABLE (seq bigint, problem text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
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

CREATE FUNCTION oshal_audit_head()
RETURNS TABLE (seq bigint, hash bytea, pruned_seq bigint, entries bigint)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT c.seq, c.hash, c.pruned_seq, (SELECT count(*) FROM audit_log) FROM audit_chain c
$$;

-- Entries as stored, for export and for checking anchors; every tenant's (platform operators only: the API
-- checks that before calling).
CREATE FUNCTION oshal_audit_entries(p_after bigint, p_limit int)
RETURNS SETOF audit_log
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT * FROM audit_log WHERE seq > p_after ORDER BY seq LIMIT p_limit
$$;

CREATE FUNCTION oshal_audit_anchor(p_seq bigint, p_hash bytea, p_mac bytea) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
    INSERT INTO audit_anchors (seq, hash, mac) VALUES (p_seq, p_hash, p_mac) ON CONFLICT (seq) DO NOTHING
$$;

CREATE FUNCTION oshal_audit_hashes(p_seqs bigint[])
RETURNS TABLE (seq bigint, hash bytea)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT seq, hash FROM audit_log WHERE seq = ANY (p_seqs)
$$;

CREATE FUNCTION oshal_audit_anchors()
RETURNS SETOF audit_anchors
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT * FROM audit_anchors ORDER BY seq
$$;

-- Retention: entries before p_before go; the chain's new start is remembered so the rest still verifies. Never
-- younger than 30 days, whoever calls it, and the prune itself is an entry of the chain (it cannot go unseen).
CREATE FUNCTION oshal_audit_prune(p_before timestamptz) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    v_last bigint;
    v_hash bytea;
    v_count bigint;
BEGIN
    IF p_before > now() - interval '30 days' THEN
        RAISE EXCEPTION 'audit entries are kept at least 30 days (asked to prune before %)', p_before
            USING ERRCODE = 'OX403';
    END IF;
    PERFORM 1 FROM audit_chain FOR UPDATE;
    SELECT l.seq, l.hash INTO v_last, v_hash FROM audit_log l WHERE l.at < p_before ORDER BY l.seq DESC LIMIT 1;
    IF v_last IS NULL THEN
        RETURN 0;
    END IF;
    PERFORM set_config('oshal.audit_prune', 'on', true);
    DELETE FROM audit_log WHERE seq <= v_last;
    GET DIAGNOSTICS v_count = ROW_COUNT;
    PERFORM set_config('oshal.audit_prune', 'off', true);
    DELETE FROM audit_anchors WHERE seq <= v_last;
    UPDATE audit_chain SET pruned_seq = v_last, pruned_hash = v_hash;
    PERFORM oshal_audit(ARRAY[NULL::uuid], ARRAY['platform'], ARRAY['audit.pruned'], ARRAY[p_before::text],
                        ARRAY[jsonb_build_object('through_seq', v_last, 'entries', v_count)]);
    RETURN v_count;
END $$;

ALTER TABLE audit_log ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_log FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON audit_log FOR SELECT
    USING (tenant_id = NULLIF(current_setting('oshal.tenant_id', true), '')::uuid);
DO $$
BEGIN
    EXECUTE format('CREATE POLICY owner_chain ON audit_log TO %I USING (true) WITH CHECK (true)', current_user);
END $$;

-- Kill switches: 'global' or 'bot:<name>'. A row present means engaged; dispatch and tool calls stop.
CREATE TABLE kill_switches (
    scope       text PRIMARY KEY CHECK (scope = 'global' OR scope ~ '^bot:[a-z0-9][a-z0-9-]{0,62}$'),
    reason      text NOT NULL CHECK (length(reason) BETWEEN 1 AND 500),
    engaged_by  text NOT NULL,
    engaged_at  timestamptz NOT NULL DEFAULT now()
);

-- Phases a kill switch held (queued, not dispatched), across tenants, for dispatch on release.
CREATE FUNCTION oshal_held_phases(p_limit int)
RETURNS TABLE (tenant_id uuid, phase_id uuid, bot text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT tenant_id, id, bot FROM phases WHERE status = 'queued' ORDER BY updated_at LIMIT p_limit
$$;

-- Security Center findings, one row per fingerprint, owned by the platform's system tenant.
CREATE TABLE security_findings (
    fingerprint     text PRIMARY KEY,
    tenant_id       uuid NOT NULL REFERENCES tenants (id),
    scan            text NOT NULL,
    check_id        text NOT NULL,
    severity        text NOT NULL CHECK (severity IN ('info', 'low', 'medium', 'high', 'critical')),
    title           text NOT NULL,
    subject         text NOT NULL,
    remediation     text NOT NULL,
    evidence        jsonb NOT NULL DEFAULT '{}',
    status          text NOT NULL CHECK (status IN ('open', 'fixed')),
    triage          text NOT NULL CHECK (triage IN ('new', 'fix', 'accepted', 'false_positive')),
    accepted_until  timestamptz,
    assessed_by     text,
    assessment      text,
    ticket_id       uuid REFERENCES tickets (id),
    seen_count      int NOT NULL DEFAULT 1,
    first_seen      timestamptz NOT NULL DEFAULT now(),
    last_seen       timestamptz NOT NULL DEFAULT now(),
    fixed_at        timestamptz,
    reopened        int NOT NULL DEFAULT 0
);
CREATE INDEX security_findings_scan ON security_findings (tenant_id, scan, status);

CREATE TABLE security_scans (
    id          uuid PRIMARY KEY,
    tenant_id   uuid NOT NULL REFERENCES tenants (id),
    scan        text NOT NULL,
    started_at  timestamptz NOT NULL,
    finished_at timestamptz NOT NULL DEFAULT now(),
    found       int NOT NULL,
    opened      int NOT NULL,
    fixed       int NOT NULL,
    error       text
);
CREATE INDEX security_scans_recent ON security_scans (tenant_id, scan, finished_at DESC);

DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['security_findings', 'security_scans'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format(
            'CREATE POLICY tenant_isolation ON %I USING (tenant_id = NULLIF(current_setting(''oshal.tenant_id'', true), '''')::uuid) '
            'WITH CHECK (tenant_id = NULLIF(current_setting(''oshal.tenant_id'', true), '''')::uuid)', t);
    END LOOP;
END $$;

-- Key usage, for the access scan (unused keys, operators who never authenticate). Written in batches.
ALTER TABLE api_keys ADD COLUMN last_used_at timestamptz;
CREATE FUNCTION oshal_keys_used(p_ids uuid[]) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
    UPDATE api_keys SET last_used_at = now() WHERE id = ANY (p_ids)
$$;
DO $$
BEGIN
    EXECUTE format('CREATE POLICY owner_usage ON api_keys FOR UPDATE TO %I USING (true)', current_user);
END $$;

-- Platform-wide facts for the access and runtime scans, without giving the API role cross-tenant reads.
CREATE FUNCTION oshal_key_inventory()
RETURNS TABLE (id uuid, tenant_id uuid, prefix text, role text, name text, created_at timestamptz,
               expires_at timestamptz, revoked_at timestamptz, last_used_at timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT id, tenant_id, prefix, role, name, created_at, expires_at, revoked_at, last_used_at FROM api_keys
$$;

CREATE FUNCTION oshal_audit_counts(p_since timestamptz)
RETURNS TABLE (action text, actor text, n bigint)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT action, actor, count(*) FROM audit_log WHERE at >= p_since GROUP BY action, actor
$$;

-- A security finding's ticket is the one kind that reopens: done (fixed) goes back to escalated when the Security
-- Center sees the problem again. Every other ticket's done stays final.
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

-- Least privilege: no function is executable by PUBLIC; each runtime role gets exactly what it calls.
DO $$
DECLARE f regprocedure;
BEGIN
    FOR f IN SELECT p.oid::regprocedure FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
              WHERE n.nspname = 'public' LOOP
        EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
    END LOOP;
END $$;
GRANT EXECUTE ON FUNCTION
    oshal_audit(uuid[], text[], text[], text[], jsonb[]), oshal_audit_verify(), oshal_audit_head(),
    oshal_audit_entries(bigint, int), oshal_audit_anchor(bigint, bytea, bytea), oshal_audit_anchors(),
    oshal_audit_prune(timestamptz), oshal_keys_used(uuid[]), oshal_key_inventory(),
    oshal_audit_counts(timestamptz), oshal_audit_hashes(bigint[]), oshal_held_phases(int)
    TO oshal_api;
GRANT SELECT ON audit_log TO oshal_api;
GRANT SELECT, INSERT, DELETE ON kill_switches TO oshal_api;
GRANT SELECT, INSERT, UPDATE ON security_findings TO oshal_api;
GRANT SELECT, INSERT ON security_scans TO oshal_api;
