"""Event payloads built straight from stored records: the same JSON `event_payload` gives for
a domain event, without constructing the event object (2-3x cheaper), so the relay and every
rebuild from the store produce byte-identical messages."""

from __future__ import annotations

from functools import cache
from typing import Any
from uuid import UUID

from eventsourcing.utils import resolve_topic

from commands.application import TicketingApplication
from commands.erasure import decode_state

_NOT_PUBLISHED = ("originator_topic", "body_salt")


@cache
def _event_class(topic: str) -> Any:
    return resolve_topic(topic)


def stored_payload(
    app: TicketingApplication, topic: str, aggregate_id: UUID | str, version: int, state: bytes
) -> dict[str, Any]:
    """`event_payload` of the stored event, upcast to its class's current version."""
    event_class = _event_class(topic)
    fields = decode_state(app, state)
    stored_version = fields.pop("class_version", 1)
    current = getattr(event_class, "class_version", 1)
    while stored_version < current:
        getattr(event_class, f"upcast_v{stored_version}_v{stored_version + 1}")(fields)
        stored_version += 1
    recorded_at = fields.pop("timestamp")
    for name in _NOT_PUBLISHED:
        fields.pop(name, None)
    fields["occurred_at"] = fields["occurred_at"].isoformat()
    return {
        "type": event_class.__name__,
        "aggregate_id": str(aggregate_id),
        "version": version,
        "recorded_at": recorded_at.isoformat(),
        **fields,
    }
