"""Business-hours arithmetic: weekends, holidays, split shifts, DST in two zones, long spans.

Every expectation is worked out by hand in the test's comments, in local wall time.
"""

from __future__ import annotations

import time as stopwatch
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from ticketing.domain.business_hours import CALENDAR_TIME, WEEKDAYS, BusinessCalendar
from ticketing.domain.errors import ValidationError

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
HOUR = 3600
NINE_TO_FIVE = {day: [("09:00", "17:00")] for day in WEEKDAYS[:5]}

OFFICE = BusinessCalendar.create("Europe/Berlin", NINE_TO_FIVE)
NY_OFFICE = BusinessCalendar.create("America/New_York", NINE_TO_FIVE)


def berlin(day: str, hour: int = 0, minute: int = 0, *, fold: int = 0) -> datetime:
    return datetime.combine(date.fromisoformat(day), time(hour, minute), BERLIN).replace(fold=fold)


def new_york(day: str, hour: int = 0, minute: int = 0, *, fold: int = 0) -> datetime:
    return datetime.combine(date.fromisoformat(day), time(hour, minute), NEW_YORK).replace(
        fold=fold
    )


def utc(day: str, hour: int = 0, minute: int = 0) -> datetime:
    return datetime.combine(date.fromisoformat(day), time(hour, minute), UTC)


# --- weekends, hours, holidays ----------------------------------------------------------------


def test_business_time_skips_the_weekend() -> None:
    # Given Mon-Fri 09:00-17:00; when measuring Fri 16:00 -> Mon 10:00
    seconds = OFFICE.business_seconds_between(berlin("2026-01-09", 16), berlin("2026-01-12", 10))
    # Then Friday's last hour and Monday's first hour count
    assert seconds == 2 * HOUR


def test_adding_business_time_carries_over_the_weekend() -> None:
    # Given Fri 16:00 (CET); when adding 3 hours
    due = OFFICE.add_business_seconds(berlin("2026-01-09", 16), 3 * HOUR)
    # Then 1 hour on Friday, 2 on Monday: Mon 11:00 CET, returned in UTC
    assert due == berlin("2026-01-12", 11)
    assert due.tzinfo is UTC
    assert due == utc("2026-01-12", 10)


@pytest.mark.parametrize(
    ("start", "end", "hours"),
    [
        # Saturday noon to the next Saturday noon: five whole working days
        (berlin("2026-01-10", 12), berlin("2026-01-17", 12), 40),
        # Monday 06:00 to 20:00: only 09:00-17:00 counts
        (berlin("2026-01-12", 6), berlin("2026-01-12", 20), 8),
        # Monday evening to Tuesday morning: nothing is open
        (berlin("2026-01-12", 18), berlin("2026-01-13", 8), 0),
        # Sunday to Monday 12:30: Monday morning only
        (berlin("2026-01-11", 12), berlin("2026-01-12", 12, 30), 3.5),
    ],
)
def test_a_span_starting_or_ending_outside_hours_counts_only_open_time(
    start: datetime, end: datetime, hours: float
) -> None:
    assert OFFICE.business_seconds_between(start, end) == hours * HOUR


def test_time_that_runs_out_at_closing_is_due_at_closing() -> None:
    # Given Monday 09:00; when adding exactly one working day
    due = OFFICE.add_business_seconds(berlin("2026-01-12", 9), 8 * HOUR)
    # Then it is due at Monday's closing, not at Tuesday's opening
    assert due == berlin("2026-01-12", 17)


def test_time_added_at_closing_starts_counting_at_the_next_opening() -> None:
    assert OFFICE.add_business_seconds(berlin("2026-01-12", 17), HOUR) == berlin("2026-01-13", 10)


def test_adding_nothing_returns_the_start_even_when_closed() -> None:
    assert OFFICE.add_business_seconds(berlin("2026-01-10", 12), 0) == utc("2026-01-10", 11)


def test_business_time_is_negative_when_the_end_comes_first() -> None:
    assert OFFICE.business_seconds_between(berlin("2026-01-12", 12), berlin("2026-01-12", 10)) == (
        -2 * HOUR
    )


def test_open_intervals_include_their_start_and_exclude_their_end() -> None:
    assert OFFICE.is_open(berlin("2026-01-12", 9))
    assert OFFICE.is_open(berlin("2026-01-12", 17) - timedelta(microseconds=1))
    assert not OFFICE.is_open(berlin("2026-01-12", 17))
    assert not OFFICE.is_open(berlin("2026-01-12", 9) - timedelta(microseconds=1))
    assert not OFFICE.is_open(berlin("2026-01-10", 12))  # Saturday


