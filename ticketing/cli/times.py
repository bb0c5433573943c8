"""One time syntax for every option, and times for people in their zone.

Input: ISO 8601 (`2026-11-24T09:30:00+01:00`, `…Z`); a time without a zone is in the chosen
zone (`--tz`, `TICKETING_TZ`, default UTC) and a date alone means midnight there. Output for
people: the chosen zone, named; `--json` stays UTC ISO 8601 for machines."""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo

from ticketing.cli.context import CliError
from ticketing.cli.exit_codes import USAGE

SYNTAX = "ISO 8601, e.g. 2026-11-24, 2026-11-24T09:30 or 2026-11-24T09:30:00+01:00"


def parse_moment(text: str, option: str, zone: tzinfo = UTC) -> datetime:
    """`text` as an aware UTC instant, or `invalid_time` (a usage error) naming `option`."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise CliError(
            "invalid_time", f"{option}: not a time: {text!r} ({SYNTAX})", USAGE
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return moment.astimezone(UTC)


def as_datetime(value: str | datetime) -> datetime:
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def local(value: str | datetime | None, zone: tzinfo, *, seconds: bool = False) -> str | None:
    """`2026-11-24 10:30 CET`: a stored UTC time as people in `zone` read it."""
    if value is None or value == "":
        return None
    moment = as_datetime(value).astimezone(zone)
    return moment.strftime("%Y-%m-%d %H:%M:%S %Z" if seconds else "%Y-%m-%d %H:%M %Z")


def local_iso(value: str | datetime, zone: tzinfo) -> str:
    """`2026-11-24T10:30:05+01:00`: one token, for tables people also cut with `awk`."""
    return as_datetime(value).astimezone(zone).isoformat(timespec="seconds")


def zone_name(zone: tzinfo) -> str:
    return "UTC" if zone is UTC else str(zone)
