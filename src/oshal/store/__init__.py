"""Data layer: the Postgres pool, tenant-scoped transactions, migrations and repositories."""

from oshal.store.db import Database
from oshal.store.migrate import bootstrap_embedded, migrate

__all__ = ["Database", "bootstrap_embedded", "migrate"]
