-- requires: oshal_isolate_tenants, oshal_bars_partition
-- Bars: a tenant's time series of OHLCV bars (any application's market data), one row per (symbol, timeframe,
-- start). Prices are integers in the series' minor units (cents for a dollar price); what a unit means is the
-- writer's convention, the store only keeps low <= open, close <= high. Partitioned by RANGE of the bar's start,
-- one partition a year (oshal_bars_partition), so a range scan touches only its years and old years can be
-- detached whole; the primary key's index serves every (symbol, timeframe, time range) read.
CREATE TABLE bars (
    tenant_id   uuid NOT NULL REFERENCES tenants (id),
    symbol      text NOT NULL CHECK (char_length(symbol) <= 32
                    AND symbol ~ '^[A-Za-z0-9][A-Za-z0-9._:-]*(/[A-Za-z0-9][A-Za-z0-9._:-]*)*$'),
    timeframe   text NOT NULL CHECK (timeframe ~ '^[1-9][0-9]{0,3}(s|m|h|d|w|mo)$'),
    start       timestamptz NOT NULL,
    open        bigint NOT NULL,
    high        bigint NOT NULL,
    low         bigint NOT NULL,
    close       bigint NOT NULL,
    volume      bigint NOT NULL CHECK (volume >= 0),
    source      text NOT NULL DEFAULT '' CHECK (char_length(source) <= 100),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT bars_ohlc CHECK (low <= open AND low <= close AND high >= open AND high >= close),
    PRIMARY KEY (tenant_id, symbol, timeframe, start)
) PARTITION BY RANGE (start);

-- Before 2000 in one partition (old daily history is small); a year each from 2000 to 2035; anything later
-- (or a year not yet added) in the DEFAULT partition until a later migration adds its year.
CREATE TABLE bars_before_2000 PARTITION OF bars FOR VALUES FROM (MINVALUE) TO ('2000-01-01 00:00:00+00');
CREATE TABLE bars_default PARTITION OF bars DEFAULT;
SELECT oshal_isolate_tenants('bars', 'bars_before_2000', 'bars_default');
SELECT oshal_bars_partition(year) FROM generate_series(2000, 2035) AS year;

-- The API reads through the parent only (partitions hold no grants of their own); bars are written by upsert and
-- never deleted through the API.
GRANT SELECT, INSERT ON bars TO oshal_api;
GRANT UPDATE (open, high, low, close, volume, source, updated_at) ON bars TO oshal_api;