def test_holidays_close_their_whole_local_date() -> None:
    # Given Christmas Eve (Thu) and Christmas Day (Fri) 2026 as holidays
    calendar = BusinessCalendar.create("Europe/Berlin", NINE_TO_FIVE, ["2026-12-24", "2026-12-25"])
    start, end = berlin("2026-12-23", 16), berlin("2026-12-28", 10)
    # Then Wed 16:00 -> Mon 10:00 is Wednesday's last hour and Monday's first
    assert calendar.business_seconds_between(start, end) == 2 * HOUR
    assert calendar.add_business_seconds(start, 2 * HOUR) == berlin("2026-12-28", 10)
    assert not calendar.is_open(berlin("2026-12-24", 11))
    # And without the holidays the same span holds two more working days
    assert OFFICE.business_seconds_between(start, end) == 18 * HOUR


def test_split_shifts_leave_the_lunch_break_closed() -> None:
    # Given 09:00-12:00 and 13:00-17:00 on weekdays
    hours = {day: [("09:00", "12:00"), ("13:00", "17:00")] for day in WEEKDAYS[:5]}
    calendar = BusinessCalendar.create("Europe/Berlin", hours)
    # Then 11:00 -> 14:00 is one hour before lunch and one after
    assert calendar.business_seconds_between(
        berlin("2026-01-12", 11), berlin("2026-01-12", 14)
    ) == (2 * HOUR)
    # And 2 hours from 11:30 run 30 minutes to noon, then 90 minutes from 13:00
    assert calendar.add_business_seconds(berlin("2026-01-12", 11, 30), 2 * HOUR) == berlin(
        "2026-01-12", 14, 30
    )
    assert not calendar.is_open(berlin("2026-01-12", 12, 30))
    assert calendar.business_seconds_between(berlin("2026-01-12"), berlin("2026-01-13")) == 7 * HOUR


# --- daylight saving time ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("time_zone", "day", "hours"),
    [
        ("Europe/Berlin", "2026-03-29", 23),  # 02:00 CET -> 03:00 CEST
        ("Europe/Berlin", "2026-10-25", 25),  # 03:00 CEST -> 02:00 CET
        ("America/New_York", "2026-03-08", 23),  # 02:00 EST -> 03:00 EDT
        ("America/New_York", "2026-11-01", 25),  # 02:00 EDT -> 01:00 EST
    ],
)
def test_a_whole_day_open_lasts_as_long_as_the_day_really_is(
    time_zone: str, day: str, hours: int
) -> None:
    # Given Sundays open all day (every DST change here falls on a Sunday)
    calendar = BusinessCalendar.create(time_zone, {"sun": [("00:00", "24:00")]})
    zone = ZoneInfo(time_zone)
    start = datetime.combine(date.fromisoformat(day), time(0), zone)
    end = datetime.combine(date.fromisoformat(day) + timedelta(days=1), time(0), zone)
    assert calendar.business_seconds_between(start, end) == hours * HOUR


def test_a_night_shift_across_the_spring_forward_jump_is_an_hour_shorter_in_berlin() -> None:
    # Given Sundays 01:00-04:00; on 2026-03-29 the wall clock skips 02:00-03:00
    calendar = BusinessCalendar.create("Europe/Berlin", {"sun": [("01:00", "04:00")]})
    start, end = berlin("2026-03-29"), berlin("2026-03-30")
    # Then 01:00 CET (00:00Z) -> 04:00 CEST (02:00Z) is two hours
    assert calendar.business_seconds_between(start, end) == 2 * HOUR
    assert calendar.add_business_seconds(start, 2 * HOUR) == utc("2026-03-29", 2)
    # And 90 minutes after opening it is 03:30 CEST, not 02:30
    assert calendar.add_business_seconds(start, 1.5 * HOUR) == utc("2026-03-29", 1, 30)


def test_a_night_shift_across_the_fall_back_repeat_is_an_hour_longer_in_berlin() -> None:
    # Given Sundays 01:00-04:00; on 2026-10-25 the wall clock shows 02:00-03:00 twice
    calendar = BusinessCalendar.create("Europe/Berlin", {"sun": [("01:00", "04:00")]})
    # Then 01:00 CEST (23:00Z Sat) -> 04:00 CET (03:00Z) is four hours
    assert calendar.business_seconds_between(berlin("2026-10-25"), berlin("2026-10-26")) == (
        4 * HOUR
    )
    assert calendar.is_open(berlin("2026-10-25", 2, 30, fold=0))
    assert calendar.is_open(berlin("2026-10-25", 2, 30, fold=1))


