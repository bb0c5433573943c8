"""The event store read as the stream the projectors see: published events in notification
order, numbered 1, 2, 3… exactly as the relay numbers them in the TICKETING stream (it publishes
each once, in this order), so a projection rebuilt from the store carries positions a live
projector can continue from."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any
from uuid import UUID

from projections.payloads import PUBLISHED_TOPICS, stored_message, stored_payload
from projections.stream_event import StreamEvent
from ticketing.store.application import TicketingApplication
from ticketing.store.engine import engine_of

BATCH = 20_000  # large batches: fewer transactions in the stores


def stream_batches(
    app: TicketingApplication,
    *,
    upto_sequence: int | None = None,
    batch: int = BATCH,
    with_messages: bool = False,
) -> Iterator[list[StreamEvent]]:
    """Published events in stream order, in batches; `with_messages` also gives each event
    its `raw` message exactly as the relay publishes it (what the analytics facts keep)."""
    position, sequence = 0, 0
    read = _sqlite_rows if engine_of(app) == "sqlite" else _library_rows
    while upto_sequence is None or sequence < upto_sequence:
        limit = batch if upto_sequence is None else min(batch, upto_sequence - sequence)
        rows = read(app, position, limit)
        if not rows:
            return
        yield (_with_messages if with_messages else _events)(app, rows, sequence)
        sequence += len(rows)
        position = rows[-1][0]


def _events(app: TicketingApplication, rows: list[Row], sequence: int) -> list[StreamEvent]:
    events = []
    for notification_id, aggregate_id, version, topic, state in rows:
        sequence += 1
        payload: dict[str, Any] = stored_payload(app, topic, aggregate_id, version, state)
        payload["notification_id"] = notification_id
        events.append(StreamEvent(sequence, payload))
    return events


def _with_messages(app: TicketingApplication, rows: list[Row], sequence: int) -> list[StreamEvent]:
    events = []
    for notification_id, aggregate_id, version, topic, state in rows:
        sequence += 1
        payload, message = stored_message(app, topic, aggregate_id, version, state, notification_id)
        events.append(StreamEvent(sequence, payload, message))
    return events


def published_between(
    app: TicketingApplication, after: int, upto: int, *, with_messages: bool = False
) -> list[StreamEvent]:
    """The published events with notification ids in (`after`, `upto`], in order, numbered
    1, 2, 3… within the range: a reader that takes a range of the store without knowing what
    went before it (a parallel rebuild's worker) leaves the stream numbering to its reader."""
    if upto <= after:
        return []
    read = _sqlite_rows if engine_of(app) == "sqlite" else _library_rows
    rows = read(app, after, upto - after, upto)
    return (_with_messages if with_messages else _events)(app, rows, 0)


Row = tuple[int, Any, int, str, bytes]


def aggregate_rows(app: TicketingApplication, aggregate_id: UUID) -> list[tuple[int, str, bytes]]:
    """One aggregate's stored records (version, topic, state), oldest first."""
    if engine_of(app) != "sqlite":
        return [
            (r.originator_version, r.topic, r.state)
            for r in app.recorder.select_events(aggregate_id)
        ]
    recorder: Any = app.recorder
    with recorder.datastore.transaction(commit=False) as cursor:
        cursor.execute(
            "SELECT originator_version, topic, state FROM "
            f"{recorder.events_table_name} WHERE originator_id = ? ORDER BY originator_version",
            [aggregate_id.hex],
        )
        return [(row[0], row[1], row[2]) for row in cursor.fetchall()]


def aggregate_notification_ids(app: TicketingApplication, aggregate_id: UUID) -> dict[int, int]:
    """Each published record of one aggregate: its version and notification id, read through
    the aggregate's own index on SQLite and PostgreSQL (a scan of the library's pages
    elsewhere)."""
    recorder: Any = app.recorder
    if engine_of(app) == "sqlite":
        marks = ",".join("?" for _ in PUBLISHED_TOPICS)
        with recorder.datastore.transaction(commit=False) as cursor:
            cursor.execute(
                f"SELECT originator_version, rowid FROM {recorder.events_table_name} "
                f"WHERE originator_id = ? AND topic IN ({marks})",
                [aggregate_id.hex, *PUBLISHED_TOPICS],
            )
            return {int(version): int(rowid) for version, rowid in cursor.fetchall()}
    if engine_of(app) == "postgres":
        rows = _postgres_query(
            app,
            "SELECT originator_version, notification_id FROM {events} "
            "WHERE originator_id = %s AND topic = ANY(%s)",
            [aggregate_id, list(PUBLISHED_TOPICS)],
        )
        return {int(row["originator_version"]): int(row["notification_id"]) for row in rows}
    numbered, last = {}, 0
    while rows := _library_rows(app, last, BATCH):
        numbered.update({row[2]: row[0] for row in rows if row[1] == aggregate_id})
        last = rows[-1][0]
    return numbered


def published_after(
    app: TicketingApplication, position: int, until: int | None = None
) -> tuple[int, int]:
    """(how many published events follow notification `position`, up to notification `until`
    when given; the last one's id) — one aggregate query on SQLite and PostgreSQL, a scan of
    the library's pages elsewhere."""
    until = _LAST_ROWID if until is None else until
    if engine_of(app) == "sqlite":
        recorder: Any = app.recorder
        marks = ",".join("?" for _ in PUBLISHED_TOPICS)
        with recorder.datastore.transaction(commit=False) as cursor:
            cursor.execute(
                f"SELECT count(*), max(rowid) FROM {recorder.events_table_name} "
                f"WHERE rowid > ? AND rowid <= ? AND topic IN ({marks})",
                [position, until, *PUBLISHED_TOPICS],
            )
            count, last = cursor.fetchone()
        return int(count), int(last or position)
    if engine_of(app) == "postgres":
        (row,) = _postgres_query(
            app,
            "SELECT count(*) AS count, max(notification_id) AS last FROM {events} "
            "WHERE notification_id > %s AND notification_id <= %s AND topic = ANY(%s)",
            [position, until, list(PUBLISHED_TOPICS)],
        )
        return int(row["count"]), int(row["last"] or position)
    count, last = 0, position
    while rows := _library_rows(app, last, BATCH, until):
        count, last = count + len(rows), rows[-1][0]
    return count, last


def _postgres_query(app: TicketingApplication, statement: str, params: list[Any]) -> list[Any]:
    """The rows (dicts) of `statement` on the library's PostgreSQL events table, `{events}`."""
    from psycopg.sql import SQL, Identifier  # only here: PostgreSQL is optional

    recorder: Any = app.recorder
    events = Identifier(recorder.datastore.schema, recorder.events_table_name)
    with recorder.datastore.get_connection() as connection, connection.cursor() as cursor:
        cursor.execute(SQL(statement).format(events=events), params)
        return list(cursor.fetchall())


def _library_rows(
    app: TicketingApplication, position: int, limit: int, until: int | None = None
) -> list[Row]:
    notifications = app.recorder.select_notifications(
        start=position + 1,
        limit=limit,
        stop=until,
        topics=PUBLISHED_TOPICS,
        inclusive_of_start=True,
    )
    return [(n.id, n.originator_id, n.originator_version, n.topic, n.state) for n in notifications]


def _sqlite_rows(
    app: TicketingApplication, position: int, limit: int, until: int | None = None
) -> list[Row]:
    """The library's own query without building objects per row (5x cheaper per event); the
    ids become the UUID text the payloads carry once per aggregate and batch (in SQL it cost
    more than the rest of the read)."""
    recorder: Any = app.recorder
    marks = ",".join("?" for _ in PUBLISHED_TOPICS)
    with recorder.datastore.transaction(commit=False) as cursor:
        cursor.execute(
            "SELECT rowid, originator_id, originator_version, topic, state "
            f"FROM {recorder.events_table_name} WHERE rowid > ? AND rowid <= ? "
            f"AND topic IN ({marks}) ORDER BY rowid LIMIT ?",
            [position, _LAST_ROWID if until is None else until, *PUBLISHED_TOPICS, limit],
        )
        rows = cursor.fetchall()
    texts = _UuidTexts()
    return [(r[0], texts[r[1]], r[2], r[3], r[4]) for r in rows]


_LAST_ROWID = 2**63 - 1


class _UuidTexts(dict[str, str]):
    """`str(UUID(hex=stored))` for each stored id, worked out on first sight only."""

    def __missing__(self, stored: str) -> str:
        text = self[stored] = str(UUID(hex=stored))
        return text


def occurred_at(event: StreamEvent) -> datetime:
    return datetime.fromisoformat(event.payload["occurred_at"])
