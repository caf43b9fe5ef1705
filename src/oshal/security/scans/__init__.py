"""The Security Center's scans. Each takes a :class:`ScanContext` and returns every finding it sees now."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis

from oshal.audit.anchors import AnchorLog
from oshal.security.findings import Finding
from oshal.settings import Settings
from oshal.store.db import Database


@dataclass(frozen=True, slots=True)
class RouteInfo:
    path: str
    methods: frozenset[str]
    authenticated: bool


@dataclass
class ScanContext:
    db: Database
    redis: Redis
    settings: Settings
    routes: Callable[[], list[RouteInfo]]
    broken_connectors: Callable[[], Awaitable[list[tuple[dict[str, Any], str]]]]
    bots: Callable[[], frozenset[str]]
    audit_anchors: AnchorLog | None = None
    connector_code: list[Any] = field(default_factory=list)  # folders of installed connector code


Scan = Callable[[ScanContext], Awaitable[list[Finding]]]
