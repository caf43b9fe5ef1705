"""Cost: effective-dated prices (data, not code) and usage -> integer micro-dollars."""

from oshal.ledger.prices import Price, PriceTable, load_price_file
from oshal.ledger.pricing import Priced, price_call

__all__ = ["Price", "PriceTable", "Priced", "load_price_file", "price_call"]