def test_hours_starting_inside_the_skipped_hour_open_when_the_clocks_jump() -> None:
    # Given Sundays 02:30-05:00; on 2026-03-29 02:30 never happens in Berlin
    calendar = BusinessCalendar.create("Europe/Berlin", {"sun": [("02:30", "05:00")]})
    # Then it opens at the jump (03:00 CEST = 01:00Z) and closes at 05:00 CEST (03:00Z)
    assert not calendar.is_open(utc("2026-03-29", 1) - timedelta(microseconds=1))
    assert calendar.is_open(utc("2026-03-29", 1))
    assert calendar.business_seconds_between(berlin("2026-03-29"), berlin("2026-03-30")) == (
        2 * HOUR
    )


def test_hours_starting_inside_the_repeated_hour_open_at_its_first_occurrence() -> None:
    # Given Sundays 02:30-05:00; on 2026-10-25 02:30 happens at 00:30Z (CEST) and 01:30Z (CET)
    calendar = BusinessCalendar.create("Europe/Berlin", {"sun": [("02:30", "05:00")]})
    # Then it opens at the first 02:30 and closes at 05:00 CET (04:00Z): three and a half hours
    assert calendar.is_open(utc("2026-10-25", 0, 30))
    assert not calendar.is_open(utc("2026-10-25", 0, 30) - timedelta(microseconds=1))
    assert calendar.business_seconds_between(berlin("2026-10-25"), berlin("2026-10-26")) == (
        3.5 * HOUR
    )


def test_split_hours_meeting_inside_the_repeated_hour_count_it_once() -> None:
    # Given Sundays 00:00-02:30 and 02:30-05:00: the same open time as 00:00-05:00
    split = BusinessCalendar.create(
        "Europe/Berlin", {"sun": [("00:00", "02:30"), ("02:30", "05:00")]}
    )
    whole = BusinessCalendar.create("Europe/Berlin", {"sun": [("00:00", "05:00")]})
    start, end = berlin("2026-10-25"), berlin("2026-10-26")
    # Then both count 00:00 CEST (22:00Z) -> 05:00 CET (04:00Z): six hours, none twice
    assert split.business_seconds_between(start, end) == 6 * HOUR
    assert whole.business_seconds_between(start, end) == 6 * HOUR


@pytest.mark.parametrize(("day", "hours"), [("2026-03-08", 5), ("2026-11-01", 7)])
def test_early_sunday_hours_in_new_york_follow_the_clock_changes(day: str, hours: int) -> None:
    # Given Sundays 00:00-06:00: 2026-03-08 skips 02:00-03:00, 2026-11-01 repeats 01:00-02:00
    calendar = BusinessCalendar.create("America/New_York", {"sun": [("00:00", "06:00")]})
    start = new_york(day)
    assert calendar.business_seconds_between(start, start + timedelta(days=1)) == hours * HOUR


def test_hours_starting_at_an_ambiguous_new_york_time_use_its_first_occurrence() -> None:
    # Given Sundays 01:30-03:00; on 2026-11-01 01:30 is first EDT (05:30Z), later EST (06:30Z)
    calendar = BusinessCalendar.create("America/New_York", {"sun": [("01:30", "03:00")]})
    start = new_york("2026-11-01")
    # Then it opens at 05:30Z and closes at 03:00 EST (08:00Z)
    assert calendar.add_business_seconds(start, 1) == utc("2026-11-01", 5, 30) + timedelta(
        seconds=1
    )
    assert calendar.add_business_seconds(start, 2.5 * HOUR) == utc("2026-11-01", 8)
    assert calendar.business_seconds_between(start, start + timedelta(days=1)) == 2.5 * HOUR


def test_office_hours_keep_their_local_time_across_a_new_york_spring_forward_weekend() -> None:
    # Given Fri 2026-03-06 16:00 EST (21:00Z); the clocks go forward on Sunday
    start = new_york("2026-03-06", 16)
    # When adding 2 hours: 1 on Friday, 1 on Monday from 09:00 EDT
    due = NY_OFFICE.add_business_seconds(start, 2 * HOUR)
    # Then it is due Mon 10:00 EDT = 14:00Z (15:00Z had the offset not changed)
    assert due == utc("2026-03-09", 14)
    assert NY_OFFICE.business_seconds_between(
        new_york("2026-03-06", 9), new_york("2026-03-09", 17)
    ) == (16 * HOUR)


