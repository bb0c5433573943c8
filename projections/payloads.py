"""Event payloads built straight from stored records: the same JSON `event_payload` gives for
a domain event, without constructing the event object (2-3x cheaper), so the relay and every
rebuild from the store produce byte-identical messages."""

from __future__ import annotations

import json
from functools import cache
from typing import Any
from uuid import UUID

from eventsourcing.utils import resolve_topic

from commands.application import TicketingApplication
from commands.erasure import decode_state
from ticketing.domain.events import NOT_PUBLISHED


@cache
def _event_class(topic: str) -> Any:
    return resolve_topic(topic)


def stored_payload(
    app: TicketingApplication, topic: str, aggregate_id: UUID | str, version: int, state: bytes
) -> dict[str, Any]:
    """`event_payload` of the stored event, upcast to its class's current version."""
    event_class = _event_class(topic)
    fields = _fast_decode(app, state)
    if fields is None:
        return _payload(event_class, aggregate_id, version, decode_state(app, state))
    return _payload(event_class, aggregate_id, version, fields, times_are_text=True)


def _fast_decode(app: TicketingApplication, state: bytes) -> dict[str, Any] | None:
    """Plain `json.loads` (C speed) and unwrap the transcoder's datetime markers, keeping the
    ISO text as stored; `None` (use the library's decoder) for anything else."""
    mapper = app.mapper
    if mapper.cipher or mapper.compressor:
        return None
    fields: dict[str, Any] = json.loads(state)
    for name in ("timestamp", "occurred_at"):
        value = fields.get(name)
        if not isinstance(value, dict) or value.get("_type_") != "datetime_iso":
            return None
        fields[name] = value["_data_"]
    if any(isinstance(v, dict) and "_type_" in v for v in fields.values()):
        return None
    return fields


def _payload(
    event_class: Any,
    aggregate_id: UUID | str,
    version: int,
    fields: dict[str, Any],
    *,
    times_are_text: bool = False,
) -> dict[str, Any]:
    stored_version = fields.pop("class_version", 1)
    current = getattr(event_class, "class_version", 1)
    while stored_version < current:
        getattr(event_class, f"upcast_v{stored_version}_v{stored_version + 1}")(fields)
        stored_version += 1
    recorded_at = fields.pop("timestamp")
    for name in NOT_PUBLISHED:
        fields.pop(name, None)
    if not times_are_text:
        fields["occurred_at"] = fields["occurred_at"].isoformat()
        recorded_at = recorded_at.isoformat()
    return {
        "type": event_class.__name__,
        "aggregate_id": str(aggregate_id),
        "version": version,
        "recorded_at": recorded_at,
        **fields,
    }
