"""Business calendars: weekly opening hours, a time zone and holidays, and time measured in them.

An instant is *open* when it lies in one of the calendar's open intervals. Each weekday has a
list of local wall-clock intervals `[start, end)` (an `end` of 00:00 means midnight at the end
of the day, so 00:00-00:00 is the whole day); a holiday closes its whole local date. Each
interval of a local date becomes one span of UTC instants:

- a start that happens twice (the fall-back overlap) is its first occurrence and an end that
  happens twice is its last, so a shift from 01:00 to 04:00 on the night the clocks go back
  lasts four hours: the open span covers every instant whose wall clock reads inside it;
- a wall time that never happens (the spring-forward gap) is the instant the clocks jump, so
  09:00-17:00 is unaffected and 01:00-04:00 on the night the clocks go forward lasts two hours;
- where two spans overlap (only possible around a fall-back), the time is counted once.

Business time between two instants is the length of the open spans between them; adding
business time to an instant gives the earliest instant by which that much has elapsed (so a
target that ends exactly at closing time is due at closing time, not at the next opening).
Whole weeks without a holiday or a UTC offset change are skipped arithmetically, so a span of
years costs a few hundred steps.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ticketing.domain.errors import ValidationError

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
"""Weekday keys in `datetime.weekday()` order, as used by `create` and `as_dict`."""

MIDNIGHT = time(0)
ZERO = timedelta(0)
ONE_DAY = timedelta(days=1)
ONE_WEEK = timedelta(days=7)
_FULL_DAY = ((MIDNIGHT, MIDNIGHT),)

Interval = tuple[time, time]
"""Local `(start, end)` wall-clock times; `end == 00:00` means the end of the day."""


@dataclass(frozen=True)
class BusinessCalendar:
    """When the clock of a business-hours SLA runs: weekly hours in a time zone, minus holidays.

    `weekly_hours` has seven entries, Monday first, each a sorted tuple of non-overlapping
    `(start, end)` local times. `create` builds one from plain strings and `as_dict` turns it
    back into them, so a calendar can travel in an event.
    """

    time_zone: str
    weekly_hours: tuple[tuple[Interval, ...], ...]
    holidays: frozenset[date] = frozenset()
    _zone: ZoneInfo = field(init=False, repr=False, compare=False, hash=False)
    _holiday_list: tuple[date, ...] = field(init=False, repr=False, compare=False, hash=False)
    _day_time: tuple[timedelta, ...] = field(init=False, repr=False, compare=False, hash=False)
    _always_open: bool = field(init=False, repr=False, compare=False, hash=False)
    _memo: dict[tuple[str, date], Any] = field(
        init=False, repr=False, compare=False, hash=False, default_factory=dict
    )
    """Per-date results (UTC spans, regular-week totals): the same few weeks are asked about
    for every ticket, and a calendar never changes."""

    def __post_init__(self) -> None:
        try:
            zone = ZoneInfo(self.time_zone)
        except (ZoneInfoNotFoundError, ValueError, TypeError) as exc:
            raise ValidationError(
                f"unknown IANA time zone {self.time_zone!r}", field="time_zone"
            ) from exc
        try:  # accept lists as well as tuples, so that the value stays hashable and frozen
            weekly = tuple(tuple(tuple(interval) for interval in day) for day in self.weekly_hours)
            holidays = frozenset(self.holidays)
        except TypeError as exc:
            raise ValidationError(
                "weekly_hours holds (start, end) pairs per weekday", field="weekly_hours"
            ) from exc
        object.__setattr__(self, "weekly_hours", weekly)
        object.__setattr__(self, "holidays", holidays)
        if len(self.weekly_hours) != len(WEEKDAYS):
            raise ValidationError(
                "weekly_hours needs one entry per weekday, Monday first", field="weekly_hours"
            )
        for weekday, intervals in zip(WEEKDAYS, self.weekly_hours, strict=True):
            _check_day(weekday, intervals)
        day_time = tuple(sum((_length(i) for i in day), ZERO) for day in self.weekly_hours)
        if sum(day_time, ZERO) == ZERO:
            raise ValidationError(
                "a calendar must be open at some time of the week", field="weekly_hours"
            )
        if not all(isinstance(d, date) and not isinstance(d, datetime) for d in self.holidays):
            raise ValidationError("holidays must be local dates", field="holidays")
        object.__setattr__(self, "_zone", zone)
        object.__setattr__(self, "_holiday_list", tuple(sorted(self.holidays)))
        object.__setattr__(self, "_day_time", day_time)
        object.__setattr__(
            self,
            "_always_open",
            not self.holidays and all(day == _FULL_DAY for day in self.weekly_hours),
        )

    # --- construction ---------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        time_zone: str,
        hours: Mapping[str, Iterable[Sequence[str | time]]],
        holidays: Iterable[date | str] = (),
    ) -> BusinessCalendar:
        """Build from `{"mon": [("09:00", "17:00")], ...}`; days left out are closed. An end of
        "24:00" (or "00:00") means the end of the day."""
        unknown = set(hours) - set(WEEKDAYS)
        if unknown:
            raise ValidationError(
                f"unknown weekdays {sorted(unknown)}; use {', '.join(WEEKDAYS)}",
                field="weekly_hours",
            )
        weekly = tuple(
            tuple(_parse_interval(day, pair) for pair in hours.get(day, ())) for day in WEEKDAYS
        )
        try:
            dates = frozenset(d if isinstance(d, date) else date.fromisoformat(d) for d in holidays)
        except (TypeError, ValueError) as exc:
            raise ValidationError(f"holidays must be ISO dates: {exc}", field="holidays") from exc
        return cls(time_zone=time_zone, weekly_hours=weekly, holidays=dates)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BusinessCalendar:
        """The inverse of `as_dict`."""
        return cls.create(data["time_zone"], data["weekly_hours"], data.get("holidays", ()))

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON values: `{"time_zone", "weekly_hours": {"mon": [["09:00", "17:00"]]},
        "holidays": ["2026-12-25"]}`."""
        return {
            "time_zone": self.time_zone,
            "weekly_hours": {
                day: [[_format(start, end=False), _format(end, end=True)] for start, end in ivs]
                for day, ivs in zip(WEEKDAYS, self.weekly_hours, strict=True)
                if ivs
            },
            "holidays": [d.isoformat() for d in self._holiday_list],
        }

    # --- queries --------------------------------------------------------------------------

    @property
    def is_always_open(self) -> bool:
        """True for a 24x7 calendar without holidays: business time is elapsed time."""
        return self._always_open

    def is_open(self, instant: datetime) -> bool:
        """Whether the business clock runs at `instant` (intervals are half-open)."""
        moment = _utc(instant, "instant")
        if self._always_open:
            return True
        local_day = moment.astimezone(self._zone).date()
        return any(
            start <= moment < end
            for day in (local_day - ONE_DAY, local_day, local_day + ONE_DAY)
            for start, end in self._intervals(day)
        )

    def business_seconds_between(self, start: datetime, end: datetime) -> float:
        """Seconds of business time from `start` to `end` (negative when `end` is earlier)."""
        return self.business_time_between(start, end).total_seconds()

    def add_business_seconds(self, start: datetime, seconds: float) -> datetime:
        """The earliest UTC instant by which `seconds` of business time have elapsed since
        `start`; `start` itself (in UTC) for zero."""
        return self.add_business_time(start, timedelta(seconds=seconds))

    def business_time_between(self, start: datetime, end: datetime) -> timedelta:
        """Business time from `start` to `end`, exact to the microsecond; antisymmetric, so
        `between(a, b) + between(b, c) == between(a, c)` for any order."""
        low, high = _utc(start, "start"), _utc(end, "end")
        if high < low:
            return -self.business_time_between(end, start)
        if self._always_open:
            return high - low
        first = low.astimezone(self._zone).date() - ONE_DAY
        last = high.astimezone(self._zone).date() + ONE_DAY
        # Open spans of dates two days inside the span's local dates lie wholly within it.
        inner_first, inner_last = first + 3 * ONE_DAY, last - 3 * ONE_DAY
        total = ZERO
        day = first
        previous_end: datetime | None = None
        while day <= last:
            if day.weekday() == 0 and inner_first <= day and day + 6 * ONE_DAY <= inner_last:
                week = self._regular_week_time(day)
                if week is not None:
                    total += week
                    day += ONE_WEEK
                    previous_end = None
                    continue
            spans, previous_end = self._disjoint_spans(day, previous_end)
            for open_at, close_at in spans:
                overlap = min(close_at, high) - max(open_at, low)
                if overlap > ZERO:
                    total += overlap
            day += ONE_DAY
        return total

    def add_business_time(self, start: datetime, amount: timedelta) -> datetime:
        """The earliest UTC instant by which `amount` of business time has elapsed since
        `start`: `business_time_between(start, result) == amount`."""
        moment = _utc(start, "start")
        if amount < ZERO:
            raise ValidationError("business time to add cannot be negative", field="seconds")
        if amount == ZERO:
            return moment
        if self._always_open:
            return moment + amount
        remaining = amount
        day = moment.astimezone(self._zone).date() - ONE_DAY
        inner_first = day + 3 * ONE_DAY
        previous_end: datetime | None = None
        while True:
            if day.weekday() == 0 and day >= inner_first:
                week = self._regular_week_time(day)
                # Strictly more than a week left: the answer lies beyond this week.
                if week is not None and remaining > week:
                    remaining -= week
                    day += ONE_WEEK
                    previous_end = None
                    continue
            spans, previous_end = self._disjoint_spans(day, previous_end)
            for open_at, close_at in spans:
                counted_from = max(open_at, moment)
                if close_at <= counted_from:
                    continue
                if close_at - counted_from >= remaining:
                    return counted_from + remaining
                remaining -= close_at - counted_from
            day += ONE_DAY

    # --- internals ------------------------------------------------------------------------

    def _intervals(self, day: date) -> list[tuple[datetime, datetime]]:
        """The UTC spans of one local date's open intervals (not yet de-overlapped)."""
        key = ("intervals", day)
        if key not in self._memo:
            self._memo[key] = self._compute_intervals(day)
        spans: list[tuple[datetime, datetime]] = self._memo[key]
        return spans

    def _compute_intervals(self, day: date) -> list[tuple[datetime, datetime]]:
        if day in self.holidays:
            return []
        spans = []
        for start, end in self.weekly_hours[day.weekday()]:
            end_day = day + ONE_DAY if end == MIDNIGHT else day
            spans.append(
                (
                    _instant(self._zone, datetime.combine(day, start), last=False),
                    _instant(self._zone, datetime.combine(end_day, end), last=True),
                )
            )
        return spans

    def _disjoint_spans(
        self, day: date, previous_end: datetime | None
    ) -> tuple[list[tuple[datetime, datetime]], datetime | None]:
        """One date's spans with any part already covered by an earlier span cut off (spans
        overlap only around a fall-back), and the end of the last span so far."""
        spans = []
        for open_at, close_at in self._intervals(day):
            start = open_at if previous_end is None else max(open_at, previous_end)
            if close_at > start:
                spans.append((start, close_at))
                previous_end = close_at
        return spans, previous_end

    def _regular_week_time(self, monday: date) -> timedelta | None:
        """Business time of the local week starting `monday` when one UTC offset holds all
        week (then every interval lasts its nominal length); `None` when the offset changes,
        and the week must be walked day by day."""
        key = ("week", monday)
        if key not in self._memo:
            self._memo[key] = self._compute_week_time(monday)
        week: timedelta | None = self._memo[key]
        return week

    def _compute_week_time(self, monday: date) -> timedelta | None:
        offset: timedelta | None = None
        for index in range(8):
            midnight = datetime.combine(monday + index * ONE_DAY, MIDNIGHT, tzinfo=self._zone)
            earlier, later = _offset(midnight), _offset(midnight.replace(fold=1))
            if earlier != later or (offset is not None and earlier != offset):
                return None
            offset = earlier
        total = sum(self._day_time, ZERO)
        first = bisect.bisect_left(self._holiday_list, monday)
        stop = bisect.bisect_left(self._holiday_list, monday + ONE_WEEK)
        for holiday in self._holiday_list[first:stop]:
            total -= self._day_time[holiday.weekday()]
        return total


