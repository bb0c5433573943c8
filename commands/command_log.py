"""Durable idempotency: one record per processed command, saved in the same transaction as
the events it caused, so a repeated `command_id` returns the first reply even after a restart."""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, AggregateCreated

if TYPE_CHECKING:
    from commands.models import Command

_COMMAND_NAMESPACE = uuid5(NAMESPACE_URL, "ticketing:command")
_TICKET_NAMESPACE = uuid5(NAMESPACE_URL, "ticketing:ticket")


def command_record_id(command_id: str) -> UUID:
    return uuid5(_COMMAND_NAMESPACE, command_id)


def ticket_id_for(command_id: str) -> UUID:
    """An opened ticket's id follows from its command id, so two racing repeats collide."""
    return uuid5(_TICKET_NAMESPACE, command_id)


def fingerprint(command: Command, target: UUID) -> dict[str, str]:
    """What makes a command the same command: its name, target and each payload field (the
    idempotency key aside), hashed per field so that a mismatch can name what differs."""
    payload = command.model_dump(mode="json", exclude={"command_id"})
    fields = {
        "(command)": command.name,
        "(target)": str(target),
        "(fields set)": sorted(command.model_fields_set - {"command_id"}),
        **payload,
    }
    return {name: _digest(value) for name, value in sorted(fields.items())}


def fingerprint_differences(stored: dict[str, str], current: dict[str, str]) -> list[str]:
    """The fields whose hashes differ, `(target)` and `(command)` included."""
    return sorted(k for k in stored.keys() | current.keys() if stored.get(k) != current.get(k))


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class CommandProcessed(AggregateCreated):
    """Which versions of which aggregate a command produced (an empty range for a no-op).

    The reply is rebuilt from those stored events, so nothing is kept twice."""

    command_name: str
    aggregate_kind: str
    aggregate_id: str
    from_version: int
    to_version: int
    fingerprint: dict[str, str] | None = None  # older records compare by name only

    def apply(self, aggregate: Any) -> None:
        aggregate.command_name = self.command_name
        aggregate.fingerprint = self.fingerprint
        aggregate.aggregate_kind = self.aggregate_kind
        aggregate.aggregate_id = self.aggregate_id
        aggregate.from_version = self.from_version
        aggregate.to_version = self.to_version


class CommandRecord(Aggregate):
    def __init__(self) -> None:
        self.command_name = ""
        self.fingerprint: dict[str, str] | None = None
        self.aggregate_kind = ""
        self.aggregate_id = ""
        self.from_version = 0
        self.to_version = 0

    @classmethod
    def record(
        cls,
        command_id: str,
        *,
        command_name: str,
        fingerprint: dict[str, str],
        aggregate_kind: str,
        aggregate_id: str,
        from_version: int,
        to_version: int,
    ) -> CommandRecord:
        return cls._create(
            CommandProcessed,
            id=command_record_id(command_id),
            command_name=command_name,
            fingerprint=fingerprint,
            aggregate_kind=aggregate_kind,
            aggregate_id=aggregate_id,
            from_version=from_version,
            to_version=to_version,
        )
