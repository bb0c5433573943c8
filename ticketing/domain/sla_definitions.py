"""SLA policy and calendar definitions as plain JSON values: the shape they take in events and
in policy files, checked once here, and the pure `SlaPolicy` a pinned version builds.

A policy definition::

    {"calendar": "office",                      # a calendar id, or None for calendar time
     "default": {"first_reply": 480, "next_reply": 960, "resolution": 4320},
     "targets": {"enterprise": {"urgent": {"first_reply": 30, "resolution": 240}}},
     "pauses": {"resolution": ["pending", "on_hold"]},   # optional, per metric
     "warning_at": 0.75}                         # warn when this fraction of a target is used

Targets are whole minutes of the calendar's business time; a tier x priority pair without an
entry uses `default` as a whole; a metric left out is not measured.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ticketing.domain.business_hours import CALENDAR_TIME, BusinessCalendar
from ticketing.domain.errors import ValidationError
from ticketing.domain.sla_policy import DEFAULT_PAUSE_STATUSES, SlaMetric, SlaPolicy, SlaTargets
from ticketing.domain.values import IDENTIFIER_PATTERN, Priority, SlaTier, Status

DEFAULT_WARNING_AT = 0.75
MAX_TARGET_MINUTES = 5 * 366 * 24 * 60
"""Five years: longer is no service level, and larger values overflow date arithmetic."""
_POLICY_KEYS = {"calendar", "default", "targets", "pauses", "warning_at"}


def checked_policy_definition(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The definition in its one normal form, or a `ValidationError` naming the field."""
    if not isinstance(raw, Mapping):
        raise ValidationError("a policy definition is a table", field="definition")
    unknown = set(raw) - _POLICY_KEYS
    if unknown:
        raise ValidationError(
            f"unknown policy fields {sorted(unknown)}; known: {', '.join(sorted(_POLICY_KEYS))}",
            field=f"definition.{sorted(unknown)[0]}",
        )
    calendar = raw.get("calendar")
    if calendar is not None and (
        not isinstance(calendar, str) or not IDENTIFIER_PATTERN.match(calendar)
    ):
        raise ValidationError(
            f"calendar must be a calendar id or absent, got {calendar!r}",
            field="definition.calendar",
        )
    definition: dict[str, Any] = {
        "calendar": calendar,
        "default": _checked_targets(raw.get("default", {}), "definition.default"),
        "targets": _checked_matrix(raw.get("targets", {})),
        "pauses": _checked_pauses(raw.get("pauses", {})),
        "warning_at": _checked_fraction(raw.get("warning_at", DEFAULT_WARNING_AT)),
    }
    build_policy("check", 1, definition, CALENDAR_TIME)  # the pure model's checks as well
    return definition


def checked_calendar_definition(raw: Mapping[str, Any]) -> dict[str, Any]:
    """`{"time_zone", "weekly_hours": {"mon": [["09:00", "17:00"]]}, "holidays": [...]}`."""
    if not isinstance(raw, Mapping) or "time_zone" not in raw or "weekly_hours" not in raw:
        raise ValidationError(
            "a calendar needs time_zone and weekly_hours", field="definition.time_zone"
        )
    try:
        return BusinessCalendar.from_dict(raw).as_dict()
    except ValidationError as error:
        field = error.details.get("field", "")
        raise ValidationError(error.message, field=f"definition.{field}".rstrip(".")) from None
    except (TypeError, ValueError, AttributeError) as error:
        raise ValidationError(f"malformed calendar: {error}", field="definition") from None


def build_policy(
    policy_id: str,
    version: int,
    definition: Mapping[str, Any],
    calendar: BusinessCalendar | None,
) -> SlaPolicy:
    """The pure policy one pinned (policy version, calendar version) pair measures with."""
    targets = {
        (SlaTier(tier), Priority(priority)): SlaTargets(**values)
        for tier, by_priority in definition["targets"].items()
        for priority, values in by_priority.items()
    }
    pauses = {
        SlaMetric(metric): frozenset(Status(s) for s in statuses)
        for metric, statuses in definition["pauses"].items()
    }
    extra = {"pause_statuses": {**DEFAULT_PAUSE_STATUSES, **pauses}} if pauses else {}
    return SlaPolicy(
        name=policy_id,
        version=version,
        calendar=calendar or CALENDAR_TIME,
        default_targets=SlaTargets(**definition["default"]),
        targets=targets,
        **extra,
    )


def warning_at(definition: Mapping[str, Any]) -> float:
    return float(definition.get("warning_at", DEFAULT_WARNING_AT))


def _checked_targets(raw: Any, where: str) -> dict[str, int]:
    if not isinstance(raw, Mapping):
        raise ValidationError("targets are a table of metric = minutes", field=where)
    known = {m.value for m in SlaMetric}
    for metric, minutes in raw.items():
        if metric not in known:
            raise ValidationError(
                f"unknown metric {metric!r}; known: {', '.join(sorted(known))}",
                field=f"{where}.{metric}",
            )
        if (
            isinstance(minutes, bool)
            or not isinstance(minutes, int)
            or not 0 < minutes <= MAX_TARGET_MINUTES
        ):
            raise ValidationError(
                "a target is a positive whole number of minutes, at most "
                f"{MAX_TARGET_MINUTES} (five years), got {minutes!r}",
                field=f"{where}.{metric}",
            )
    return {metric: int(raw[metric]) for metric in sorted(raw)}


def _checked_matrix(raw: Any) -> dict[str, dict[str, dict[str, int]]]:
    if not isinstance(raw, Mapping):
        raise ValidationError("targets are a table tier -> priority -> metric", field="targets")
    matrix: dict[str, dict[str, dict[str, int]]] = {}
    for tier, by_priority in sorted(raw.items()):
        _member(SlaTier, tier, f"definition.targets.{tier}")
        if not isinstance(by_priority, Mapping):
            raise ValidationError("a tier holds priorities", field=f"definition.targets.{tier}")
        matrix[tier] = {}
        for priority, values in sorted(by_priority.items()):
            where = f"definition.targets.{tier}.{priority}"
            _member(Priority, priority, where)
            matrix[tier][priority] = _checked_targets(values, where)
    return matrix


def _checked_pauses(raw: Any) -> dict[str, list[str]]:
    if not isinstance(raw, Mapping):
        raise ValidationError("pauses are a table metric -> statuses", field="definition.pauses")
    pauses: dict[str, list[str]] = {}
    for metric, statuses in sorted(raw.items()):
        where = f"definition.pauses.{metric}"
        _member(SlaMetric, metric, where)
        if not isinstance(statuses, list | tuple):
            raise ValidationError("pauses list statuses", field=where)
        for status in statuses:
            _member(Status, status, where)
        pauses[metric] = sorted(set(statuses))
    return pauses


def _checked_fraction(raw: Any) -> float:
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not 0 < raw < 1:
        raise ValidationError(
            f"warning_at is a fraction between 0 and 1, got {raw!r}", field="definition.warning_at"
        )
    return float(raw)


def _member(kind: Any, value: Any, where: str) -> None:
    try:
        kind(value)
    except ValueError:
        known = ", ".join(m.value for m in kind)
        raise ValidationError(f"unknown value {value!r}; known: {known}", field=where) from None
