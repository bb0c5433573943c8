"""When things happen: commands may carry a historical time, otherwise the clock says now."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_now() -> datetime:
    return datetime.now(UTC)


def as_utc(moment: datetime) -> datetime:
    """Normalise an aware time to UTC; naive times are refused because they are ambiguous."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("time must carry a time zone")
    return moment.astimezone(UTC)
