"""The desk's live path on the running platform: orders reach Alpaca (a local server speaking its trading API's wire
format) from the execute bot through the tool gateway and the ``alpaca-trading`` connector with the tenant's stored
keys — only with both gates (OSHAL_TRADING_LIVE=1 on the service and the desk's live switch), after a person approved
the step unless autopilot, and exactly once however often the execute step runs; the fill Alpaca reports is booked
and traces back to its signal."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from conftest import REPO, Platform, TenantClient, make_tenant
from desk_support import all_records, desk, desk_config
from external.alpaca_trading import FakeAlpacaTrading
from oshal.connectors.manifest import ConnectorManifest
from oshal.connectors.publisher_keys import generate_keypair, private_key_pem, public_key_text
from oshal.connectors.signing import sign_manifest
from oshal.connectors.trust import TrustStore
from oshal_trading import alpaca_trading
from oshal_trading.bars import load_bundled
from oshal_trading.desk import DeskError, DeskService, trace, write_switches
from oshal_trading.ledger import CASH

TRADING_SPEC = next((folder / "shared" / "data" / "openapi" / "finance" / "alpaca-trading.yaml"
                     for folder in REPO.parents if (folder / "shared" / "data" / "openapi").is_dir()), None)
DAY = dt.date(2016, 1, 25)  # the desk's first orders (sma-cross 3/8 from 2016-01-04): buy AAPL and GOOGL
OPERATIONS = (alpaca_trading.PLACE, alpaca_trading.FIND)


@pytest.fixture
def alpaca(platform: Platform) -> Iterator[FakeAlpacaTrading]:
    """The operator's path: the connector imported from Alpaca's real trading spec (plus the look-up by client
    order id), pointed at the local server, its two order operations enabled (placing one is risky), signed by a
    trusted publisher and enabled."""
    assert TRADING_SPEC is not None, "../shared/data/openapi/finance/alpaca-trading.yaml is not beside the repo"
    with FakeAlpacaTrading() as server, platform.client() as admin:
        document = alpaca_trading.connector_document(yaml.safe_load(TRADING_SPEC.read_text()))
        imported = admin.post("/v1/connectors/import", json={"document": document, "id": alpaca_trading.CONNECTOR,
                                                              "publisher": "acme", "category": "finance",
                                                              "origin": TRADING_SPEC.name})
        assert imported.status_code == 201, imported.text
        connector = f"/v1/connectors/{alpaca_trading.CONNECTOR}"
        patched = admin.patch(connector, json={"base_url": server.root, "allow_private_network": True})
        assert patched.status_code == 200, patched.text
        refused = admin.post(f"{connector}/operations", json={"enable": list(OPERATIONS)})
        assert refused.status_code == 403 and alpaca_trading.PLACE in refused.text  # placing orders is risky
        enabled = admin.post(f"{connector}/operations", json={"enable": list(OPERATIONS), "allow_risky": True})
        assert enabled.status_code == 200, enabled.text
        manifest = ConnectorManifest.model_validate(admin.get(connector).json()["manifest"])
        assert {op.name: op.risk for op in manifest.operations if op.enabled} == {alpaca_trading.PLACE: "money",
                                                                                  alpaca_trading.FIND: "read"}
        private, public = generate_keypair()
        TrustStore.in_home(platform.home).trust("acme", public_key_text(public))
        signature = sign_manifest(manifest, private_key_pem(private), "acme")
        signed = admin.post(f"{connector}/signature", json={"signature": signature.to_dict()})
        assert signed.status_code == 200 and signed.json()["state"] == "enabled", signed.text
        yield server


@pytest.fixture
def ops(platform: Platform) -> Iterator[TenantClient]:
    tenant = make_tenant(platform, "desk-live", role="operator")
    yield tenant
    tenant.http.close()


def _connect(ops: TenantClient, server: FakeAlpacaTrading) -> None:
    """The tenant's keys (stored by the platform, never seen by the desk or its bots) and the execute bot's policy."""
    keys = {"APCA-API-KEY-ID": server.key_id, "APCA-API-SECRET-KEY": server.secret}
    added = ops.http.post("/v1/connections", json={"connector": alpaca_trading.CONNECTOR, "secret": json.dumps(keys)})
    assert added.status_code in (200, 201), added.text
    for operation in OPERATIONS:
        policy = ops.http.put("/v1/bots/trade-execute/tools", json={"connector": alpaca_trading.CONNECTOR,
                                                                    "operation": operation, "mode": "auto"})
        assert policy.status_code == 200, policy.text


def _price_the_day(server: FakeAlpacaTrading, day: dt.date) -> dict[str, int]:
    """Alpaca fills at the day's open (the bundled bars); its clock is that morning."""
    opens = {s: next(b.open for b in bars if b.start.date() == day) for s, bars in load_bundled().items()}
    server.prices = {s: f"{cents // 100}.{cents % 100:02d}" for s, cents in opens.items()}
    server.clock = dt.datetime(day.year, day.month, day.day, 14, 30, tzinfo=dt.UTC)
    return opens


