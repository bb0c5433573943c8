"""`ticketing export`: events for auditors as JSON Lines or Parquet, each with its chain hashes,
read from the event store."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import IO, Any
from uuid import UUID

from replay.history import history
from replay.stream import aggregate_notification_ids, occurred_at, stream_batches
from ticketing.store.application import TicketingApplication

COLUMNS = (
    "notification_id",
    "aggregate_id",
    "version",
    "type",
    "occurred_at",
    "recorded_at",
    "actor_kind",
    "actor_id",
    "command_id",
    "previous_hash",
    "event_hash",
    "payload",
)


def select_events(
    app: TicketingApplication,
    *,
    ticket: UUID | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> Iterator[dict[str, Any]]:
    """Events of one ticket (its history, notification ids included) or of a time window by
    `occurred_at` in [since, until)."""
    if ticket is not None:
        entries = history(app, ticket)  # (an unknown ticket fails here, before any query)
        numbered = aggregate_notification_ids(app, ticket)
        for entry in entries:
            yield {**entry, "notification_id": numbered.get(entry["version"])}
        return
    for events in stream_batches(app):
        for event in events:
            moment = occurred_at(event)
            if (since is None or moment >= since) and (until is None or moment < until):
                yield event.payload


def flat(event: dict[str, Any]) -> dict[str, Any]:
    return {
        "notification_id": event.get("notification_id"),
        "aggregate_id": event["aggregate_id"],
        "version": event["version"],
        "type": event["type"],
        "occurred_at": event["occurred_at"],
        "recorded_at": event["recorded_at"],
        "actor_kind": event["actor"]["kind"],
        "actor_id": event["actor"]["id"],
        "command_id": event["command_id"],
        "previous_hash": event.get("previous_hash"),
        "event_hash": event.get("event_hash"),
        "payload": json.dumps(event, sort_keys=True),
    }


def write_jsonl(events: Iterator[dict[str, Any]], out: IO[str]) -> int:
    count = 0
    for event in events:
        out.write(json.dumps(event, sort_keys=True) + "\n")
        count += 1
    return count


def write_parquet(events: Iterator[dict[str, Any]], path: Path) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [flat(e) for e in events]
    schema = pa.schema(
        [
            ("notification_id", pa.int64()),
            ("aggregate_id", pa.string()),
            ("version", pa.int64()),
            ("type", pa.string()),
            ("occurred_at", pa.timestamp("us", tz="UTC")),
            ("recorded_at", pa.timestamp("us", tz="UTC")),
            ("actor_kind", pa.string()),
            ("actor_id", pa.string()),
            ("command_id", pa.string()),
            ("previous_hash", pa.string()),
            ("event_hash", pa.string()),
            ("payload", pa.string()),
        ]
    )
    columns = {name: [row[name] for row in rows] for name in COLUMNS}
    for name in ("occurred_at", "recorded_at"):
        columns[name] = [datetime.fromisoformat(v) for v in columns[name]]
    pq.write_table(pa.table(columns, schema=schema), path)
    return len(rows)
