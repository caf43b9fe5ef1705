"""Application records over the API: create-if-absent (201 / 200 same body / 409 different body), reads, write-order
paging, name and size checks, who may write, and tenant isolation."""

from __future__ import annotations

from typing import Any

from conftest import Platform, make_tenant

BASE = "/v1/apps/trading/records"


def _put(http: Any, collection: str, key: str, body: Any) -> Any:
    return http.put(f"{BASE}/{collection}/{key}", json=body)


def test_a_record_is_created_once_and_a_retry_returns_it_while_a_different_body_conflicts(platform: Platform) -> None:
    ops = make_tenant(platform, "rec-ops", role="operator")
    order = {"client_order_id": "o-1", "symbol": "AAPL", "side": "buy", "quantity": 10}
    created = _put(ops.http, "orders", "o-1", order)
    assert created.status_code == 201, created.text
    stored = created.json()
    assert (stored["app"], stored["collection"], stored["key"], stored["body"]) == ("trading", "orders", "o-1", order)
    assert stored["created_by"] == ops.http.get("/v1/whoami").json()["key_id"]

    # the same body again, keys in another order: the stored record, unchanged
    again = _put(ops.http, "orders", "o-1", dict(reversed(list(order.items()))))
    assert again.status_code == 200, again.text
    assert again.json() == stored

    different = _put(ops.http, "orders", "o-1", {**order, "quantity": 11})
    assert different.status_code == 409, different.text
    assert different.json()["error"] == "conflict" and "different body" in different.json()["message"]
    assert ops.http.get(f"{BASE}/orders/o-1").json()["body"]["quantity"] == 10

    missing = ops.http.get(f"{BASE}/orders/o-2")
    assert missing.status_code == 404 and "o-2" in missing.json()["message"]


def test_a_collection_pages_in_write_order_both_ways(platform: Platform) -> None:
    ops = make_tenant(platform, "rec-pages", role="operator")
    keys = ["zeta", "alpha", "mid.2016-03-01", "b_2"]
    for i, key in enumerate(keys):
        assert _put(ops.http, "fills", key, {"n": i}).status_code == 201
    _put(ops.http, "other", "alpha", {"n": "elsewhere"})

    seen: list[str] = []
    after = None
    while True:
        page = ops.http.get(f"{BASE}/fills", params={"limit": 3, **({"after": after} if after else {})}).json()
        seen += [r["key"] for r in page["items"]]
        after = page["next_cursor"]
        if after is None:
            break
    assert seen == keys
    newest = ops.http.get(f"{BASE}/fills", params={"order": "desc", "limit": 2}).json()
    assert [r["key"] for r in newest["items"]] == ["b_2", "mid.2016-03-01"]
    assert newest["next_cursor"] == "mid.2016-03-01"
    rest = ops.http.get(f"{BASE}/fills", params={"order": "desc", "after": newest["next_cursor"]}).json()
    assert [r["key"] for r in rest["items"]] == ["alpha", "zeta"]
    assert ops.http.get(f"{BASE}/empty").json() == {"items": [], "next_cursor": None}
    unknown = ops.http.get(f"{BASE}/fills", params={"after": "no-such-key"})
    assert unknown.status_code == 422 and "no-such-key" in unknown.json()["message"]


def test_names_and_sizes_are_checked_with_a_clear_message(platform: Platform) -> None:
    ops = make_tenant(platform, "rec-names", role="operator")
    for path in ("/v1/apps/Trading/records/fills/a", f"{BASE}/Fills/a", f"{BASE}/fills/UPPER",
                 f"{BASE}/fills/-dash", f"{BASE}/fills/{'k' * 201}"):
        refused = ops.http.put(path, json={"n": 1})
        assert refused.status_code == 422, (path, refused.text)
        assert "lowercase" in refused.text
    assert _put(ops.http, "fills", "k" * 200, {"n": 1}).status_code == 201
    assert _put(ops.http, "fills", "a-list", [1, 2]).status_code == 422  # a record's body is a JSON object
    big = _put(ops.http, "fills", "big", {"blob": "x" * (256 * 1024)})
    assert big.status_code == 413 and "256 KiB" in big.json()["message"]
    assert ops.http.get(f"{BASE}/fills/big").status_code == 404


def test_members_read_operators_write_and_tenants_never_meet(platform: Platform) -> None:
    a_ops = make_tenant(platform, "rec-a", role="operator")
    with platform.client() as admin:
        minted = admin.post("/v1/keys", json={"tenant": a_ops.tenant_id, "role": "member", "name": "a-reader"})
    a_member = platform.client(minted.json()["key"])
    b_ops = make_tenant(platform, "rec-b", role="operator")
    assert _put(a_ops.http, "fills", "f-1", {"secret": "a-only"}).status_code == 201

    assert a_member.get(f"{BASE}/fills/f-1").json()["body"] == {"secret": "a-only"}
    refused = _put(a_member, "fills", "f-2", {"n": 1})
    assert refused.status_code == 403
    assert a_member.get(f"{BASE}/fills/f-2").status_code == 404

    assert b_ops.http.get(f"{BASE}/fills/f-1").status_code == 404
    assert b_ops.http.get(f"{BASE}/fills").json()["items"] == []
    own = _put(b_ops.http, "fills", "f-1", {"secret": "b's own"})  # the same name in another tenant: its own record
    assert own.status_code == 201, own.text
    assert a_ops.http.get(f"{BASE}/fills/f-1").json()["body"] == {"secret": "a-only"}
    assert [r["body"] for r in b_ops.http.get(f"{BASE}/fills").json()["items"]] == [{"secret": "b's own"}]
    a_member.close()


def test_every_record_write_is_audited(platform: Platform) -> None:
    ops = make_tenant(platform, "rec-audit", role="operator")
    assert _put(ops.http, "switches", "main.00000001", {"halted": True}).status_code == 201
    entries = ops.http.get("/v1/audit").json()
    items = entries["items"] if isinstance(entries, dict) else entries
    assert any("/v1/apps/trading/records/switches/main.00000001" in str(e) for e in items), items
