"""Bars over the API: bulk upsert of one series, range reads with a cursor, the listing of series, the refusals
(field by field), and tenant isolation."""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx

from conftest import Platform, make_tenant
from oshal.control.bars import MAX_BARS_PER_REQUEST

DAY = dt.timedelta(days=1)
FIRST = dt.datetime(2015, 12, 28, tzinfo=dt.UTC)


def _bar(start: dt.datetime, close: int, *, volume: int = 1000) -> dict[str, Any]:
    return {"start": start.isoformat().replace("+00:00", "Z"), "open": close - 10, "high": close + 20,
            "low": close - 30, "close": close, "volume": volume}


def _daily(n: int, first: dt.datetime = FIRST, close: int = 10_000) -> list[dict[str, Any]]:
    return [_bar(first + i * DAY, close + i) for i in range(n)]


def _put(http: httpx.Client, path: str, bars: list[dict[str, Any]], source: str = "test",
         status: int = 200) -> dict[str, Any]:
    response = http.put(f"/v1/bars/{path}", json={"bars": bars, "source": source})
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    return body


def _pages(http: httpx.Client, path: str, **params: Any) -> list[list[dict[str, Any]]]:
    pages, cursor = [], None
    while True:
        response = http.get(f"/v1/bars/{path}", params={**params, **({"cursor": cursor} if cursor else {})})
        assert response.status_code == 200, response.text
        body = response.json()
        pages.append(body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            return pages


def test_an_operator_stores_a_series_and_reads_it_back_by_range_and_page(platform: Platform) -> None:
    ops = make_tenant(platform, "bars-ops", role="operator")
    bars = _daily(10)  # 2015-12-28 .. 2016-01-06: two yearly partitions
    assert _put(ops.http, "AAPL/1d", bars) == {"symbol": "AAPL", "timeframe": "1d", "received": 10, "inserted": 10,
                                               "updated": 0, "unchanged": 0}
    pages = _pages(ops.http, "AAPL/1d", limit=3)
    assert [len(p) for p in pages] == [3, 3, 3, 1]
    got = [bar for page in pages for bar in page]
    assert [(b["open"], b["high"], b["low"], b["close"], b["volume"]) for b in got] == [
        (b["open"], b["high"], b["low"], b["close"], b["volume"]) for b in bars]
    assert [dt.datetime.fromisoformat(b["start"]) for b in got] == [FIRST + i * DAY for i in range(10)]
    assert {b["source"] for b in got} == {"test"}

    # from is inclusive, to exclusive; a date without an offset is UTC
    ranged = _pages(ops.http, "AAPL/1d", **{"from": "2015-12-31", "to": "2016-01-03T00:00:00Z"})
    assert [b["start"][:10] for b in ranged[0]] == ["2015-12-31", "2016-01-01", "2016-01-02"]
    assert _pages(ops.http, "AAPL/1d", **{"from": "2020-01-01"}) == [[]]
    assert _pages(ops.http, "MSFT/1d") == [[]]  # an unknown series is empty


def test_storing_the_same_bars_again_changes_nothing_and_a_changed_bar_replaces_its_start(platform: Platform) -> None:
    ops = make_tenant(platform, "bars-again", role="operator")
    bars = _daily(5)
    _put(ops.http, "TSLA/1d", bars)
    before = _pages(ops.http, "TSLA/1d")[0]
    again = _put(ops.http, "TSLA/1d", bars)
    assert (again["inserted"], again["updated"], again["unchanged"]) == (0, 0, 5)
    assert _pages(ops.http, "TSLA/1d")[0] == before  # not even updated_at moved

    changed = [*bars[:4], {**bars[4], "close": bars[4]["close"] + 1}, _bar(FIRST + 5 * DAY, 20_000)]
    counts = _put(ops.http, "TSLA/1d", changed)
    assert (counts["inserted"], counts["updated"], counts["unchanged"]) == (1, 1, 4)
    after = _pages(ops.http, "TSLA/1d")[0]
    assert after[:4] == before[:4]
    assert after[4]["close"] == bars[4]["close"] + 1 and after[4]["updated_at"] > before[4]["updated_at"]
    assert len(after) == 6
    # the source is part of what a bar says: the same prices from another source replace it
    resourced = _put(ops.http, "TSLA/1d", changed[:2], source="fix")
    assert (resourced["updated"], resourced["unchanged"]) == (2, 0)
    assert [b["source"] for b in _pages(ops.http, "TSLA/1d")[0]] == ["fix", "fix", "test", "test", "test", "test"]


def test_inconsistent_or_repeated_bars_are_refused_field_by_field_and_nothing_is_stored(platform: Platform) -> None:
    ops = make_tenant(platform, "bars-bad", role="operator")
    bars = _daily(4)
    bars[1] = {**bars[1], "high": bars[1]["close"] - 1}  # below its close
    bars[2] = {**bars[2], "low": bars[2]["open"] + 1}  # above its open
    bars[3] = {**bars[3], "start": bars[0]["start"]}  # the start of bars[0] again
    refused = ops.http.put("/v1/bars/AAPL/1d", json={"bars": bars})
    assert refused.status_code == 422, refused.text
    where = {(tuple(d["loc"]), d["type"]) for d in refused.json()["details"]}
    assert where == {(("body", "bars", 1, "high"), "bar_inconsistent"),
                     (("body", "bars", 2, "low"), "bar_inconsistent"),
                     (("body", "bars", 3, "start"), "bar_inconsistent")}
    assert "repeats bars[0]" in refused.json()["message"]
    assert _pages(ops.http, "AAPL/1d") == [[]]

    naive = ops.http.put("/v1/bars/AAPL/1d", json={"bars": [{**_daily(1)[0], "start": "2016-01-04T00:00:00"}]})
    assert naive.status_code == 422 and naive.json()["details"][0]["loc"] == ["body", "bars", 0, "start"]
    negative = ops.http.put("/v1/bars/AAPL/1d", json={"bars": [{**_daily(1)[0], "volume": -1}]})
    assert negative.status_code == 422 and negative.json()["details"][0]["loc"] == ["body", "bars", 0, "volume"]
    extra = ops.http.put("/v1/bars/AAPL/1d", json={"bars": [{**_daily(1)[0], "vwap": 1}]})
    assert extra.status_code == 422 and extra.json()["details"][0]["loc"] == ["body", "bars", 0, "vwap"]


def test_a_request_over_the_cap_is_refused_whole_with_how_to_send_it(platform: Platform) -> None:
    ops = make_tenant(platform, "bars-cap", role="operator")
    too_many = [_bar(dt.datetime(2001, 1, 1, tzinfo=dt.UTC) + i * dt.timedelta(minutes=1), 100)
                for i in range(MAX_BARS_PER_REQUEST + 1)]
    refused = ops.http.put("/v1/bars/ES/1m", json={"bars": too_many})
    assert refused.status_code == 422, refused.text
    assert refused.json()["details"][0]["loc"] == ["body", "bars"]
    assert f"at most {MAX_BARS_PER_REQUEST}" in refused.json()["message"] and "chunks" in refused.json()["message"]
    assert _put(ops.http, "ES/1m", too_many[:MAX_BARS_PER_REQUEST])["inserted"] == MAX_BARS_PER_REQUEST


def test_symbols_with_a_slash_and_bad_names_in_the_path(platform: Platform) -> None:
    ops = make_tenant(platform, "bars-names", role="operator")
    _put(ops.http, "BTC/USDT/1h", [_bar(FIRST + i * dt.timedelta(hours=1), 4_300_000) for i in range(3)])
    _put(ops.http, "ETH/USDT:USDT/1h", [_bar(FIRST, 250_000)])
    assert len(_pages(ops.http, "BTC/USDT/1h")[0]) == 3
    assert ops.http.get("/v1/bars/BTC%2FUSDT/1h").json()["symbol"] == "BTC/USDT"
    for path, field in (("A$PL/1d", "symbol"), ("BTC//USDT/1h", "symbol"), ("AAPL/1day", "timeframe"),
                        ("AAPL/0d", "timeframe"), (f"{'X' * 33}/1d", "symbol")):
        refused = ops.http.get(f"/v1/bars/{path}")
        assert refused.status_code == 422, (path, refused.text)
        assert refused.json()["details"][0]["loc"] == ["path", field], path
    assert ops.http.get("/v1/bars/AAPL/1d", params={"cursor": "yesterday"}).status_code == 422
    assert ops.http.get("/v1/bars", params={"cursor": "no-separator"}).status_code == 422


def test_the_listing_counts_each_series_with_its_first_and_last_bar(platform: Platform) -> None:
    ops = make_tenant(platform, "bars-list", role="operator")
    _put(ops.http, "AAPL/1d", _daily(7))
    _put(ops.http, "AAPL/1h", [_bar(FIRST + i * dt.timedelta(hours=1), 10_000) for i in range(24)])
    _put(ops.http, "BTC/USDT/1d", _daily(2, first=dt.datetime(2041, 1, 1, tzinfo=dt.UTC)))  # default partition
    listed = ops.http.get("/v1/bars").json()
    assert [(s["symbol"], s["timeframe"], s["bars"]) for s in listed["items"]] == [
        ("AAPL", "1d", 7), ("AAPL", "1h", 24), ("BTC/USDT", "1d", 2)]
    aapl = listed["items"][0]
    assert dt.datetime.fromisoformat(aapl["first"]) == FIRST
    assert dt.datetime.fromisoformat(aapl["last"]) == FIRST + 6 * DAY
    assert listed["next_cursor"] is None

    first = ops.http.get("/v1/bars", params={"limit": 2}).json()
    rest = ops.http.get("/v1/bars", params={"limit": 2, "cursor": first["next_cursor"]}).json()
    assert [s["timeframe"] for s in first["items"]] == ["1d", "1h"] and first["next_cursor"] == "AAPL@1h"
    assert [s["symbol"] for s in rest["items"]] == ["BTC/USDT"] and rest["next_cursor"] is None
    only = ops.http.get("/v1/bars", params={"symbol": "BTC/USDT"}).json()["items"]
    assert [(s["symbol"], s["bars"]) for s in only] == [("BTC/USDT", 2)]


def test_members_read_and_another_tenant_sees_none_of_it(platform: Platform) -> None:
    a = make_tenant(platform, "bars-a", role="operator")
    b = make_tenant(platform, "bars-b", role="operator")
    _put(a.http, "AAPL/1d", _daily(3, close=11_111))
    with platform.client() as admin:
        member = admin.post("/v1/keys", json={"tenant": a.tenant_id, "role": "member", "name": "reader"}).json()
    with platform.client(member["key"]) as reader:
        assert len(_pages(reader, "AAPL/1d")[0]) == 3
        assert reader.put("/v1/bars/AAPL/1d", json={"bars": _daily(1)}).status_code == 403

    assert b.http.get("/v1/bars").json() == {"items": [], "next_cursor": None}
    assert _pages(b.http, "AAPL/1d") == [[]]
    _put(b.http, "AAPL/1d", _daily(3, close=22_222))  # B's own series of the same name
    assert {bar["close"] for bar in _pages(a.http, "AAPL/1d")[0]} == {11_111, 11_112, 11_113}
    assert {bar["close"] for bar in _pages(b.http, "AAPL/1d")[0]} == {22_222, 22_223, 22_224}