def _utc(moment: datetime, name: str) -> datetime:
    if not isinstance(moment, datetime) or moment.utcoffset() is None:
        raise ValidationError(f"{name} must be a time-zone-aware datetime", field=name)
    return moment.astimezone(UTC)


def _offset(moment: datetime) -> timedelta:
    offset = moment.utcoffset()
    if offset is None:  # pragma: no cover - only called with ZoneInfo-aware datetimes
        raise ValueError("expected an aware datetime")
    return offset


def _instant(zone: ZoneInfo, wall: datetime, *, last: bool) -> datetime:
    """The UTC instant of a naive local wall time: first occurrence of a repeated time unless
    `last`, and the moment the clocks jump for a time that never happens."""
    wall = wall.replace(fold=0)  # a `time` may carry fold=1; the rule above decides instead
    earlier = _offset(wall.replace(tzinfo=zone))
    later = _offset(wall.replace(tzinfo=zone, fold=1))
    if earlier == later:
        return (wall - earlier).replace(tzinfo=UTC)
    if earlier > later:  # fall-back overlap: the wall time happens twice
        return (wall - (later if last else earlier)).replace(tzinfo=UTC)
    # Spring-forward gap (PEP 495: fold=0 reads it with the offset before the jump, fold=1
    # with the one after). The jump lies between the two readings; find it by bisection.
    before = (wall - later).replace(tzinfo=UTC)  # still on the old offset
    after = (wall - earlier).replace(tzinfo=UTC)  # already on the new offset
    resolution = timedelta(microseconds=1)
    while after - before > resolution:
        middle = before + (after - before) / 2
        if _offset(middle.astimezone(zone)) == later:
            after = middle
        else:
            before = middle
    return after


