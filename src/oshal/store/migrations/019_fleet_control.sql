-- Fleet control: what operators ask of the processes that run the bots, as desired state. The platform records the
-- order; whatever runs the nodes (`oshal up`'s supervisor, or an orchestrator) carries it out and records that it
-- did, so an order is visible as asked, then as applied.
CREATE TABLE fleet_controls (
    bot               text PRIMARY KEY REFERENCES bots (name) ON DELETE CASCADE,
    replicas          int CHECK (replicas BETWEEN 0 AND 64),  -- NULL: as many as the bot's manifest says
    restart_seq       bigint NOT NULL DEFAULT 0 CHECK (restart_seq >= 0),
    reason            text NOT NULL DEFAULT '',
    updated_by        text NOT NULL DEFAULT '',
    updated_at        timestamptz NOT NULL DEFAULT now(),
    applied_seq       bigint NOT NULL DEFAULT 0,
    applied_replicas  int,
    applied_at        timestamptz,
    applied_note      text NOT NULL DEFAULT ''
);

GRANT SELECT, INSERT ON fleet_controls TO oshal_api;
GRANT UPDATE (replicas, restart_seq, reason, updated_by, updated_at) ON fleet_controls TO oshal_api;

-- A connector an operator took out of service: calls are refused until it is enabled again, and enabling it keeps
-- its signature (unlike a change of its operations, which returns it to draft).
ALTER TABLE connectors ADD COLUMN disabled_reason text;
