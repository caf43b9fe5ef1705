"""The trading desk: Signal → Risk → Execute → Ledger → Recap, every fill tied to its signal.

An application on the platform like the operations loop: it reaches the platform only through its REST API, and
the platform never imports it (import-linter enforces both directions). Paper trading is the default; nothing can
reach a live broker by accident. Money is integer minor units (cents) everywhere; quantities are integer shares.
"""
