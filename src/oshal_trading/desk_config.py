"""A desk's configuration: its strategy, symbols, money and limits, as the desk record keeps it and its bots read it.

The defaults are the backtest's (:class:`oshal_trading.backtest.BacktestConfig`), so a desk and a backtest of the
same strategy over the same bars give the same fills. Decimal rates travel as strings ("0.95"), money as cents.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from oshal_trading import strategies
from oshal_trading.backtest import BacktestConfig, default_limits
from oshal_trading.paper import FeeSchedule, PaperConfig
from oshal_trading.risk import RiskLimits, TradingHours

DESK_NAME = re.compile(r"^[a-z][a-z0-9-]{0,29}$")


class DeskConfigError(ValueError):
    """A desk configuration that cannot be used; the message names the field."""


@dataclass(frozen=True, slots=True)
class DeskConfig:
    name: str
    strategy: str
    symbols: tuple[str, ...]
    history_from: dt.date  # the first bar the strategy sees (and the first session the desk may trade)
    params: Mapping[str, object] = field(default_factory=dict)
    opening_cash: int = 10_000_000
    allocation: Decimal = Decimal("0.95")
    slippage_bps: Decimal = Decimal(5)
    fees: FeeSchedule = field(default_factory=lambda: FeeSchedule(per_share=Decimal("0.5"), minimum=100))
    max_participation: Decimal = Decimal("0.1")
    limits: RiskLimits | None = None  # default: the backtest's, sized from the opening cash

    def __post_init__(self) -> None:
        if not DESK_NAME.match(self.name):
            raise DeskConfigError(f"desk name {self.name!r}: use 1 to 30 lowercase letters, digits and '-', "
                                  "starting with a letter (e.g. main)")
        if self.strategy not in strategies.STRATEGIES:
            raise DeskConfigError(f"strategy {self.strategy!r} is unknown; choose one of "
                                  f"{', '.join(sorted(strategies.STRATEGIES))}")
        strategies.STRATEGIES[self.strategy].resolve(self.params)  # raises StrategyError naming the parameter
        if not self.symbols or len(set(self.symbols)) != len(self.symbols):
            raise DeskConfigError(f"symbols {list(self.symbols)}: name each symbol once, at least one")
        if isinstance(self.opening_cash, bool) or not isinstance(self.opening_cash, int) or self.opening_cash <= 0:
            raise DeskConfigError(f"opening_cash must be whole cents > 0, got {self.opening_cash!r}")
        if not Decimal(0) < self.allocation <= Decimal(1):
            raise DeskConfigError(f"allocation is the share of equity to invest, in (0, 1]; got {self.allocation}")
        PaperConfig(self.slippage_bps, self.max_participation, self.fees)  # validates the rates

    @property
    def risk_limits(self) -> RiskLimits:
        return self.limits or default_limits(self.symbols, self.opening_cash)

    @property
    def paper(self) -> PaperConfig:
        return PaperConfig(slippage_bps=self.slippage_bps, max_participation=self.max_participation, fees=self.fees)

    def backtest_config(self) -> BacktestConfig:
        """The backtest that trades like this desk."""
        return BacktestConfig(self.strategy, params=dict(self.params), opening_cash=self.opening_cash,
                              allocation=self.allocation, slippage_bps=self.slippage_bps, fees=self.fees,
                              max_participation=self.max_participation, limits=self.limits)


def limits_to_json(limits: RiskLimits) -> dict[str, Any]:
    return {"allowed_symbols": sorted(limits.allowed_symbols), "max_order_quantity": limits.max_order_quantity,
            "max_order_notional": limits.max_order_notional, "max_gross_exposure": limits.max_gross_exposure,
            "max_net_exposure": limits.max_net_exposure, "max_daily_loss": limits.max_daily_loss,
            "max_position_quantity": limits.max_position_quantity,
            "max_position_notional": limits.max_position_notional, "allow_short": limits.allow_short,
            "trading_hours": limits.trading_hours.value}


def limits_from_json(doc: Any) -> RiskLimits:
    if not isinstance(doc, Mapping):
        raise DeskConfigError("limits must be an object of the risk limits (max_order_notional, ...)")
    known = set(RiskLimits.__dataclass_fields__)
    unknown = sorted(set(doc) - known)
    if unknown:
        raise DeskConfigError(f"limits: unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    values = dict(doc)
    values["allowed_symbols"] = frozenset(values.get("allowed_symbols") or ())
    if "trading_hours" in values:
        try:
            values["trading_hours"] = TradingHours(values["trading_hours"])
        except ValueError:
            raise DeskConfigError(f"limits.trading_hours {values['trading_hours']!r} is not one of "
                                  f"{', '.join(t.value for t in TradingHours)}") from None
    try:
        return RiskLimits(**values)
    except (TypeError, ValueError) as e:
        raise DeskConfigError(f"limits: {e}") from None


def paper_to_json(paper: PaperConfig) -> dict[str, Any]:
    return {"slippage_bps": str(paper.slippage_bps), "max_participation": str(paper.max_participation),
            "fees": {"per_share": str(paper.fees.per_share), "bps": str(paper.fees.bps),
                     "minimum": paper.fees.minimum}}


def _decimal(value: Any, where: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise DeskConfigError(f"{where} must be a decimal written as a string (e.g. \"0.5\"), got {value!r}")
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise DeskConfigError(f"{where}: {value!r} is not a decimal number") from None
    if not number.is_finite():
        raise DeskConfigError(f"{where}: {value!r} is not finite")
    return number


def paper_from_json(doc: Any) -> PaperConfig:
    if not isinstance(doc, Mapping) or not isinstance(doc.get("fees"), Mapping):
        raise DeskConfigError("paper must be {slippage_bps, max_participation, fees: {per_share, bps, minimum}}")
    fees = doc["fees"]
    minimum = fees.get("minimum", 0)
    if isinstance(minimum, bool) or not isinstance(minimum, int):
        raise DeskConfigError(f"paper.fees.minimum must be whole cents, got {minimum!r}")
    try:
        return PaperConfig(slippage_bps=_decimal(doc.get("slippage_bps", "0"), "paper.slippage_bps"),
                           max_participation=_decimal(doc.get("max_participation", "0.1"), "paper.max_participation"),
                           fees=FeeSchedule(per_share=_decimal(fees.get("per_share", "0"), "paper.fees.per_share"),
                                            bps=_decimal(fees.get("bps", "0"), "paper.fees.bps"), minimum=minimum))
    except ValueError as e:
        raise DeskConfigError(f"paper: {e}") from None


def to_json(config: DeskConfig) -> dict[str, Any]:
    return {"name": config.name, "strategy": config.strategy, "params": dict(config.params),
            "symbols": list(config.symbols), "history_from": config.history_from.isoformat(),
            "opening_cash": config.opening_cash, "allocation": str(config.allocation),
            "paper": paper_to_json(config.paper), "limits": limits_to_json(config.risk_limits)}


def from_json(doc: Any) -> DeskConfig:
    if not isinstance(doc, Mapping):
        raise DeskConfigError("a desk configuration is an object")
    paper = paper_from_json(doc.get("paper"))
    try:
        history_from = dt.date.fromisoformat(str(doc.get("history_from")))
    except ValueError:
        raise DeskConfigError(f"history_from {doc.get('history_from')!r} is not a date (YYYY-MM-DD)") from None
    symbols: Sequence[Any] = doc.get("symbols") or ()
    return DeskConfig(name=str(doc.get("name")), strategy=str(doc.get("strategy")),
                      symbols=tuple(str(s) for s in symbols), history_from=history_from,
                      params=dict(doc.get("params") or {}), opening_cash=doc.get("opening_cash"),  # type: ignore[arg-type]
                      allocation=_decimal(doc.get("allocation", "0.95"), "allocation"),
                      slippage_bps=Decimal(paper.slippage_bps), fees=paper.fees,
                      max_participation=Decimal(paper.max_participation), limits=limits_from_json(doc.get("limits")))
