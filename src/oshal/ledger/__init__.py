"""Cost: effective-dated prices (data, not code), provider usage -> token counts, usage -> integer micro-dollars."""

from oshal.ledger.prices import Price, PriceTable, load_price_file
from oshal.ledger.pricing import Priced, price_call, price_usage, scaled_cost, usage_counts
from oshal.ledger.usage import UsageCounts, anthropic_usage, openai_chat_usage, openai_responses_usage

__all__ = [
    "Price",
    "PriceTable",
    "Priced",
    "UsageCounts",
    "anthropic_usage",
    "load_price_file",
    "openai_chat_usage",
    "openai_responses_usage",
    "price_call",
    "price_usage",
    "scaled_cost",
    "usage_counts",
]
