"""Every published version of every SLA policy and calendar, folded from their events.

Readers of the stream keep one catalog so that a ticket's pinned (policy, calendar) versions
turn into the exact `SlaPolicy` it is measured against, whenever they look."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from ticketing.domain.business_hours import BusinessCalendar
from ticketing.domain.sla_definitions import build_policy, warning_at
from ticketing.domain.sla_policy import SlaPolicy

CATALOG_EVENT_TYPES = frozenset(
    {"SlaPolicyPublished", "SlaPolicyRevised", "CalendarPublished", "CalendarRevised"}
)


@dataclass(frozen=True)
class Pin:
    """The versions a ticket is measured against (`SlaPolicyApplied`)."""

    policy_id: str
    policy_version: int
    calendar_id: str | None = None
    calendar_version: int | None = None

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> Pin:
        return cls(
            payload["policy_id"],
            int(payload["policy_version"]),
            payload.get("calendar_id"),
            payload.get("calendar_version"),
        )


@dataclass
class SlaCatalog:
    """`policies[policy_id][version]` and `calendars[calendar_id][version]` definitions."""

    policies: dict[str, dict[int, dict[str, Any]]] = field(default_factory=dict)
    calendars: dict[str, dict[int, dict[str, Any]]] = field(default_factory=dict)
    names: dict[str, tuple[str, str]] = field(default_factory=dict)
    """aggregate id -> ("policy" | "calendar", readable id), for the revision events."""

    def add(self, payload: dict[str, Any]) -> bool:
        """Fold one stream event; False when it is not a catalog event."""
        kind = payload.get("type")
        aggregate_id = str(payload["aggregate_id"]) if kind in CATALOG_EVENT_TYPES else ""
        if kind == "SlaPolicyPublished":
            self.names[aggregate_id] = ("policy", payload["policy_id"])
        elif kind == "CalendarPublished":
            self.names[aggregate_id] = ("calendar", payload["calendar_id"])
        elif kind not in CATALOG_EVENT_TYPES:
            return False
        family, name = self.names[aggregate_id]
        table = self.policies if family == "policy" else self.calendars
        table.setdefault(name, {})[int(payload["version"])] = payload["definition"]
        return True

    def policy(self, pin: Pin) -> SlaPolicy:
        """The exact policy a pinned ticket is measured against."""
        definition = self.policies[pin.policy_id][pin.policy_version]
        calendar = None
        if pin.calendar_id is not None and pin.calendar_version is not None:
            calendar = self.calendars[pin.calendar_id][pin.calendar_version]
        return _policy(
            pin.policy_id,
            pin.policy_version,
            json.dumps(definition, sort_keys=True),
            json.dumps(calendar, sort_keys=True) if calendar else None,
        )

    def warning_at(self, pin: Pin) -> float:
        return warning_at(self.policies[pin.policy_id][pin.policy_version])

    def knows(self, pin: Pin) -> bool:
        policy_known = pin.policy_version in self.policies.get(pin.policy_id, {})
        calendar_known = pin.calendar_id is None or pin.calendar_version in self.calendars.get(
            pin.calendar_id, {}
        )
        return policy_known and calendar_known

    def to_json(self) -> str:
        return json.dumps(
            {
                "policies": self.policies,
                "calendars": self.calendars,
                "names": self.names,
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str) -> SlaCatalog:
        data = json.loads(text)

        def versions(table: dict[str, Any]) -> dict[str, dict[int, dict[str, Any]]]:
            return {k: {int(v): d for v, d in vs.items()} for k, vs in table.items()}

        return cls(
            versions(data["policies"]),
            versions(data["calendars"]),
            {k: (v[0], v[1]) for k, v in data["names"].items()},
        )


@lru_cache(maxsize=256)
def _policy(policy_id: str, version: int, definition: str, calendar: str | None) -> SlaPolicy:
    """Built once per pinned pair: calendars precompute their week."""
    return build_policy(
        policy_id,
        version,
        json.loads(definition),
        BusinessCalendar.from_dict(json.loads(calendar)) if calendar else None,
    )
