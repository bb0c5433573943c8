"""Event payloads built straight from stored records: the same JSON `event_payload` gives for
a domain event, without constructing the event object (2-3x cheaper), so the relay and every
rebuild from the store produce byte-identical messages."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from typing import Any
from uuid import UUID

from eventsourcing.utils import get_topic, resolve_topic

from ticketing.domain.events import NOT_PUBLISHED, PUBLISHED_EVENT_TYPES
from ticketing.store.application import TicketingApplication
from ticketing.store.erasure import decode_state

PUBLISHED_TOPICS = tuple(get_topic(cls) for cls in PUBLISHED_EVENT_TYPES)
"""The stored records the relay publishes (and every rebuild reads), by topic."""

# The C scanner behind `json.loads`, called directly: the Python wrappers around it (encoding
# detection, whitespace regexes) cost about as much as the scan itself for an event.
_SCAN = json.JSONDecoder().scan_once  # type: ignore[attr-defined]  # C attribute, untyped
_MARKER = '"_type_":'  # how the transcoder writes every typed value (compact separators)
_DROPPED = frozenset({"class_version", "timestamp", *NOT_PUBLISHED})


@dataclass(frozen=True)
class _EventClass:
    """What a payload needs from an event class, resolved once per topic."""

    cls: Any
    name: str
    current_version: int


@cache
def _event_class(topic: str) -> _EventClass:
    cls = resolve_topic(topic)
    return _EventClass(cls, cls.__name__, getattr(cls, "class_version", 1))


def stored_payload(
    app: TicketingApplication, topic: str, aggregate_id: UUID | str, version: int, state: bytes
) -> dict[str, Any]:
    """`event_payload` of the stored event, upcast to its class's current version."""
    return _stored(app, topic, aggregate_id, version, state)[0]


def stored_message(
    app: TicketingApplication,
    topic: str,
    aggregate_id: UUID | str,
    version: int,
    state: bytes,
    notification_id: int,
) -> tuple[dict[str, Any], bytes]:
    """The payload with its notification id, and the message the relay publishes for it
    (`json.dumps(payload, separators=(",", ":"))`, byte for byte).

    Most messages are cut from the stored JSON text instead of encoding the payload again
    (encoding is the dearest step of a rebuild's analytics row); any record the cut cannot
    reproduce exactly is encoded."""
    payload, fields = _stored(app, topic, aggregate_id, version, state)
    payload["notification_id"] = notification_id
    message = _cut_message(payload, fields, state) if fields is not None else None
    return payload, message if message is not None else _compact(payload).encode()


_compact = json.JSONEncoder(separators=(",", ":")).encode  # json.dumps's, made once


