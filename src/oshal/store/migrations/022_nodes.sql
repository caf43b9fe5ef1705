-- requires: oshal_isolate_tenants
-- Remote nodes (issue 17). A platform operator mints a short-lived, single-use enrollment code for one bot; a node
-- on another machine redeems it once for that bot's identity: a Redis ACL user of its own (the bot's permissions)
-- and a tool-gateway token of its own. Only SHA-256 digests of the code and of the token are kept; the node's
-- Redis password is derived (like a bot's), so a Redis that lost its users can be given them back. Nodes are
-- platform state: their rows belong to the system tenant, so no other tenant's transaction ever sees one.
CREATE TABLE nodes (
    id               uuid PRIMARY KEY,
    tenant_id        uuid NOT NULL REFERENCES tenants (id),
    bot              text NOT NULL CHECK (bot ~ '^[a-z][a-z0-9-]{0,39}$'),
    label            text NOT NULL DEFAULT '' CHECK (char_length(label) <= 100),
    code_digest      bytea NOT NULL UNIQUE CHECK (octet_length(code_digest) = 32),
    code_expires_at  timestamptz NOT NULL,
    created_by       text NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    joined_at        timestamptz,
    joined_from      text NOT NULL DEFAULT '' CHECK (char_length(joined_from) <= 200),
    hostname         text NOT NULL DEFAULT '' CHECK (char_length(hostname) <= 255),
    token_digest     bytea UNIQUE CHECK (octet_length(token_digest) = 32),
    revoked_at       timestamptz,
    revoked_by       text,
    last_seen_at     timestamptz,
    CHECK (code_expires_at > created_at),
    CHECK ((joined_at IS NULL) = (token_digest IS NULL))
);
CREATE INDEX nodes_created ON nodes (created_at DESC);

SELECT oshal_isolate_tenants('nodes');
-- No DELETE: a node's row is its history (enrolled, joined, revoked); revoking is an UPDATE.
GRANT SELECT, INSERT ON nodes TO oshal_api;
GRANT UPDATE (joined_at, joined_from, hostname, token_digest, revoked_at, revoked_by, last_seen_at) ON nodes
    TO oshal_api;