async def _live_desk(platform: Platform, ops: TenantClient, *, autopilot: bool) -> DeskService:
    service = desk(platform.url, ops.key, live_flag=True)
    await service.start()
    await write_switches(service.records, service.config.name, by="test", reason="going live", live=True,
                         autopilot=autopilot)
    return service


async def test_live_is_refused_without_each_gate(platform: Platform, ops: TenantClient,
                                                 alpaca: FakeAlpacaTrading) -> None:
    _connect(ops, alpaca)
    # the switch on, the service without OSHAL_TRADING_LIVE=1: it refuses to trade at all
    switched = desk(platform.url, ops.key, desk_config("switched"), live_flag=False)
    await switched.start()
    await write_switches(switched.records, "switched", by="test", reason="going live", live=True, autopilot=True)
    with pytest.raises(DeskError, match="OSHAL_TRADING_LIVE=1 is not set"):
        await switched.run(DAY, start=DAY)
    assert await all_records(switched.records, "steps", "switched") == {}
    await switched.api.aclose()

    # the service configured for live, the desk's switch off: it trades on paper
    flagged = desk(platform.url, ops.key, desk_config("flagged"), live_flag=True)
    await flagged.start()
    [outcome] = await flagged.run(DAY, start=DAY)
    assert outcome.outcome == "traded" and len(outcome.fills) == 2
    orders = await all_records(flagged.records, "orders", "flagged")
    assert {o["mode"] for o in orders.values()} == {"paper"} and len(orders) == 2
    ticket = await flagged.api.get(f"/v1/tickets/{outcome.ticket}")
    assert ticket["input"]["mode"] == "paper"
    await flagged.api.aclose()
    assert alpaca.requests == []  # nothing ever reached the broker


async def test_a_live_order_waits_for_approval_reaches_alpaca_once_and_its_fill_is_booked(
        platform: Platform, ops: TenantClient, alpaca: FakeAlpacaTrading) -> None:
    _connect(ops, alpaca)
    service = await _live_desk(platform, ops, autopilot=False)
    [waiting] = await service.run(DAY, start=DAY)
    assert waiting.outcome == "awaiting_approval"
    ticket = await service.api.get(f"/v1/tickets/{waiting.ticket}")
    assert ticket["status"] == "approval_required" and ticket["input"]["mode"] == "live"
    assert alpaca.requests == [] and await all_records(service.records, "orders", "main") == {}

    opens = _price_the_day(alpaca, DAY)
    approved = ops.http.post(f"/v1/tickets/{waiting.ticket}/approve", json={"reason": "checked the orders"})
    assert approved.status_code == 200, approved.text
    [traded] = await service.run(DAY, start=DAY)  # the same step (its ticket, by idempotency key) goes on
    assert (traded.ticket, traded.outcome, len(traded.fills)) == (waiting.ticket, "traded", 2)

    # each order reached Alpaca once, under the desk's client order id, with the tenant's keys added on the way
    posted = alpaca.order_requests()
    assert len(posted) == len(alpaca.orders) == 2
    assert all(r.headers["apca-api-key-id"] == alpaca.key_id for r in posted)
    orders = await all_records(service.records, "orders", "main")
    assert {r.body["client_order_id"] for r in posted} == set(orders)
    for request in posted:
        mine = orders[request.body["client_order_id"]]["order"]
        assert request.body | {"qty": int(request.body["qty"])} == {
            "symbol": mine["symbol"], "qty": mine["quantity"], "notional": None, "side": mine["side"],
            "type": "market", "time_in_force": "day", "client_order_id": mine["client_order_id"]}
    by_client_id = {o["client_order_id"]: o for o in alpaca.orders.values()}
    for coid, record in orders.items():
        assert record["mode"] == "live"
        assert record["broker"] == {"broker": "Alpaca", "broker_order_id": by_client_id[coid]["id"],
                                    "status": "filled", "filled_quantity": record["order"]["quantity"]}

    # the fill Alpaca reported is booked, and walks back to its order, risk decision and signal
    fills = await all_records(service.records, "fills", "main")
    assert len(fills) == 2
    for body in fills.values():
        fill = body["fill"]
        assert fill["price"] == opens[fill["symbol"]] and fill["fee"] == 0
        assert fill["at"] == f"{DAY.isoformat()}T14:30:00Z"
        assert fill["quantity"] == orders[fill["client_order_id"]]["order"]["quantity"]
        walked = await trace(service.records, fill["id"])
        assert walked.decision["decision"]["approved"] is True
        assert walked.signal["signal"]["id"] == walked.order["signal_id"] and walked.signal["signal"]["side"] == "buy"
    balance = service.books.ledger.trial_balance()
    assert balance.balanced
    spent = sum(f["fill"]["quantity"] * f["fill"]["price"] for f in fills.values())
    assert service.books.ledger.balance(CASH) == service.config.opening_cash - spent
    await service.api.aclose()


