"""Each of the desk's risk limits blocks on the platform: a desk step (signal -> risk on the desk's bots) whose
proposed orders break one limit ends without reaching the execute bot, every order blocked by that rule alone, the
rule and its reason kept in the step's risk records, and no order or fill booked."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from conftest import Platform, make_tenant
from desk_support import START, SYMBOLS, all_records, desk, desk_config
from oshal_trading.backtest import default_limits
from oshal_trading.desk import DeskService, write_switches
from oshal_trading.desk_config import DeskConfig
from oshal_trading.risk import RiskLimits, TradingHours

DAY = dt.date(2016, 1, 25)  # sma-cross 3/8 over the bars from 2016-01-04 proposes its first orders for this step
LIMITS = default_limits(SYMBOLS, desk_config().opening_cash)  # generous: nothing blocks by default


def _limits(**changes: Any) -> RiskLimits:
    return dataclasses.replace(LIMITS, **changes)


async def _halt(service: DeskService) -> None:
    await write_switches(service.records, service.config.name, by="test", reason="halted for the test", halted=True)


@dataclasses.dataclass(frozen=True)
class Case:
    rule: str
    detail: str  # a part of the recorded reason
    config: DeskConfig
    start: dt.date = DAY  # the desk's first step; it steps through to ``end``
    end: dt.date = DAY
    before: Callable[[DeskService], Awaitable[None]] | None = None


CASES = [
    Case("max_order_notional", "exceeds the limit $100.00", desk_config(limits=_limits(max_order_notional=100_00))),
    Case("max_order_quantity", "exceeds the limit 10 shares", desk_config(limits=_limits(max_order_quantity=10))),
    Case("max_position_quantity", "would exceed the limit 10 shares",
         desk_config(limits=_limits(max_position_quantity=10))),
    Case("max_gross_exposure", "would exceed the limit $100.00",
         desk_config(limits=_limits(max_gross_exposure=100_00))),
    Case("max_net_exposure", "would exceed the limit $100.00", desk_config(limits=_limits(max_net_exposure=100_00))),
    # a loss needs positions: from 2016-04-01 the desk buys, and the step of 2016-04-19 (after a losing day) would
    # open another position
    Case("daily_loss_limit", "only orders that reduce a position pass",
         desk_config(history_from=dt.date(2016, 4, 1), limits=_limits(max_daily_loss=0)),
         start=dt.date(2016, 4, 1), end=dt.date(2016, 4, 19)),
    Case("symbol_allowlist", "is not on the allowlist (TSLA)",
         desk_config(limits=_limits(allowed_symbols=frozenset({"TSLA"})))),
    Case("trading_hours", "is outside the session 09:30-16:00",
         desk_config(limits=_limits(trading_hours=TradingHours.REGULAR))),
    Case("kill_switch", "the desk is halted", desk_config(), before=_halt),
]


@pytest.mark.parametrize("case", CASES, ids=[c.rule for c in CASES])
async def test_each_risk_limit_blocks_the_order_on_the_platform(platform: Platform, case: Case) -> None:
    ops = make_tenant(platform, "desk-risk", role="operator")
    assert case.config.history_from <= case.start and (case.config.limits is not None or case.before is not None)
    service = desk(platform.url, ops.key, case.config)
    await service.start()
    if case.before is not None:
        await case.before(service)
    outcomes = await service.run(case.end, start=case.start)
    last = outcomes[-1]
    assert last.day == case.end and last.outcome == "no_orders" and last.fills == ()
    ticket = await service.api.get(f"/v1/tickets/{last.ticket}")
    assert (ticket["status"], ticket["result"]["outcome"]) == ("done", "no_orders")  # the execute bot never ran

    decisions = [d for d in (await all_records(service.records, "risk", "main")).values()
                 if d["step"] == case.end.isoformat()]
    assert decisions, "the step proposed no order to block"
    for record in decisions:
        decision = record["decision"]
        assert decision["approved"] is False
        blocked = [r for r in decision["rules"] if not r["passed"]]
        assert [r["rule"] for r in blocked] == [case.rule], decision["rules"]
        assert case.detail in blocked[0]["detail"], blocked[0]["detail"]
        assert len(decision["rules"]) == 12  # every rule is recorded, passed or not
    blocked_orders = {d["order"]["client_order_id"] for d in decisions}
    assert blocked_orders.isdisjoint(await all_records(service.records, "orders", "main"))
    step = await service.records.get("steps", f"main.{case.end.isoformat()}")
    assert step is not None and step["fills"] == [] and set(step["decisions"]) == {
        d["decision"]["id"] for d in decisions}
    await service.api.aclose()


def test_the_cases_cover_every_limit_rule() -> None:
    from oshal_trading.risk import RULES

    not_limits = {"order_well_formed", "short_selling", "max_position_notional"}  # checks, or the same as another
    assert {c.rule for c in CASES} == set(RULES) - not_limits
    assert START < DAY
