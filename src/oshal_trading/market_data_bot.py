"""The ``market-data`` bot's intent (``oshal_trading.market_data_bot:scripted_calls_only`` in fleet/market-data.yaml).

The bot's work is the connector calls its ticket scripts (``{"tool_calls": [...]}``, see :mod:`oshal_trading.alpaca`):
the deterministic harness runs them through the tool gateway before any intent is consulted. An intent is a pure
function of its input with no tool session, so this one has nothing to do but refuse any other input, saying what
the bot expects.
"""

from __future__ import annotations

from typing import Any


def scripted_calls_only(value: Any) -> dict[str, Any]:
    raise ValueError('the market-data bot runs the connector calls its ticket scripts: send {"tool_calls": '
                     '[{"connector": "alpaca-market-data", "operation": "getBarsForStockSymbol", "arguments": '
                     '{"symbol": "AAPL", "timeframe": "1Day"}}]}')
