-- The tool-call hot path as one statement: check the ticket, the connector and the bot's policy, issue the grant
-- and redeem it (both recorded and audited), and read the connection and the credential row, in one round trip.
-- Only calls whose policy is `auto` take this path; anything else (ask, off, a changed manifest, a missing or
-- expired connection, a killed bot, a replay ticket) returns without a grant and the caller takes the general
-- path, which explains the refusal (a replay answers from the original's recordings). SECURITY INVOKER: it sets
-- the tenant for its own transaction and RLS decides what it sees and writes.
CREATE OR REPLACE FUNCTION oshal_tool_call(p_tenant uuid, p_ticket uuid, p_bot text, p_connector text,
                                           p_operation text, p_digest text, p_grant uuid, p_arguments_hash text,
                                           p_expires timestamptz)
RETURNS TABLE (granted boolean, ticket_status text, created_by uuid, connector_state text, digest text,
               mode text, secret_name text, client_id text, connection_expires timestamptz,
               ciphertext bytea, credential_user uuid, data_key_id uuid, wrapped bytea, kek_id text)
LANGUAGE plpgsql AS $$
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
REVOKE ALL ON FUNCTION oshal_tool_call(uuid, uuid, text, text, text, text, uuid, text, timestamptz) FROM PUBLIC, oshal_api;
GRANT EXECUTE ON FUNCTION oshal_tool_call(uuid, uuid, text, text, text, text, uuid, text, timestamptz) TO oshal_api;
