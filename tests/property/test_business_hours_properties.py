"""Properties of business-time arithmetic over random calendars, zones and instants.

Calendars get random weekly hours (any minute, split shifts, hours ending at midnight) and
holidays in zones with one-hour, half-hour and midnight clock changes; instants cluster around
those changes. Durations are compared as exact `timedelta`s, microsecond for microsecond.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from ticketing.domain.business_hours import (
    CALENDAR_TIME,
    MIDNIGHT,
    WEEKDAYS,
    ZERO,
    BusinessCalendar,
)

ZONES = [
    "Europe/Berlin",
    "America/New_York",
    "America/Santiago",  # changes at midnight: 24:00 and 00:00 repeat or vanish
    "Australia/Lord_Howe",  # a half-hour change
    "Asia/Kolkata",  # no DST, a half-hour offset
    "UTC",
]
EARLIEST, LATEST = datetime(2025, 1, 1, tzinfo=UTC), datetime(2028, 12, 31, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)


def _clock_changes(zone_name: str, year: int) -> list[datetime]:
    """The hours (UTC) in which `zone_name` changed its offset during `year`."""
    zone = ZoneInfo(zone_name)
    moment = datetime(year, 1, 1, tzinfo=UTC)
    changes = []
    offset = moment.astimezone(zone).utcoffset()
    while moment.year == year:
        moment += timedelta(hours=1)
        current = moment.astimezone(zone).utcoffset()
        if current != offset:
            changes.append(moment)
            offset = current
    return changes


CLOCK_CHANGES = sorted({c for zone in ZONES for c in _clock_changes(zone, 2026)})


def _minute(value: int) -> time:
    return MIDNIGHT if value == 1440 else time(value // 60, value % 60)


@st.composite
def day_hours(draw: st.DrawFn) -> tuple[tuple[time, time], ...]:
    """Sorted, non-overlapping intervals on minute boundaries; 1440 is the end of the day."""
    bounds = sorted(draw(st.sets(st.integers(0, 1440), max_size=6)))
    pairs = zip(bounds[::2], bounds[1::2], strict=False)
    return tuple((_minute(start), _minute(end)) for start, end in pairs)


@st.composite
def calendars(draw: st.DrawFn) -> BusinessCalendar:
    week = tuple(draw(day_hours()) for _ in WEEKDAYS)
    if not any(week):
        week = (((time(9), time(17)),), *week[1:])
    holidays = draw(st.frozensets(st.dates(date(2025, 1, 1), date(2028, 12, 31)), max_size=30))
    return BusinessCalendar(draw(st.sampled_from(ZONES)), week, holidays)


instants = st.one_of(
    st.datetimes(
        EARLIEST.replace(tzinfo=None), LATEST.replace(tzinfo=None), timezones=st.just(UTC)
    ),
    st.builds(
        lambda change, shift: change + shift,
        st.sampled_from(CLOCK_CHANGES),
        st.timedeltas(-timedelta(days=2), timedelta(days=2)),
    ),
)
durations = st.timedeltas(ZERO, timedelta(days=400))


@given(calendars(), instants, instants, instants)
def test_business_time_is_additive(
    calendar: BusinessCalendar, a: datetime, b: datetime, c: datetime
) -> None:
    a, b, c = sorted((a, b, c))
    assert calendar.business_time_between(a, b) + calendar.business_time_between(
        b, c
    ) == calendar.business_time_between(a, c)


@given(calendars(), instants, instants)
def test_business_time_lies_between_nothing_and_the_elapsed_time(
    calendar: BusinessCalendar, a: datetime, b: datetime
) -> None:
    start, end = min(a, b), max(a, b)
    assert ZERO <= calendar.business_time_between(start, end) <= end - start
    assert calendar.business_time_between(end, start) == -calendar.business_time_between(start, end)


@given(calendars(), instants, durations)
def test_adding_business_time_lands_where_exactly_that_much_has_elapsed(
    calendar: BusinessCalendar, start: datetime, amount: timedelta
) -> None:
    due = calendar.add_business_time(start, amount)
    assert calendar.business_time_between(start, due) == amount
    if amount > ZERO:
        # the earliest such instant: business time was running just before it
        assert calendar.is_open(due - MICROSECOND)
        assert calendar.business_time_between(start, due - MICROSECOND) < amount


@given(calendars(), instants, instants)
def test_adding_the_time_between_two_instants_stops_no_later_than_the_second(
    calendar: BusinessCalendar, a: datetime, b: datetime
) -> None:
    start, end = min(a, b), max(a, b)
    due = calendar.add_business_time(start, calendar.business_time_between(start, end))
    assert start <= due <= end
    assert calendar.business_time_between(due, end) == ZERO


@given(calendars(), instants, st.integers(0, 400 * 86_400))
def test_business_seconds_round_trip_through_adding_them(
    calendar: BusinessCalendar, start: datetime, seconds: int
) -> None:
    due = calendar.add_business_seconds(start, seconds)
    assert calendar.business_seconds_between(start, due) == seconds


@given(calendars(), instants)
def test_an_instant_is_open_exactly_when_the_next_microsecond_is_business_time(
    calendar: BusinessCalendar, instant: datetime
) -> None:
    assert calendar.is_open(instant) == (
        calendar.business_time_between(instant, instant + MICROSECOND) == MICROSECOND
    )


@given(calendars(), instants, st.timedeltas(timedelta(days=14), timedelta(days=1000)))
def test_a_long_span_measures_the_same_as_its_short_pieces(
    calendar: BusinessCalendar, start: datetime, length: timedelta
) -> None:
    # Five-day pieces never hold a whole week, so they are walked day by day.
    end = start + length
    pieces = []
    cursor = start
    while cursor < end:
        pieces.append((cursor, min(cursor + timedelta(days=5), end)))
        cursor += timedelta(days=5)
    walked = sum((calendar.business_time_between(s, e) for s, e in pieces), ZERO)
    assert calendar.business_time_between(start, end) == walked


@given(st.sampled_from(ZONES), instants, durations)
def test_hours_covering_every_day_measure_elapsed_time_in_any_zone(
    zone: str, start: datetime, amount: timedelta
) -> None:
    # Split at noon so that the general path runs, not the 24x7 shortcut.
    around_the_clock = BusinessCalendar.create(
        zone, {day: [("00:00", "12:00"), ("12:00", "24:00")] for day in WEEKDAYS}
    )
    assert not around_the_clock.is_always_open
    end = start + amount
    assert around_the_clock.business_time_between(start, end) == amount
    assert around_the_clock.add_business_time(start, amount) == end
    assert CALENDAR_TIME.business_time_between(start, end) == amount