@pytest.mark.parametrize(
    ("friday", "monday_ten_utc"),
    [
        ("2026-03-27", utc("2026-03-30", 8)),  # Monday 10:00 CEST
        ("2026-10-23", utc("2026-10-26", 9)),  # Monday 10:00 CET
    ],
)
def test_office_hours_keep_their_local_time_across_berlin_clock_changes(
    friday: str, monday_ten_utc: datetime
) -> None:
    due = OFFICE.add_business_seconds(berlin(friday, 16), 2 * HOUR)
    assert due == monday_ten_utc


def test_daily_hours_across_the_spring_forward_weekend_count_local_hours() -> None:
    # Given 08:00-20:00 every day; Saturday is CET, Sunday 2026-03-29 is CEST
    calendar = BusinessCalendar.create(
        "Europe/Berlin", {day: [("08:00", "20:00")] for day in WEEKDAYS}
    )
    start = berlin("2026-03-28", 8)
    # Then 13 hours are 12 on Saturday and 1 on Sunday: 09:00 CEST = 07:00Z
    assert calendar.add_business_seconds(start, 13 * HOUR) == utc("2026-03-29", 7)
    assert calendar.business_seconds_between(start, berlin("2026-03-29", 20)) == 24 * HOUR


# --- calendar time, inputs, long spans --------------------------------------------------------


def test_calendar_time_counts_every_second() -> None:
    start = berlin("2026-01-09", 16, 30)  # a Friday afternoon
    assert CALENDAR_TIME.is_always_open
    assert CALENDAR_TIME.add_business_seconds(start, HOUR) == berlin("2026-01-09", 17, 30)
    assert CALENDAR_TIME.business_seconds_between(start, berlin("2026-01-12", 16, 30)) == 72 * HOUR
    assert CALENDAR_TIME.business_seconds_between(berlin("2026-03-29"), berlin("2026-03-30")) == (
        23 * HOUR
    )
    assert CALENDAR_TIME.is_open(berlin("2026-01-10", 3))


def test_instants_may_come_in_any_time_zone() -> None:
    # Given Mon 09:00 CET as UTC and Mon 12:00 CET as New York time (06:00 EST)
    start, end = utc("2026-01-12", 8), new_york("2026-01-12", 6)
    assert OFFICE.business_seconds_between(start, end) == 3 * HOUR


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValidationError) as refused:
        OFFICE.business_seconds_between(datetime(2026, 1, 12, 9), utc("2026-01-12", 10))
    assert refused.value.details == {"field": "start"}
    with pytest.raises(ValidationError) as refused:
        OFFICE.is_open(datetime(2026, 1, 12, 9))
    assert refused.value.details == {"field": "instant"}


def test_negative_business_time_cannot_be_added() -> None:
    with pytest.raises(ValidationError) as refused:
        OFFICE.add_business_seconds(utc("2026-01-12", 10), -1)
    assert refused.value.details == {"field": "seconds"}


GERMAN_HOLIDAYS_2026 = [
    "2026-01-01",  # Thu, New Year
    "2026-04-03",  # Fri, Good Friday
    "2026-04-06",  # Mon, Easter Monday
    "2026-05-01",  # Fri, Labour Day
    "2026-05-14",  # Thu, Ascension
    "2026-05-25",  # Mon, Whit Monday
    "2026-10-03",  # Sat, Unity Day (a weekend: changes nothing)
    "2026-12-25",  # Fri, Christmas
    "2026-12-26",  # Sat, Boxing Day (a weekend: changes nothing)
]


def test_a_year_of_office_hours_counts_every_working_day_once() -> None:
    # Given 2026: 365 days from a Thursday = 52 weeks + 1 Thursday = 261 weekdays,
    # 7 of them holidays, so 254 working days of 8 hours; both DST changes fall on Sundays
    calendar = BusinessCalendar.create("Europe/Berlin", NINE_TO_FIVE, GERMAN_HOLIDAYS_2026)
    start, end = berlin("2026-01-01"), berlin("2027-01-01")
    # When measuring the whole year (timed once, for the report; no timing assertion)
    began = stopwatch.perf_counter()
    seconds = calendar.business_seconds_between(start, end)
    due = calendar.add_business_seconds(start, seconds)
    elapsed = stopwatch.perf_counter() - began
    # Then
    assert seconds == 254 * 8 * HOUR
    assert due == berlin("2026-12-31", 17)  # the last working day's closing
    print(f"one-year span, both directions: {elapsed * 1000:.2f} ms")