def _stored(
    app: TicketingApplication, topic: str, aggregate_id: UUID | str, version: int, state: bytes
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """(payload, the stored fields it drops when it came straight from the stored JSON text
    of the class's current version; else `None`)."""
    event_class = _event_class(topic)
    mapper = app.mapper
    fields = None if mapper.cipher or mapper.compressor else _fast_decode(state)
    if fields is None:
        return _payload(event_class, aggregate_id, version, decode_state(app, state)), None
    # A cut needs the stored text's fields as they are: no upcast, no field named like a head.
    cuttable = fields.get("class_version", 1) == event_class.current_version and not any(
        name in fields for name in _HEAD
    )
    dropped = {name: fields[name] for name in _DROPPED if name in fields}
    payload = _payload(event_class, aggregate_id, version, fields, times_are_text=True)
    return payload, dropped if cuttable else None


_HEAD = ("type", "aggregate_id", "version", "recorded_at", "notification_id")


_TIME_MARKER = '{"_type_":"datetime_iso","_data_":"'


def _cut_message(payload: dict[str, Any], dropped: dict[str, Any], state: bytes) -> bytes | None:
    """The compact JSON of `payload` cut from the stored text, or `None` when that would not
    be exact. The transcoder writes compact JSON too, so for ASCII text without DEL (which
    only `ensure_ascii` escapes) every value reads the same in both; what changes is the
    head (type, id, version, recorded time), the occurred time's marker, and the fields the
    payload drops (each cut only where its exact text occurs once)."""
    if not state.isascii() or b"\x7f" in state:
        return None
    text = state.decode()
    recorded_at, occurred_at = dropped["timestamp"], payload["occurred_at"]
    if not (
        _plain_text(recorded_at)
        and _plain_text(occurred_at)
        and _plain_text(payload["aggregate_id"])
        and type(payload["version"]) is int
        and type(payload["notification_id"]) is int
    ):
        return None
    head = f'{{"timestamp":{_TIME_MARKER}{recorded_at}"}}'
    occurred = f'"occurred_at":{_TIME_MARKER}{occurred_at}"}}'
    if not text.startswith(head) or text.count(occurred) != 1:
        return None
    body: str | None = text[len(head) :].replace(occurred, f'"occurred_at":"{occurred_at}"')
    for name, value in dropped.items():
        if body is None or name == "timestamp":
            continue
        if _plain_text(value):
            body = _without(body, f',"{name}":"{value}"', ("",))
        elif type(value) is int:
            body = _without(body, f',"{name}":{value}', (",", "}"))
        else:
            body = None
    if body is None or not body.startswith(",") or body == ",}":
        return None
    return (
        f'{{"type":"{payload["type"]}","aggregate_id":"{payload["aggregate_id"]}",'
        f'"version":{payload["version"]},"recorded_at":"{recorded_at}"'
        f'{body[:-1]},"notification_id":{payload["notification_id"]}}}'
    ).encode()


def _without(text: str, member: str, followers: tuple[str, ...]) -> str | None:
    """`text` less `member` when that occurs exactly once (followed by one of `followers`,
    so that `"n":2` never cuts the front of `"n":23`)."""
    if text.count(member) != 1:
        return None
    if followers != ("",) and sum(text.count(member + f) for f in followers) != 1:
        return None
    return text.replace(member, "", 1)


def _fast_decode(state: bytes) -> dict[str, Any] | None:
    """Plain JSON decoding (C speed) that unwraps the transcoder's datetime markers, keeping
    the ISO text as stored; `None` (use the library's decoder) for anything else."""
    text = state.decode("utf-8", "surrogatepass")  # as `json.loads` decodes bytes
    try:
        fields, end = _SCAN(text, 0)
    except StopIteration:
        return None
    if end != len(text) or not isinstance(fields, dict):
        return None
    for name in ("timestamp", "occurred_at"):
        value = fields.get(name)
        if not isinstance(value, dict) or value.get("_type_") != "datetime_iso":
            return None
        fields[name] = value["_data_"]
    # Exactly two markers in the text are the two just unwrapped: nothing else to check.
    if text.count(_MARKER) != 2 and any(
        isinstance(v, dict) and "_type_" in v for v in fields.values()
    ):
        return None
    return fields


def _payload(
    event_class: _EventClass,
    aggregate_id: UUID | str,
    version: int,
    fields: dict[str, Any],
    *,
    times_are_text: bool = False,
) -> dict[str, Any]:
    stored_version = fields.get("class_version", 1)
    while stored_version < event_class.current_version:
        getattr(event_class.cls, f"upcast_v{stored_version}_v{stored_version + 1}")(fields)
        stored_version += 1
    recorded_at = fields["timestamp"]
    if not times_are_text:
        fields["occurred_at"] = fields["occurred_at"].isoformat()
        recorded_at = recorded_at.isoformat()
    payload = {
        "type": event_class.name,
        "aggregate_id": aggregate_id if isinstance(aggregate_id, str) else str(aggregate_id),
        "version": version,
        "recorded_at": recorded_at,
    }
    for name, value in fields.items():
        if name not in _DROPPED:
            payload[name] = value
    return payload


def _plain_text(value: Any) -> bool:
    """A string that JSON writes as it is between quotes (no quote or backslash to escape; a
    control character cannot match unescaped JSON text at all)."""
    return type(value) is str and '"' not in value and "\\" not in value
