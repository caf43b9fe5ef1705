"""Cron schedules in an IANA time zone, as pure functions over aware datetimes (UTC in, UTC out).

An expression has the five classic fields (minute hour day-of-month month day-of-week) or is one of the
``@hourly``-style aliases. It is matched against wall-clock time in the schedule's zone by croniter, so
daylight saving time follows croniter's rules:

- spring forward: a wall time inside the gap (02:30 on the day Berlin jumps from 02:00 to 03:00) does not
  exist; a daily job at that time fires once, at the end of the gap (03:00 local);
- fall back: a wall time inside the repeated hour happens twice, and croniter fires at both, so a daily job
  at 02:30 runs at 02:30 summer time and again an hour later at 02:30 standard time;
- interval schedules (``*/15 * * * *``) keep their real-time spacing through both transitions.
"""

from __future__ import annotations

import functools
import zoneinfo
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from croniter import CroniterBadDateError, CroniterError, croniter

from oshal.errors import Invalid

__all__ = ["MissedTickPolicy", "describe_cron", "due_ticks", "next_fire", "validate_cron"]

MissedTickPolicy = Literal["skip", "catch_up_once"]
ALIASES: dict[str, str] = {
    "@yearly": "every year on 1 January at 00:00",
    "@annually": "every year on 1 January at 00:00",
    "@monthly": "every month on the 1st at 00:00",
    "@weekly": "every Sunday at 00:00",
    "@daily": "every day at 00:00",
    "@midnight": "every day at 00:00",
    "@hourly": "every hour",
}
_CRON_HINT = ('use five fields "minute hour day-of-month month day-of-week", e.g. "*/15 * * * *" (every 15 '
              'minutes) or "0 9 * * 1-5" (09:00 on weekdays), or an alias such as @daily')
_ZONE_HINT = "use an IANA time zone name such as UTC, Europe/Berlin or America/New_York"
_POLICIES = ("skip", "catch_up_once")
_WEEKDAYS = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


@dataclass(frozen=True, slots=True)
class _Schedule:
    expression: str
    zone: zoneinfo.ZoneInfo

    def next_after(self, moment: datetime) -> datetime:
        """The first tick strictly after ``moment``."""
        return croniter(self.expression, moment.astimezone(self.zone)).get_next(datetime).astimezone(UTC)

    def latest_until(self, moment: datetime) -> datetime:
        """The last tick at or before ``moment``. Ticks fall on whole minutes, so searching back from one
        second past the minute finds a tick exactly at ``moment`` too."""
        start = moment.replace(second=0, microsecond=0) + timedelta(seconds=1)
        return croniter(self.expression, start.astimezone(self.zone)).get_prev(datetime).astimezone(UTC)


def validate_cron(expression: str, timezone: str) -> None:
    """Raise Invalid, with a hint, unless ``expression`` is a five-field cron that fires and ``timezone`` is known."""
    _schedule(expression, timezone)


def next_fire(expression: str, timezone: str, after: datetime) -> datetime:
    """The first fire time strictly after ``after``, in UTC."""
    return _schedule(expression, timezone).next_after(_utc(after, "after"))


def due_ticks(expression: str, timezone: str, last_tick: datetime | None, now: datetime,
              policy: MissedTickPolicy, created_at: datetime,
              grace: timedelta = timedelta(seconds=60)) -> tuple[list[datetime], datetime | None]:
    """Which ticks to fire now, and the ``last_tick`` to store for the next call.

    The due ticks are the fire times after ``last_tick`` (after ``created_at`` when it never fired) up to and
    including ``now``. None due: nothing fires and ``last_tick`` is returned unchanged. One due: it fires,
    under either policy. Several due (the scheduler was down or late): ``catch_up_once`` fires only the latest;
    ``skip`` fires the latest only when it is at most ``grace`` old, otherwise nothing. Whenever something was
    due, the returned ``last_tick`` is the latest due tick, so each tick is considered exactly once.

    Only the first and the latest due tick matter, and each is one croniter step away, so a schedule left
    off for years costs the same as one that missed a minute: no enumeration of the missed ticks.
    """
    if policy not in _POLICIES:
        raise Invalid(f"unknown missed-tick policy {policy!r}", hint=f"use one of {', '.join(_POLICIES)}")
    schedule = _schedule(expression, timezone)
    now = _utc(now, "now")
    since = _utc(last_tick, "last_tick") if last_tick is not None else _utc(created_at, "created_at")
    first = schedule.next_after(since)
    if first > now:
        return [], last_tick
    # max(): never report a tick before the first due one, should croniter's backward search ever disagree.
    latest = max(schedule.latest_until(now), first)
    if latest == first or policy == "catch_up_once" or now - latest <= grace:
        return [latest], latest
    return [], latest