def test_a_year_long_span_walks_only_its_edges_and_the_weeks_the_clocks_change(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a count of the days whose hours are worked out one by one
    days: list[date] = []
    original = BusinessCalendar._intervals

    def counted(self: BusinessCalendar, day: date) -> Any:
        days.append(day)
        return original(self, day)

    monkeypatch.setattr(BusinessCalendar, "_intervals", counted)
    calendar = BusinessCalendar.create("Europe/Berlin", NINE_TO_FIVE, GERMAN_HOLIDAYS_2026)
    # When measuring a year
    calendar.business_seconds_between(berlin("2026-01-01"), berlin("2027-01-01"))
    # Then whole weeks were skipped: a few edge days plus the two DST weeks, not 365 days
    assert len(days) < 40
    assert {date(2026, 3, 29), date(2026, 10, 25)} <= set(days)


# --- construction -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({"time_zone": "Mars/Olympus_Mons", "hours": NINE_TO_FIVE}, "time_zone"),
        ({"time_zone": "Europe/Berlin", "hours": {}}, "weekly_hours"),
        ({"time_zone": "Europe/Berlin", "hours": {"mon": [("17:00", "09:00")]}}, "weekly_hours"),
        (
            {
                "time_zone": "Europe/Berlin",
                "hours": {"mon": [("09:00", "13:00"), ("12:00", "17:00")]},
            },
            "weekly_hours",
        ),
        ({"time_zone": "Europe/Berlin", "hours": {"monday": [("09:00", "17:00")]}}, "weekly_hours"),
        ({"time_zone": "Europe/Berlin", "hours": {"mon": [("9am", "5pm")]}}, "weekly_hours"),
        (
            {"time_zone": "Europe/Berlin", "hours": NINE_TO_FIVE, "holidays": ["25/12/2026"]},
            "holidays",
        ),
    ],
)
def test_an_invalid_calendar_is_refused_naming_the_field(
    arguments: dict[str, Any], field: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        BusinessCalendar.create(**arguments)
    assert refused.value.details == {"field": field}


def test_a_calendar_survives_a_round_trip_through_plain_values() -> None:
    calendar = BusinessCalendar.create(
        "America/New_York",
        {"mon": [("09:00", "12:00"), ("13:00", "17:30")], "sat": [("22:00", "24:00")]},
        ["2026-07-03"],
    )
    plain = calendar.as_dict()
    assert plain == {
        "time_zone": "America/New_York",
        "weekly_hours": {
            "mon": [["09:00", "12:00"], ["13:00", "17:30"]],
            "sat": [["22:00", "24:00"]],
        },
        "holidays": ["2026-07-03"],
    }
    assert BusinessCalendar.from_dict(plain) == calendar


def test_a_calendar_built_from_lists_is_frozen_into_tuples() -> None:
    # Given weekly hours and holidays as lists, as decoded JSON would give them
    weekly: Any = [[(time(9), time(17))]] * 5 + [[], []]
    holidays: Any = [date(2026, 12, 25)]
    calendar = BusinessCalendar("Europe/Berlin", weekly, holidays)
    # Then it equals (and hashes like) the same calendar built from tuples
    expected = BusinessCalendar.create("Europe/Berlin", NINE_TO_FIVE, ["2026-12-25"])
    assert calendar == expected
    assert hash(calendar) == hash(expected)
    assert isinstance(calendar.weekly_hours[0], tuple)


def test_a_fold_on_the_given_hours_changes_nothing() -> None:
    # Given 02:30 written with fold=1 (the later of the two on a fall-back night)
    folded = BusinessCalendar.create("Europe/Berlin", {"sun": [(time(2, 30, fold=1), time(5))]})
    plain = BusinessCalendar.create("Europe/Berlin", {"sun": [("02:30", "05:00")]})
    start, end = berlin("2026-10-25"), berlin("2026-10-26")
    # Then the calendar's own rule (first occurrence) still decides
    assert folded.business_seconds_between(start, end) == plain.business_seconds_between(start, end)
