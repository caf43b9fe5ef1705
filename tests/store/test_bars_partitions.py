"""The bars table's partitions: by year of the bar's start, each isolated by tenant like the parent, reached only
through the parent, pruned by a range read, and a new year added (rows the DEFAULT partition took move into it)."""

from __future__ import annotations

import datetime as dt
import json

import psycopg
import pytest

from conftest import Platform, make_tenant

_PARTITIONS = """
SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) AS bound, c.relrowsecurity, c.relforcerowsecurity,
       (SELECT count(*) FROM pg_policy p WHERE p.polrelid = c.oid) AS policies, c.relacl::text AS acl
  FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
 WHERE i.inhparent = 'bars'::regclass ORDER BY c.relname
"""


def _bar(start: dt.datetime, close: int = 1000) -> dict[str, object]:
    return {"start": start.isoformat(), "open": close, "high": close + 5, "low": close - 5, "close": close,
            "volume": 7}


def test_bars_are_partitioned_by_year_and_every_partition_forces_tenant_isolation(platform: Platform) -> None:
    with platform.superuser() as conn:
        strategy = conn.execute("SELECT partstrat, pg_get_partkeydef('bars'::regclass) FROM pg_partitioned_table "
                                "WHERE partrelid = 'bars'::regclass").fetchone()
        parent = conn.execute("SELECT relrowsecurity, relforcerowsecurity FROM pg_class "
                              "WHERE oid = 'bars'::regclass").fetchone()
        partitions = conn.execute(_PARTITIONS).fetchall()
    assert strategy == ("r", "RANGE (start)")
    assert parent == (True, True)
    names = [p[0] for p in partitions]
    assert names == sorted(["bars_before_2000", "bars_default", *(f"bars_{y}" for y in range(2000, 2036))])
    bounds = {p[0]: p[1] for p in partitions}
    assert bounds["bars_default"] == "DEFAULT"
    assert bounds["bars_2015"] == ("FOR VALUES FROM ('2015-01-01 00:00:00+00') TO ('2016-01-01 00:00:00+00')")
    for name, _, enabled, forced, policies, acl in partitions:
        assert (enabled, forced, policies) == (True, True, 1), name
        assert "oshal_api" not in (acl or ""), f"{name} holds a grant of its own: the API reads the parent only"


def test_the_api_role_reaches_bars_only_through_the_parent(platform: Platform) -> None:
    ops = make_tenant(platform, "bars-part", role="operator")
    stored = ops.http.put("/v1/bars/AAPL/1d", json={"bars": [_bar(dt.datetime(2015, 3, 2, tzinfo=dt.UTC))]})
    assert stored.status_code == 200, stored.text
    with psycopg.connect(platform.engines.api_url) as conn:
        conn.execute("SELECT set_config('oshal.tenant_id', %s, true)", (ops.tenant_id,))
        assert conn.execute("SELECT count(*) FROM bars").fetchone() == (1,)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT count(*) FROM bars_2015")
        conn.rollback()
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("DELETE FROM bars")
    with platform.superuser() as conn:
        where = conn.execute("SELECT tableoid::regclass::text FROM bars").fetchall()
    assert where == [("bars_2015",)]


def test_a_range_read_scans_only_the_years_it_asks_for(platform: Platform) -> None:
    with platform.superuser() as conn:
        plan = conn.execute(
            "EXPLAIN (FORMAT JSON) SELECT * FROM bars WHERE tenant_id = gen_random_uuid() AND symbol = 'AAPL' "
            "AND timeframe = '1d' AND start >= '2015-06-01 00:00:00+00' AND start < '2016-02-01 00:00:00+00'"
        ).fetchone()
    assert plan is not None
    text = json.dumps(plan[0])
    scanned = sorted({name for name in ("bars_2014", "bars_2015", "bars_2016", "bars_2017", "bars_default",
                                        "bars_before_2000") if f'"{name}"' in text})
    assert scanned == ["bars_2015", "bars_2016"]


def test_adding_a_year_moves_the_bars_the_default_partition_took(platform: Platform) -> None:
    ops = make_tenant(platform, "bars-year", role="operator")
    other = make_tenant(platform, "bars-year-b", role="operator")
    in_2040 = [_bar(dt.datetime(2040, 1, 1, tzinfo=dt.UTC) + dt.timedelta(days=i), 1000 + i) for i in range(3)]
    in_2041 = [_bar(dt.datetime(2041, 6, 1, tzinfo=dt.UTC))]
    assert ops.http.put("/v1/bars/AAPL/1d", json={"bars": in_2040 + in_2041}).status_code == 200
    assert other.http.put("/v1/bars/AAPL/1d", json={"bars": in_2040[:1]}).status_code == 200
    try:
        with platform.owner() as conn:
            assert conn.execute("SELECT oshal_bars_partition(2040)").fetchone() == ("bars_2040",)
            assert conn.execute("SELECT oshal_bars_partition(2040)").fetchone() == ("bars_2040",)  # idempotent
        with platform.superuser() as conn:
            homes = conn.execute("SELECT tableoid::regclass::text, count(*) FROM bars "
                                 "GROUP BY 1 ORDER BY 1").fetchall()
            isolated = conn.execute("SELECT relrowsecurity, relforcerowsecurity, relacl::text FROM pg_class "
                                    "WHERE oid = 'bars_2040'::regclass").fetchone()
            default_forced = conn.execute("SELECT relforcerowsecurity FROM pg_class "
                                          "WHERE oid = 'bars_default'::regclass").fetchone()
        assert homes == [("bars_2040", 4), ("bars_default", 1)]
        assert isolated == (True, True, None) and default_forced == (True,)
        closes = [b["close"] for b in ops.http.get("/v1/bars/AAPL/1d").json()["items"]]
        assert closes == [1000, 1001, 1002, 1000]
        assert len(other.http.get("/v1/bars/AAPL/1d").json()["items"]) == 1
        with platform.owner() as conn, pytest.raises(psycopg.errors.RaiseException, match="by year"):
            conn.execute("SELECT oshal_bars_partition(1899)")
        with psycopg.connect(platform.engines.api_url) as conn, pytest.raises(
                psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT oshal_bars_partition(2042)")
    finally:
        with platform.superuser() as conn:
            conn.execute("DELETE FROM bars")
            conn.execute("DROP TABLE IF EXISTS bars_2040")
