"""Versioned SLA policies and business-hours calendars.

Each is an aggregate named by a readable id; every publish that changes the definition is a new
version (the aggregate version). A ticket is measured against the policy version, and that
policy's calendar version, in force when it was opened (`SlaPolicyApplied` pins both; "in
force" compares world times: a version's `occurred_at` with the ticket's opening), so
publishing a new version never moves the due times of tickets already open, a version dated
in the future takes effect then, and imported history older than the first version is not
measured.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Self
from uuid import NAMESPACE_URL, UUID, uuid5

from ticketing.domain.chain import GENESIS_HASH, chained
from ticketing.domain.clock import as_utc, utc_now
from ticketing.domain.events import (
    CalendarPublished,
    CalendarRevised,
    SlaPolicyPublished,
    SlaPolicyRevised,
)
from ticketing.domain.recording import ChainedAggregate
from ticketing.domain.sla_definitions import (
    checked_calendar_definition,
    checked_policy_definition,
)
from ticketing.domain.values import Actor

_POLICY_NAMESPACE = uuid5(NAMESPACE_URL, "ticketing:sla-policy")
_CALENDAR_NAMESPACE = uuid5(NAMESPACE_URL, "ticketing:calendar")


def policy_uuid(policy_id: str) -> UUID:
    return uuid5(_POLICY_NAMESPACE, policy_id)


def calendar_uuid(calendar_id: str) -> UUID:
    return uuid5(_CALENDAR_NAMESPACE, calendar_id)


class _Versioned(ChainedAggregate):
    """A named definition whose history of versions is its event history."""

    def __init__(self) -> None:
        """State is set by `evolve`, so a replay builds it the same way."""
        self.name = ""
        self.definition: dict[str, Any] = {}
        self.published_at = utc_now()
        self.chain_head = GENESIS_HASH
        self.versions: list[tuple[int, datetime, dict[str, Any]]] = []
        """Every version: (number, in force from, definition)."""

    @classmethod
    def publish(
        cls,
        name: str,
        definition: dict[str, Any],
        *,
        actor: Actor,
        at: datetime | None = None,
        command_id: str = "",
    ) -> Self:
        """Version 1 of the definition called `name`."""
        created, name_field, uuid_of = cls._kind()
        new_id = uuid_of(name)
        fields = {
            name_field: name,
            "definition": cls._check(definition),
            "actor": actor.as_dict(),
            "occurred_at": as_utc(at) if at else utc_now(),
            "command_id": command_id,
        }
        return cls._create(created, id=new_id, **chained(created, new_id, 1, GENESIS_HASH, fields))

    def revise(
        self,
        definition: dict[str, Any],
        *,
        actor: Actor,
        at: datetime | None = None,
        command_id: str = "",
    ) -> None:
        """A new version, unless the definition is the same (then nothing is recorded)."""
        checked = self._check(definition)
        if checked != self.definition:
            self._record(self._revised_event(), actor, at, command_id, definition=checked)

    def evolve(self, event: Any) -> None:
        created, name_field, _ = self._kind()
        if isinstance(event, created):
            self.name = getattr(event, name_field)
        self.definition = event.definition
        self.published_at = event.occurred_at
        self.chain_head = event.event_hash
        self.versions.append((event.originator_version, event.occurred_at, event.definition))

    def version_at(self, moment: datetime) -> tuple[int, dict[str, Any]] | None:
        """The version in force at `moment` (world time): the latest one published at or
        before it, so a version published with a future `occurred_at` is a scheduled change
        and history older than the first version is not measured."""
        in_force = [(n, d) for n, at, d in self.versions if at <= moment]
        return max(in_force, key=lambda pair: pair[0]) if in_force else None

    def as_dict(self) -> dict[str, Any]:
        _, name_field, _ = self._kind()
        return {
            name_field: self.name,
            "version": self.version,
            "published_at": self.published_at.isoformat(),
            "definition": self.definition,
        }

    def _moment(self, at: datetime | None) -> datetime:
        return as_utc(at) if at else max(utc_now(), self.published_at)

    @staticmethod
    def _kind() -> tuple[Any, str, Callable[[str], UUID]]:
        """(the creating event, the field naming the definition, name -> aggregate id)."""
        raise NotImplementedError

    @staticmethod
    def _check(definition: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    @staticmethod
    def _revised_event() -> Any:
        raise NotImplementedError


class VersionedSlaPolicy(_Versioned):
    """An SLA policy: targets per tier x priority, the calendar they run on, pauses."""

    def __init__(self) -> None:  # an explicit __init__ stops the library generating one
        super().__init__()

    @property
    def policy_id(self) -> str:
        return self.name

    @staticmethod
    def _kind() -> tuple[Any, str, Callable[[str], UUID]]:
        return SlaPolicyPublished, "policy_id", policy_uuid

    @staticmethod
    def _check(definition: dict[str, Any]) -> dict[str, Any]:
        return checked_policy_definition(definition)

    @staticmethod
    def _revised_event() -> Any:
        return SlaPolicyRevised


class VersionedCalendar(_Versioned):
    """Business hours: weekly hours in a time zone, minus holidays."""

    def __init__(self) -> None:  # an explicit __init__ stops the library generating one
        super().__init__()

    @property
    def calendar_id(self) -> str:
        return self.name

    @staticmethod
    def _kind() -> tuple[Any, str, Callable[[str], UUID]]:
        return CalendarPublished, "calendar_id", calendar_uuid

    @staticmethod
    def _check(definition: dict[str, Any]) -> dict[str, Any]:
        return checked_calendar_definition(definition)

    @staticmethod
    def _revised_event() -> Any:
        return CalendarRevised
