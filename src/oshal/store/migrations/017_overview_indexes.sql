-- The console's overview (issue 14) counts a tenant's tickets of the last 24 hours by status and hour finished, and
-- sums today's spend per bot, on every page load. At 100k tickets a day each read visited that many heap rows; these
-- indexes keep the same keys as the ones they replace (every plan that used those still can) and carry the columns
-- those reads need, so they are answered from the index alone (index-only scans).
-- Writes: a finishing ticket changes status and finished_at, which already puts a new entry in every index of
-- tickets (status is in partial index predicates, so the update is never HOT); ledger rows are written once.
DROP INDEX tickets_tenant_id;
CREATE INDEX tickets_tenant_id ON tickets (tenant_id, id DESC) INCLUDE (status, finished_at);
DROP INDEX ledger_tenant_created;
CREATE INDEX ledger_tenant_created ON ledger (tenant_id, created_at DESC) INCLUDE (bot, cost_micros);