def describe_cron(expression: str, timezone: str, *, after: datetime | None = None) -> str:
    """"every 15 minutes (UTC)" for common shapes; otherwise the next three fire times after ``after`` (default now)."""
    schedule = _schedule(expression, timezone)
    phrase = ALIASES.get(schedule.expression) or _phrase(schedule.expression.split())
    if phrase:
        return f"{phrase} ({timezone})"
    moment = _utc(after, "after") if after is not None else datetime.now(UTC)
    upcoming = []
    for _ in range(3):
        moment = schedule.next_after(moment)
        upcoming.append(moment.astimezone(schedule.zone).strftime("%Y-%m-%d %H:%M"))
    return f"cron {schedule.expression} ({timezone}), next at {', '.join(upcoming)}"


def _phrase(fields: list[str]) -> str | None:
    minute, hour, day, month, weekday = fields
    if (day, month) != ("*", "*"):
        return None
    if (hour, weekday) == ("*", "*"):
        if minute == "*":
            return "every minute"
        if minute.startswith("*/") and minute[2:].isdigit():
            step = int(minute[2:])
            return "every minute" if step == 1 else f"every {step} minutes"
        return f"every hour at minute {int(minute)}" if minute.isdigit() else None
    if not (minute.isdigit() and hour.isdigit()):
        return None
    at = f"{int(hour):02d}:{int(minute):02d}"
    if weekday == "*":
        return f"every day at {at}"
    if weekday == "1-5":
        return f"every weekday at {at}"
    return f"every {_WEEKDAYS[int(weekday)]} at {at}" if weekday.isdigit() and int(weekday) <= 7 else None


def _schedule(expression: str, timezone: str) -> _Schedule:
    return _Schedule(_expression(expression), _zone(timezone))


@functools.lru_cache(maxsize=256)
def _expression(expression: str) -> str:
    normalized = " ".join(expression.split())
    if normalized.lower() in ALIASES:
        return normalized.lower()
    if len(normalized.split()) != 5:
        raise Invalid(f"cron expression {expression!r} has {len(normalized.split())} fields, not 5", hint=_CRON_HINT)
    try:
        croniter(normalized, datetime(2000, 1, 1, tzinfo=UTC)).get_next(datetime)
    except CroniterBadDateError as e:
        raise Invalid(f"cron expression {expression!r} never fires (no such date)", hint=_CRON_HINT) from e
    except CroniterError as e:
        raise Invalid(f"cron expression {expression!r} is not valid: {e}", hint=_CRON_HINT) from e
    return normalized


def _zone(timezone: str) -> zoneinfo.ZoneInfo:
    if timezone not in _known_zones():
        raise Invalid(f"unknown time zone {timezone!r}", hint=_ZONE_HINT)
    return zoneinfo.ZoneInfo(timezone)


@functools.cache
def _known_zones() -> frozenset[str]:
    # Zone names only: a schedule in "localtime" would mean something different on every host.
    return frozenset(zoneinfo.available_timezones()) - {"localtime", "posixrules"}


def _utc(moment: datetime, name: str) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got {moment.isoformat()}")
    return moment.astimezone(UTC)
