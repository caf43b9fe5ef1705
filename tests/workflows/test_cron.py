"""Cron schedules in a time zone: validation, next fire times across DST, and which ticks are due exactly once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oshal.errors import Invalid
from oshal.workflows.cron import MissedTickPolicy, describe_cron, due_ticks, next_fire, validate_cron


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


@pytest.mark.parametrize("expression", ["*/15 * * * *", "0 9 * * 1-5", "  0  0 L * * ", "0 0 * * MON", "@daily",
                                        "@HOURLY"])
def test_valid_expressions_pass(expression: str) -> None:
    validate_cron(expression, "Europe/Berlin")


@pytest.mark.parametrize(("expression", "problem"), [
    ("* * * *", "has 4 fields, not 5"),
    ("*/15 * * * * *", "has 6 fields, not 5"),  # croniter's seconds field: finer than a scheduler should tick
    ("", "has 0 fields"),
    ("@reboot", "has 1 fields"),
    ("61 * * * *", "out of range"),
    ("0 25 * * *", "out of range"),
    ("*/0 * * * *", "is not valid"),
    ("every monday", "has 2 fields"),
    ("0 0 30 2 *", "never fires"),
])
def test_a_bad_expression_is_refused_with_an_example(expression: str, problem: str) -> None:
    with pytest.raises(Invalid, match=problem) as raised:
        validate_cron(expression, "UTC")

    assert raised.value.hint is not None and "*/15 * * * *" in raised.value.hint


@pytest.mark.parametrize("zone", ["Mars/Olympus", "", "europe/berlin ", "../etc/passwd", "localtime", "+02:00"])
def test_an_unknown_time_zone_is_refused_with_a_hint(zone: str) -> None:
    with pytest.raises(Invalid, match="unknown time zone") as raised:
        validate_cron("*/15 * * * *", zone)

    assert raised.value.hint is not None and "Europe/Berlin" in raised.value.hint


def test_next_fire_in_utc_is_strictly_after_the_given_moment() -> None:
    assert next_fire("*/15 * * * *", "UTC", utc(2024, 5, 1, 12, 7, 30)) == utc(2024, 5, 1, 12, 15)
    assert next_fire("*/15 * * * *", "UTC", utc(2024, 5, 1, 12, 15)) == utc(2024, 5, 1, 12, 30)


def test_next_fire_takes_any_aware_time_and_answers_in_utc() -> None:
    berlin = datetime(2024, 5, 1, 14, 7, tzinfo=ZoneInfo("Europe/Berlin"))  # 12:07 UTC

    fire = next_fire("*/15 * * * *", "UTC", berlin)

    assert fire == utc(2024, 5, 1, 12, 15)
    assert fire.tzinfo is UTC


def test_a_naive_time_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        next_fire("*/15 * * * *", "UTC", datetime(2024, 5, 1, 12, 0))


def test_new_york_wall_time_follows_standard_and_daylight_time() -> None:
    assert next_fire("0 9 * * *", "America/New_York", utc(2024, 1, 15, 12)) == utc(2024, 1, 15, 14)  # EST
    assert next_fire("0 9 * * *", "America/New_York", utc(2024, 7, 15, 12)) == utc(2024, 7, 15, 13)  # EDT


def test_a_time_in_the_spring_forward_gap_fires_once_at_the_end_of_the_gap() -> None:
    # Berlin skips 02:00-03:00 on 2024-03-31: 02:30 does not exist that day.
    first = next_fire("30 2 * * *", "Europe/Berlin", utc(2024, 3, 30, 12))
    second = next_fire("30 2 * * *", "Europe/Berlin", first)

    assert first == utc(2024, 3, 31, 1)  # 03:00 CEST
    assert second == utc(2024, 4, 1, 0, 30)  # 02:30 CEST
    assert next_fire("30 2 * * *", "America/New_York", utc(2024, 3, 9, 12)) == utc(2024, 3, 10, 7)  # 03:00 EDT


def test_an_interval_schedule_keeps_its_real_spacing_through_the_gap() -> None:
    fires, moment = [], utc(2024, 3, 31, 0, 15)
    for _ in range(4):
        moment = next_fire("*/30 * * * *", "Europe/Berlin", moment)
        fires.append(moment)

    assert fires == [utc(2024, 3, 31, 0, 30), utc(2024, 3, 31, 1), utc(2024, 3, 31, 1, 30), utc(2024, 3, 31, 2)]


def test_a_time_in_the_fall_back_overlap_fires_at_both_occurrences() -> None:
    # Berlin repeats 02:00-03:00 on 2024-10-27; croniter matches 02:30 in summer and in standard time.
    first = next_fire("30 2 * * *", "Europe/Berlin", utc(2024, 10, 26, 12))
    second = next_fire("30 2 * * *", "Europe/Berlin", first)

    assert (first, second) == (utc(2024, 10, 27, 0, 30), utc(2024, 10, 27, 1, 30))


EVERY_15 = "*/15 * * * *"
CREATED = utc(2024, 5, 1, 11, 50)


def test_nothing_is_due_before_the_first_tick_after_creation() -> None:
    assert due_ticks(EVERY_15, "UTC", None, utc(2024, 5, 1, 11, 59), "skip", CREATED) == ([], None)


def test_nothing_is_due_before_the_next_tick_and_last_tick_stays() -> None:
    last = utc(2024, 5, 1, 12)

    assert due_ticks(EVERY_15, "UTC", last, utc(2024, 5, 1, 12, 14, 59), "skip", CREATED) == ([], last)


@pytest.mark.parametrize("policy", ["skip", "catch_up_once"])
@pytest.mark.parametrize("now", [utc(2024, 5, 1, 12, 15), utc(2024, 5, 1, 12, 29, 59)])
def test_a_single_due_tick_fires_under_either_policy_however_late(policy: MissedTickPolicy, now: datetime) -> None:
    tick = utc(2024, 5, 1, 12, 15)

    assert due_ticks(EVERY_15, "UTC", utc(2024, 5, 1, 12), now, policy, CREATED) == ([tick], tick)


def test_the_first_tick_after_creation_fires_when_it_was_never_fired() -> None:
    tick = utc(2024, 5, 1, 12)

    assert due_ticks(EVERY_15, "UTC", None, utc(2024, 5, 1, 12, 3), "skip", CREATED) == ([tick], tick)


def test_catch_up_once_fires_only_the_latest_of_several_missed_ticks() -> None:
    latest = utc(2024, 5, 1, 13)

    result = due_ticks(EVERY_15, "UTC", utc(2024, 5, 1, 12), utc(2024, 5, 1, 13, 5), "catch_up_once", CREATED)

    assert result == ([latest], latest)


def test_skip_fires_the_latest_missed_tick_only_within_the_grace() -> None:
    last, latest = utc(2024, 5, 1, 12), utc(2024, 5, 1, 13)

    assert due_ticks(EVERY_15, "UTC", last, utc(2024, 5, 1, 13, 0, 45), "skip", CREATED) == ([latest], latest)
    assert due_ticks(EVERY_15, "UTC", last, utc(2024, 5, 1, 13, 5), "skip", CREATED) == ([], latest)
    assert due_ticks(EVERY_15, "UTC", last, utc(2024, 5, 1, 13, 5), "skip", CREATED,
                     grace=timedelta(minutes=10)) == ([latest], latest)


@pytest.mark.parametrize("policy", ["skip", "catch_up_once"])
def test_a_tick_is_considered_exactly_once(policy: MissedTickPolicy) -> None:
    now = utc(2024, 5, 1, 13, 0, 30)

    fired, last = due_ticks(EVERY_15, "UTC", utc(2024, 5, 1, 12), now, policy, CREATED)
    again = due_ticks(EVERY_15, "UTC", last, now, policy, CREATED)

    assert fired == [utc(2024, 5, 1, 13)]
    assert again == ([], last)


def test_a_schedule_left_off_for_years_owes_at_most_its_latest_tick() -> None:
    now = utc(2025, 6, 1, 12, 0, 30)

    catch_up = due_ticks("* * * * *", "Europe/Berlin", utc(2015, 1, 1), now, "catch_up_once", CREATED)
    skip = due_ticks("0 * * * *", "Europe/Berlin", utc(2015, 1, 1), now + timedelta(minutes=5), "skip", CREATED)

    assert catch_up == ([utc(2025, 6, 1, 12)], utc(2025, 6, 1, 12))
    assert skip == ([], utc(2025, 6, 1, 12))


def test_an_unknown_policy_is_refused() -> None:
    with pytest.raises(Invalid, match="policy"):
        due_ticks(EVERY_15, "UTC", None, utc(2024, 5, 1, 13), "all", CREATED)  # type: ignore[arg-type]


SCHEDULES = ["*/15 * * * *", "*/7 * * * *", "30 2 * * *", "0 * * * *", "5 1-3 * * *", "0 0 * * 0", "59 23 * * *"]
ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata"]
# Around the 2024 transitions of these zones, so that DST gaps and overlaps are in the windows.
moments = st.datetimes(min_value=datetime(2024, 3, 8), max_value=datetime(2024, 4, 9), timezones=st.just(UTC)) | \
    st.datetimes(min_value=datetime(2024, 10, 1), max_value=datetime(2024, 11, 5), timezones=st.just(UTC))


def ticks_between(expression: str, zone: str, since: datetime, now: datetime) -> list[datetime]:
    ticks, moment = [], next_fire(expression, zone, since)
    while moment <= now:
        ticks.append(moment)
        moment = next_fire(expression, zone, moment)
    return ticks


@settings(max_examples=150, deadline=None)
@given(expression=st.sampled_from(SCHEDULES), zone=st.sampled_from(ZONES), since=moments,
       window=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=2)),
       policy=st.sampled_from(["skip", "catch_up_once"]), never_fired=st.booleans())
def test_due_ticks_agrees_with_enumerating_every_tick(expression: str, zone: str, since: datetime, window: timedelta,
                                                      policy: MissedTickPolicy, never_fired: bool) -> None:
    now = since + window
    last_tick = None if never_fired else since

    fired, new_last = due_ticks(expression, zone, last_tick, now, policy, since)

    due = ticks_between(expression, zone, since, now)
    assert all(since < tick <= now for tick in fired)
    assert len(fired) <= 1
    if not due:
        assert (fired, new_last) == ([], last_tick)
        return
    assert new_last == due[-1]
    assert fired in ([], [due[-1]])
    if len(due) == 1 or policy == "catch_up_once":
        assert fired == [due[-1]]
    assert due_ticks(expression, zone, new_last, now, policy, since) == ([], new_last)


@pytest.mark.parametrize(("expression", "zone", "text"), [
    ("*/15 * * * *", "UTC", "every 15 minutes (UTC)"),
    ("* * * * *", "UTC", "every minute (UTC)"),
    ("5 * * * *", "UTC", "every hour at minute 5 (UTC)"),
    ("30 9 * * *", "Europe/Berlin", "every day at 09:30 (Europe/Berlin)"),
    ("0 9 * * 1-5", "America/New_York", "every weekday at 09:00 (America/New_York)"),
    ("0 18 * * 5", "UTC", "every Friday at 18:00 (UTC)"),
    ("@hourly", "UTC", "every hour (UTC)"),
])
def test_describe_names_common_shapes(expression: str, zone: str, text: str) -> None:
    assert describe_cron(expression, zone) == text


def test_describe_lists_the_next_three_fire_times_in_the_zone_otherwise() -> None:
    text = describe_cron("0 0 L * *", "Europe/Berlin", after=utc(2024, 1, 1))

    assert text == "cron 0 0 L * * (Europe/Berlin), next at 2024-01-31 00:00, 2024-02-29 00:00, 2024-03-31 00:00"