async def test_a_retried_live_execute_step_sends_no_second_order(platform: Platform, ops: TenantClient,
                                                                 alpaca: FakeAlpacaTrading) -> None:
    _connect(ops, alpaca)
    service = await _live_desk(platform, ops, autopilot=True)
    _price_the_day(alpaca, DAY)
    alpaca.lose_answers = 1  # the first order is taken, but its answer is lost on the way back
    [traded] = await service.run(DAY, start=DAY)
    assert traded.outcome == "traded" and len(traded.fills) == 2  # autopilot: no approval gate
    assert len(alpaca.orders) == 2 and len(alpaca.order_requests()) == 2
    lookups = [r for r in alpaca.requests if r.path == "/v2/orders:by_client_order_id"]
    assert len(lookups) == 1  # the lost answer was looked up by the client order id, not sent again
    ticket = await service.api.get(f"/v1/tickets/{traded.ticket}")
    reports = {o["client_order_id"]: o for o in ticket["result"]["output"]["orders"]}
    assert sorted(o["how"] for o in reports.values()) == ["found", "sent"]

    # the execute step again, as a redelivery or a crash and retry would run it: Alpaca refuses the known client
    # order ids (422), the bot finds the orders it sent, and reports the same fills; nothing new is sent
    approved = [d["order"] for d in ticket["result"]["output"]["decisions"] if d["decision"]["approved"]]
    execute_input: dict[str, Any] = {"mode": "live", "orders": approved, "bars": ticket["input"]["bars"],
                                     "paper": ticket["input"]["paper"]}
    again = await service.api.post("/v1/tickets", {"bot": "trade-execute", "input": execute_input}, wait=30)
    assert again["status"] == "done", again
    assert again["result"]["fills"] == ticket["result"]["output"]["fills"]
    assert {o["how"] for o in again["result"]["orders"]} == {"found"}
    assert len(alpaca.orders) == 2 and len(alpaca.order_requests()) == 4
    refusals = [r for r in alpaca.order_requests()[2:]]
    assert {r.body["client_order_id"] for r in refusals} == set(reports)

    counts = {c: len(await all_records(service.records, c, "main")) for c in ("orders", "fills", "journal")}
    rebooked = await service.record(DAY, traded.ticket, {"outcome": "traded", "output": {
        **ticket["result"]["output"], "fills": again["result"]["fills"]}}, mode="live")
    assert rebooked.fills == traded.fills
    assert {c: len(await all_records(service.records, c, "main")) for c in ("orders", "fills", "journal")} == counts
    await service.api.aclose()


async def test_a_live_step_fails_closed_without_the_tenants_keys(platform: Platform, ops: TenantClient,
                                                                 alpaca: FakeAlpacaTrading) -> None:
    for operation in OPERATIONS:  # the policy, but no connection: the gateway has no key to add
        policy = ops.http.put("/v1/bots/trade-execute/tools", json={"connector": alpaca_trading.CONNECTOR,
                                                                    "operation": operation, "mode": "auto"})
        assert policy.status_code == 200, policy.text
    service = await _live_desk(platform, ops, autopilot=True)
    with pytest.raises(DeskError, match="no connection for connector 'alpaca-trading'"):
        await service.run(DAY, start=DAY)
    assert alpaca.requests == [] and await all_records(service.records, "orders", "main") == {}
    await service.api.aclose()
