"""The platform's audit log since a moment (the hourly rate budgets of the heal actions count from it)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from oshal_ops.api import PlatformAPI

PAGE = 1000


async def entries_since(api: PlatformAPI, since: datetime, *, page: int = PAGE) -> list[dict[str, Any]]:
    """Every audit entry the key may read stamped at or after ``since`` (aware), oldest first: the platform finds
    where that moment starts in the log (``GET /v1/audit?since=``), so the log is not read from its beginning."""
    if since.tzinfo is None:
        raise ValueError("since needs a time zone (an aware datetime)")
    found: list[dict[str, Any]] = []
    after = 0
    while True:
        rows: list[dict[str, Any]] = await api.get("/v1/audit", since=since.isoformat(), after=after, limit=page)
        found += rows
        if len(rows) < page:
            return found
        after = int(rows[-1]["seq"])


def stamped(entry: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(str(entry["at"]))
