"""Embedded engines: a real PostgreSQL and a real Redis server supervised as child processes."""

from oshal.embedded.postgres import EmbeddedPostgres
from oshal.embedded.redis import EmbeddedRedis

__all__ = ["EmbeddedPostgres", "EmbeddedRedis"]