_DAY_MICROSECONDS = 86_400_000_000


def _length(interval: Interval) -> timedelta:
    start, end = interval
    return timedelta(microseconds=_end_micros(end) - _micros(start))


def _micros(moment: time) -> int:
    seconds = (moment.hour * 60 + moment.minute) * 60 + moment.second
    return seconds * 1_000_000 + moment.microsecond


def _end_micros(moment: time) -> int:
    return _DAY_MICROSECONDS if moment == MIDNIGHT else _micros(moment)


def _check_day(weekday: str, intervals: Sequence[Interval]) -> None:
    previous_end = -1
    for interval in intervals:
        if (
            not isinstance(interval, tuple)
            or len(interval) != 2
            or not all(isinstance(t, time) and t.tzinfo is None for t in interval)
        ):
            raise ValidationError(
                f"{weekday}: each interval is a (start, end) pair of naive local times",
                field="weekly_hours",
            )
        start, end = interval
        start_us, end_us = _micros(start), _end_micros(end)
        if start_us >= end_us:
            raise ValidationError(
                f"{weekday}: interval {start}-{end} must end after it starts",
                field="weekly_hours",
            )
        if start_us < previous_end:
            raise ValidationError(
                f"{weekday}: intervals must be sorted and must not overlap",
                field="weekly_hours",
            )
        previous_end = end_us


def _parse_interval(weekday: str, pair: Sequence[str | time]) -> Interval:
    if len(pair) != 2:
        raise ValidationError(
            f"{weekday}: each interval is a (start, end) pair", field="weekly_hours"
        )
    return (_parse_time(weekday, pair[0]), _parse_time(weekday, pair[1]))


def _parse_time(weekday: str, value: str | time) -> time:
    if isinstance(value, time):
        return value
    if value == "24:00":
        return MIDNIGHT
    try:
        return time.fromisoformat(value)
    except (TypeError, ValueError) as exc:
        raise ValidationError(
            f"{weekday}: {value!r} is not a local time like 09:00", field="weekly_hours"
        ) from exc


def _format(moment: time, *, end: bool) -> str:
    if end and moment == MIDNIGHT:
        return "24:00"
    if moment.microsecond:
        return moment.isoformat(timespec="microseconds")
    return moment.isoformat(timespec="seconds" if moment.second else "minutes")


CALENDAR_TIME = BusinessCalendar(time_zone="UTC", weekly_hours=(_FULL_DAY,) * 7)
"""Around the clock, every day: for policies measured in calendar time."""
