"""`event_facts` rows for a batch of stream events: what each event says, where it sits in the
stream, and its message as the relay published it.

Built column by column straight into Arrow (one list per column, the times and messages
converted by Arrow in C): about 1.5 us an event, against 4 us for a tuple per event turned
into columns afterwards (measured on a rebuild's events)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from projections.analytics.columns import EVENT_FACTS, compact_json, micros
from projections.stream_event import StreamEvent
from ticketing.domain.events import AGGREGATE_KIND_OF

EVENT_FACTS_SCHEMA = pa.schema([(c.name, c.arrow_type) for c in EVENT_FACTS])
_TIMESTAMP = EVENT_FACTS_SCHEMA.field("occurred_at").type


def event_fact_batch(
    events: Sequence[StreamEvent], account_ids: Sequence[str | None] | None = None
) -> pa.RecordBatch:
    """The rows of `EVENT_FACTS` for `events`; `account_ids`: each event's account, which only
    the fold knows (left empty when the rows are made before it)."""
    payloads = [e.payload for e in events]
    actors = [p.get("actor") or {} for p in payloads]
    columns: dict[str, Any] = {
        "stream_sequence": [e.sequence for e in events],
        "notification_id": [p.get("notification_id") for p in payloads],
        "aggregate_id": [str(p["aggregate_id"]) for p in payloads],
        "aggregate_kind": [AGGREGATE_KIND_OF.get(p["type"], "ticket") for p in payloads],
        "version": [p.get("version") for p in payloads],
        "type": [p["type"] for p in payloads],
        "occurred_at": timestamps([p["occurred_at"] for p in payloads]),
        "recorded_at": timestamps([p.get("recorded_at") or None for p in payloads]),
        "actor_kind": [a.get("kind") for a in actors],
        "actor_id": [a.get("id") for a in actors],
        "command_id": [p.get("command_id") for p in payloads],
        "account_id": [None] * len(events) if account_ids is None else account_ids,
        "from_status": [p.get("from_status") for p in payloads],
        "to_status": [p.get("to_status") for p in payloads],
        "payload": messages(events),
    }
    return pa.record_batch(
        [
            value if isinstance(value, pa.Array) else pa.array(value, column.arrow_type)
            for column, value in zip(EVENT_FACTS, columns.values(), strict=True)
        ],
        schema=EVENT_FACTS_SCHEMA,
    )


def timestamps(values: list[Any]) -> pa.Array:
    """Wire times (ISO 8601 text) as UTC microsecond timestamps, parsed by Arrow; any value
    it will not take (no zone, which means UTC here; a datetime) goes through `micros`."""
    try:
        return pa.array(values, pa.string()).cast(_TIMESTAMP)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pa.array([None if v is None else micros(v) for v in values], _TIMESTAMP)


def messages(events: Sequence[StreamEvent]) -> pa.Array:
    """Each event's message: the relay's compact JSON as received (or as a rebuild cut it from
    the store), else the same text made here; checked as UTF-8 by the cast."""
    raw = [e.raw if e.raw is not None else compact_json(e.payload).encode() for e in events]
    return pa.array(raw, pa.binary()).cast(pa.string())
