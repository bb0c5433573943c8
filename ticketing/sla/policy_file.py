"""SLA policy files: one policy (and the calendars it runs on) as TOML, checked before anything
is published or replayed.

A file::

    policy = "default"            # the policy id
    calendar = "office"           # optional; left out, targets run on 24x7 calendar time
    warning_at = 0.75             # optional
    [default]                     # targets in whole minutes of business time
    first_reply = 480
    [targets.enterprise.urgent]   # a tier x priority pair replaces `default` as a whole
    first_reply = 30
    [pauses]                      # optional, per metric
    resolution = ["pending", "on_hold"]
    [calendars.office]            # optional inline calendars, published before the policy
    time_zone = "Europe/Berlin"
    hours = { mon = [["09:00", "17:00"]] }
    holidays = ["2026-12-25"]

The policy becomes the definition `ticketing.domain.sla_definitions` describes; every error
names the file and the field (`targets.gold.urgent`, `calendars.office.hours`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ticketing.domain.errors import TicketingError, ValidationError
from ticketing.domain.sla_definitions import checked_calendar_definition, checked_policy_definition
from ticketing.domain.values import IDENTIFIER_PATTERN
from ticketing.toml_files import read_toml

_POLICY_FIELDS = ("calendar", "default", "targets", "pauses", "warning_at")
_FILE_KEYS = {"policy", "calendars", *_POLICY_FIELDS}
_CALENDAR_KEYS = {"time_zone", "hours", "holidays"}


class PolicyFileError(TicketingError):
    """A policy file that cannot be read or does not describe a valid policy."""

    code = "policy_file_error"


@dataclass(frozen=True)
class PolicyFile:
    """A checked policy file: the policy's id and definition, and its inline calendars."""

    path: Path
    policy_id: str
    definition: dict[str, Any]
    calendars: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def calendar_id(self) -> str | None:
        calendar: str | None = self.definition["calendar"]
        return calendar


def load_policy_file(path: Path) -> PolicyFile:
    """Read and check `path`; any problem raises `PolicyFileError` naming the file and field."""
    return parse_policy(read_toml(path, PolicyFileError, "policy file"), path)


def parse_policy(data: dict[str, Any], path: Path) -> PolicyFile:
    """Check parsed TOML (`path` only names the source in errors)."""

    def fail(message: str, where: str) -> PolicyFileError:
        return PolicyFileError(f"{path}: {where}: {message}", file=str(path), field=where)

    unknown = sorted(set(data) - _FILE_KEYS)
    if unknown:
        known = ", ".join(sorted(_FILE_KEYS))
        raise fail(f"unknown field; known: {known}", unknown[0])
    policy_id = data.get("policy")
    if not isinstance(policy_id, str) or not IDENTIFIER_PATTERN.match(policy_id):
        raise fail(f"the policy id is a short identifier, got {policy_id!r}", "policy")
    raw = {name: data[name] for name in _POLICY_FIELDS if name in data}
    try:
        definition = checked_policy_definition(raw)
    except ValidationError as error:
        raise fail(error.message, _file_field(error, "definition.")) from None
    calendars_table = data.get("calendars", {})
    if not isinstance(calendars_table, dict):
        raise fail("calendars is a table of calendar id -> calendar", "calendars")
    calendars = {
        calendar_id: _calendar(calendar_id, raw_calendar, fail)
        for calendar_id, raw_calendar in sorted(calendars_table.items())
    }
    return PolicyFile(path, policy_id, definition, calendars)


def _calendar(
    calendar_id: str, raw: Any, fail: Callable[[str, str], PolicyFileError]
) -> dict[str, Any]:
    where = f"calendars.{calendar_id}"
    if not IDENTIFIER_PATTERN.match(calendar_id):
        raise fail(f"a calendar id is a short identifier, got {calendar_id!r}", where)
    if not isinstance(raw, dict):
        raise fail("a calendar is a table with time_zone, hours and holidays", where)
    unknown = sorted(set(raw) - _CALENDAR_KEYS)
    if unknown:
        known = ", ".join(sorted(_CALENDAR_KEYS))
        raise fail(f"unknown field; known: {known}", f"{where}.{unknown[0]}")
    for key in ("time_zone", "hours"):
        if key not in raw:
            raise fail("required", f"{where}.{key}")
    holidays = raw.get("holidays", [])
    if not isinstance(holidays, list):
        raise fail("holidays is a list of dates", f"{where}.holidays")
    definition = {
        "time_zone": raw["time_zone"],
        "weekly_hours": raw["hours"],
        # TOML has a date type: `2026-12-25` and `"2026-12-25"` mean the same holiday
        "holidays": [h.isoformat() if isinstance(h, dt.date) else h for h in holidays],
    }
    try:
        return checked_calendar_definition(definition)
    except ValidationError as error:
        name = _file_field(error, "definition.").replace("weekly_hours", "hours")
        field_name = f"{where}.{name}" if name != "definition" else where
        raise fail(error.message, field_name) from None


def _file_field(error: ValidationError, prefix: str) -> str:
    """The domain's field name (`definition.targets.gold`) as the file spells it."""
    name = str(error.details.get("field", "")) or "definition"
    return name.removeprefix(prefix)
