"""A simple exchange calendar: the New York Stock Exchange's trading days and regular session.

The session is 09:30-16:00 America/New_York on weekdays that are not exchange holidays, closing at 13:00 on the
early-close days. Holidays follow the NYSE rules (Rule 7.2):

- New Year's Day (1 Jan; on a Sunday the Monday after; on a Saturday not observed, since the Friday before ends
  the year), Martin Luther King Jr. Day (third Monday of January, from 1998), Washington's Birthday (third Monday
  of February), Good Friday, Memorial Day (last Monday of May), Juneteenth (19 June, from 2022), Independence Day
  (4 July), Labor Day (first Monday of September), Thanksgiving (fourth Thursday of November), Christmas (25 Dec).
  A holiday other than New Year's on a Saturday is observed the Friday before, on a Sunday the Monday after.
- Unscheduled closures: 11-14 Sep 2001, 11 Jun 2004 (President Reagan's funeral), 2 Jan 2007 (President Ford),
  29-30 Oct 2012 (Hurricane Sandy), 5 Dec 2018 (President G. H. W. Bush), 9 Jan 2025 (President Carter).
- Early closes at 13:00: the day after Thanksgiving, and 3 July and 24 December when they fall Monday-Thursday.

Covered years are 2000-2099; asking about another year is an error rather than a guess. Not modelled: closures
further back than listed, and one-off early closes announced for a single year.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

EXCHANGE = "NYSE"
TIMEZONE = ZoneInfo("America/New_York")
OPEN = time(9, 30)
CLOSE = time(16, 0)
EARLY_CLOSE = time(13, 0)
FIRST_YEAR, LAST_YEAR = 2000, 2099

SPECIAL_CLOSURES: dict[date, str] = {
    date(2001, 9, 11): "September 11 attacks",
    date(2001, 9, 12): "September 11 attacks",
    date(2001, 9, 13): "September 11 attacks",
    date(2001, 9, 14): "September 11 attacks",
    date(2004, 6, 11): "National Day of Mourning for President Reagan",
    date(2007, 1, 2): "National Day of Mourning for President Ford",
    date(2012, 10, 29): "Hurricane Sandy",
    date(2012, 10, 30): "Hurricane Sandy",
    date(2018, 12, 5): "National Day of Mourning for President George H. W. Bush",
    date(2025, 1, 9): "National Day of Mourning for President Carter",
}


class CalendarError(ValueError):
    """A date the calendar does not cover."""


def _check_year(year: int) -> None:
    if not FIRST_YEAR <= year <= LAST_YEAR:
        raise CalendarError(f"the {EXCHANGE} calendar covers {FIRST_YEAR}-{LAST_YEAR}; {year} is outside it")


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> date:
    first = date(year, month, 1)
    return first + timedelta(days=(weekday - first.weekday()) % 7 + 7 * (n - 1))


def _last_weekday(year: int, month: int, weekday: int) -> date:
    last = date(year + (month == 12), month % 12 + 1, 1) - timedelta(days=1)
    return last - timedelta(days=(last.weekday() - weekday) % 7)


def _easter(year: int) -> date:
    """Gregorian Easter Sunday (the anonymous Gregorian algorithm)."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = b // 4, b % 4
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = c // 4, c % 4
    ell = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * ell) // 451
    month, day = divmod(h + ell - 7 * m + 114, 31)
    return date(year, month, day + 1)


def _observed(day: date) -> date:
    if day.weekday() == 5:
        return day - timedelta(days=1)
    if day.weekday() == 6:
        return day + timedelta(days=1)
    return day


@lru_cache(maxsize=128)
def holidays(year: int) -> dict[date, str]:
    """The year's full-day closures, date → name."""
    _check_year(year)
    monday, thursday = 0, 3
    found: dict[date, str] = {}
    new_year = date(year, 1, 1)
    if new_year.weekday() != 5:
        found[_observed(new_year)] = "New Year's Day"
    found[_nth_weekday(year, 1, monday, 3)] = "Martin Luther King Jr. Day"
    found[_nth_weekday(year, 2, monday, 3)] = "Washington's Birthday"
    found[_easter(year) - timedelta(days=2)] = "Good Friday"
    found[_last_weekday(year, 5, monday)] = "Memorial Day"
    if year >= 2022:
        found[_observed(date(year, 6, 19))] = "Juneteenth"
    found[_observed(date(year, 7, 4))] = "Independence Day"
    found[_nth_weekday(year, 9, monday, 1)] = "Labor Day"
    found[_nth_weekday(year, 11, thursday, 4)] = "Thanksgiving Day"
    found[_observed(date(year, 12, 25))] = "Christmas Day"
    found.update({d: name for d, name in SPECIAL_CLOSURES.items() if d.year == year})
    return dict(sorted(found.items()))


@lru_cache(maxsize=128)
def early_closes(year: int) -> dict[date, str]:
    """The year's 13:00 closes, date → why."""
    _check_year(year)
    found = {_nth_weekday(year, 11, 3, 4) + timedelta(days=1): "the day after Thanksgiving"}
    for day, why in ((date(year, 7, 3), "Independence Day eve"), (date(year, 12, 24), "Christmas Eve")):
        if day.weekday() <= 3:
            found[day] = why
    return dict(sorted(found.items()))


def closed_because(day: date) -> str | None:
    """Why the exchange does not trade on ``day`` ("Saturday", "Good Friday", ...), or None if it trades."""
    _check_year(day.year)
    if day.weekday() >= 5:
        return day.strftime("%A")
    return holidays(day.year).get(day)


def is_trading_day(day: date) -> bool:
    return closed_because(day) is None


def session(day: date) -> tuple[datetime, datetime] | None:
    """The regular session of ``day`` as aware UTC [open, close), or None on a day without one."""
    if not is_trading_day(day):
        return None
    close = EARLY_CLOSE if day in early_closes(day.year) else CLOSE
    return (
        datetime.combine(day, OPEN, TIMEZONE).astimezone(UTC),
        datetime.combine(day, close, TIMEZONE).astimezone(UTC),
    )


def is_open(moment: datetime) -> bool:
    """Whether the regular session is in progress at ``moment`` (aware; open inclusive, close exclusive)."""
    if moment.tzinfo is None:
        raise ValueError(f"{moment.isoformat()} has no time zone; pass an aware datetime")
    hours = session(moment.astimezone(TIMEZONE).date())
    return hours is not None and hours[0] <= moment < hours[1]
