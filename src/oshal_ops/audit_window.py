"""The platform's audit log since a moment, found without reading the log from its beginning.

``GET /v1/audit`` pages forward by sequence number. Entries are appended in time order (the platform stamps each
with the clock while it holds the chain's lock), so the first entry at or after a moment is found by galloping,
then bisecting, on the sequence number — one one-entry request per probe — and the log is read forward from there.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from oshal_ops.api import PlatformAPI

PAGE = 1000
# Read from a little before the moment: a search never trusts the clocks of two entries to be strictly ordered.
SLACK = timedelta(minutes=1)


async def entries_since(api: PlatformAPI, since: datetime, *, page: int = PAGE,
                        slack: timedelta = SLACK) -> list[dict[str, Any]]:
    """Every audit entry the key may read stamped at or after ``since`` (aware), oldest first."""
    if since.tzinfo is None:
        raise ValueError("since needs a time zone (an aware datetime)")
    after = await _last_seq_before(api, since - slack, page)
    found: list[dict[str, Any]] = []
    while True:
        rows: list[dict[str, Any]] = await api.get("/v1/audit", after=after, limit=page)
        found += [row for row in rows if stamped(row) >= since]
        if len(rows) < page:
            return found
        after = int(rows[-1]["seq"])


def stamped(entry: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(str(entry["at"]))


async def _first_after(api: PlatformAPI, after: int) -> dict[str, Any] | None:
    rows: list[dict[str, Any]] = await api.get("/v1/audit", after=after, limit=1)
    return rows[0] if rows else None


async def _last_seq_before(api: PlatformAPI, bound: datetime, page: int) -> int:
    """A sequence number every entry stamped at or after ``bound`` comes after, within about a page of the first."""

    async def older(after: int) -> int | None:
        """The seq of the first entry after ``after`` when that entry is older than ``bound``."""
        entry = await _first_after(api, after)
        return int(entry["seq"]) if entry is not None and stamped(entry) < bound else None

    lo = await older(0)  # lo is always the seq of an entry older than bound
    if lo is None:
        return 0
    step = page
    while True:  # gallop forward until past the boundary
        probe = lo + step
        seen = await older(probe)
        if seen is None:
            hi = probe
            break
        lo, step = seen, step * 2
    while hi - lo > page:  # every entry after hi is at or after bound (or there is none)
        mid = (lo + hi) // 2
        seen = await older(mid)
        if seen is None:
            hi = mid
        else:
            lo = seen
    return lo
