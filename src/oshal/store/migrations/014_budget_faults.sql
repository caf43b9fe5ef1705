-- Spend that stays within its limit under faults.
--
-- * Paused work resumes whenever room returns (a call settling below its reservation, a released reservation, a
--   new window), oldest first and as many tickets as fit: each is estimated by the amount its refused call asked
--   for, and the room is held for it until its next call takes it over, so two passes never hand out one room.
-- * A reservation outlives its job: every call a ticket's bot makes extends the bot's open reservations on it.
-- * Cost no open reservation covered is flagged on its ledger row (a late result: settled_late; usage above the
--   reservation's bound: over_reservation_micros); when such cost (or that of a call that reserved nothing) takes
--   a budget past its limit, the budget is marked overrun, which pauses its scope until an operator sets it again.
--   This is judged by a trigger after the statement that writes ledger rows (oshal_ledger_coverage).

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

-- The functions are in sql/functions/ (oshal_reserve, oshal_budget_resume, oshal_ledger_coverage with its trigger,
-- oshal_budget_overruns, oshal_expire_reservations). What changed signature or went goes here (databases migrated
-- before dropped it here): oshal_reserve returns the hold it released; oshal_budget_resumable (change-based) is
-- superseded by oshal_budget_resume (room-based).
DROP FUNCTION IF EXISTS oshal_reserve(uuid, uuid, uuid, text, bigint, double precision, int, double precision);
DROP FUNCTION IF EXISTS oshal_budget_resumable(int, boolean);
CREATE INDEX reservations_bot_recent ON reservations (tenant_id, bot, created_at);
CREATE INDEX reservations_holds ON reservations (ticket_id) WHERE status = 'open' AND kind = 'hold';

GRANT UPDATE (expires_at) ON reservations TO oshal_api;
GRANT UPDATE (over_reservation_micros, settled_late) ON ledger TO oshal_api;
GRANT UPDATE (overrun_at, overrun_micros, overrun_reason) ON budgets TO oshal_api;
