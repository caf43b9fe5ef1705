-- SQL functions are defined once, in sql/functions/NAME.sql, and applied by the migrator after the migrations
-- (store/migrate.py); migrations hold schema changes only. Their old versions were applied by the migrations that
-- defined them; a signature that changed is dropped here, and its file creates the new one.

-- oshal_record_results takes one JSON array of records per kind, of these types (the fields of store/results.py's
-- AttemptRow and LedgerRow), instead of 28 parallel arrays.
CREATE TYPE oshal_attempt_row AS (
    phase_id     uuid,
    attempt      int,
    ticket_id    uuid,
    outcome      text,
    output       jsonb,
    error        text,
    consumer     text,
    deliveries   int,
    started_at   timestamptz,
    finished_at  timestamptz
);
CREATE TYPE oshal_ledger_row AS (
    call_id               text,
    ticket_id             uuid,
    phase_id              uuid,
    attempt               int,
    bot                   text,
    provider              text,
    model                 text,
    input_tokens          bigint,
    output_tokens         bigint,
    cached_read_tokens    bigint,
    cache_write_tokens    bigint,
    cost_micros           bigint,
    price_source          text,
    reasoning_tokens      bigint,
    computed_cost_micros  bigint,
    reported_cost_micros  bigint,
    reservation_id        uuid
);
DROP FUNCTION IF EXISTS oshal_record_results(uuid, uuid[], int[], uuid[], text[], text[], text[], text[], int[],
    timestamptz[], timestamptz[], text[], uuid[], uuid[], int[], text[], text[], text[], bigint[], bigint[], bigint[],
    bigint[], bigint[], text[], bigint[], bigint[], bigint[], uuid[]);
