"""`ticketing verify projections`: rebuild each projection from the event store up to the live
projection's position and compare them row by row; any difference is drift. A projection
behind the store is then taken on from there in the scratch copy: an event it cannot apply
means the live one is stuck at that event, which is reported too."""

from __future__ import annotations

import sqlite3
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from projections.analytics.store import AnalyticsStore
from projections.poison import EventNotAppliedError, apply_isolating
from projections.queue.queries import open_reader
from projections.queue.store import QueueStore
from replay.rebuild import published_count, rebuild_analytics, rebuild_queue
from replay.stream import stream_batches
from ticketing.store.application import TicketingApplication

QUEUE_TABLES = {
    "queue_tickets": "ticket_id",
    "queue_accounts": "account_uuid",
    "queue_sla": "ticket_id",
    "queue_search": "ticket_id,field,comment_id",
}
ANALYTICS_TABLES = {
    "ticket_facts": "ticket_id",
    "accounts": "account_uuid",
    "event_facts": "stream_sequence",
    "ticket_sla": "ticket_id,metric,cycle",
}
"""Each compared table and its key (columns joined by commas for a composite key)."""
WALL_CLOCK_COLUMNS: frozenset[str] = frozenset()  # every compared column is event-derived
MAX_REPORTED = 50


@dataclass
class Drift:
    table: str
    key: str
    problem: str  # missing | extra | differs
    columns: dict[str, Any] = field(default_factory=dict)


@dataclass
class ProjectionCheck:
    projection: str
    position: int
    rows_compared: int = 0
    drift: list[Drift] = field(default_factory=list)
    drift_count: int = 0
    stuck: str | None = None
    """The event after `position` the projection cannot apply (it stays behind there)."""

    @property
    def ok(self) -> bool:
        return self.drift_count == 0 and self.stuck is None

    def as_dict(self) -> dict[str, Any]:
        return {
            "projection": self.projection,
            "ok": self.ok,
            "position": self.position,
            "rows_compared": self.rows_compared,
            "drift_count": self.drift_count,
            "drift": [vars(d) for d in self.drift],
            "stuck": self.stuck,
        }


def verify_queue(
    app: TicketingApplication, live: Path, progress: Callable[[int], None] | None = None
) -> ProjectionCheck:
    reader = open_reader(live)  # read-only, in a read-only home too; a damaged file is named
    try:
        position = _position(reader.execute("SELECT stream_sequence FROM projection_position"))
        with tempfile.TemporaryDirectory() as scratch:
            rebuilt_path = Path(scratch) / "queue.sqlite"
            try:
                rebuild_queue(app, rebuilt_path, upto_sequence=position, progress=progress)
            except EventNotAppliedError as error:
                return ProjectionCheck("queue", position, stuck=error.message)
            rebuilt = sqlite3.connect(rebuilt_path)
            try:
                check = _compare("queue", position, QUEUE_TABLES, reader, rebuilt)
            finally:
                rebuilt.close()
            check.stuck = _stuck_after(app, QueueStore(rebuilt_path), position)
            return check
    finally:
        reader.close()


def verify_analytics(
    app: TicketingApplication, snapshot: Path, progress: Callable[[int], None] | None = None
) -> ProjectionCheck:
    with duckdb.connect(str(snapshot), read_only=True) as reader:
        position = _position(reader.execute("SELECT stream_sequence FROM projection_position"))
        with tempfile.TemporaryDirectory() as scratch:
            rebuilt_path = Path(scratch) / "analytics.duckdb"
            try:
                rebuild_analytics(app, rebuilt_path, upto_sequence=position, progress=progress)
            except EventNotAppliedError as error:
                return ProjectionCheck("analytics", position, stuck=error.message)
            with duckdb.connect(str(rebuilt_path), read_only=True) as rebuilt:
                check = _compare("analytics", position, ANALYTICS_TABLES, reader, rebuilt)
            check.stuck = _stuck_after(app, AnalyticsStore(rebuilt_path), position)
            return check


def _stuck_after(app: TicketingApplication, scratch: Any, position: int) -> str | None:
    """The first event after `position` that `scratch` (a rebuilt copy at `position`) cannot
    apply, described; None when it applies the rest of the store (or nothing is left). Reads
    the store again only when the projection is behind it."""
    try:
        if published_count(app) <= position:
            return None
        analytics = isinstance(scratch, AnalyticsStore)
        for events in stream_batches(app, with_messages=analytics):
            fresh = [e for e in events if e.sequence > position]
            _done, failure = apply_isolating(scratch, fresh)
            if failure is not None:  # the scratch disk failing says nothing of the event
                return None if failure.environmental else f"cannot apply {failure.describe()}"
        return None
    finally:
        scratch.close()


def _position(cursor: Any) -> int:
    row = cursor.fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def _compare(
    name: str, position: int, tables: dict[str, str], live: Any, rebuilt: Any
) -> ProjectionCheck:
    check = ProjectionCheck(name, position)
    for table, key in tables.items():
        live_rows = _rows(live, table, key)
        rebuilt_rows = _rows(rebuilt, table, key)
        check.rows_compared += len(rebuilt_rows)
        for row_key in sorted(live_rows.keys() | rebuilt_rows.keys()):
            drift = _diff(table, row_key, live_rows.get(row_key), rebuilt_rows.get(row_key))
            if drift is not None:
                check.drift_count += 1
                if len(check.drift) < MAX_REPORTED:
                    check.drift.append(drift)
    return check


def _rows(connection: Any, table: str, key: str) -> dict[str, dict[str, Any]]:
    cursor = connection.execute(f"SELECT * FROM {table}")
    columns = [d[0] for d in cursor.description]
    rows: Sequence[Any] = cursor.fetchall()
    positions = [columns.index(k) for k in key.split(",")]
    return {
        "/".join(str(row[i]) for i in positions): {
            c: v for c, v in zip(columns, row, strict=True) if c not in WALL_CLOCK_COLUMNS
        }
        for row in rows
    }


def _diff(
    table: str, key: str, live: dict[str, Any] | None, rebuilt: dict[str, Any] | None
) -> Drift | None:
    if live is None:
        return Drift(table, key, "missing", {})
    if rebuilt is None:
        return Drift(table, key, "extra", {})
    changed = {
        column: {"live": _show(live[column]), "rebuilt": _show(rebuilt.get(column))}
        for column in live
        if live[column] != rebuilt.get(column)
    }
    return Drift(table, key, "differs", changed) if changed else None


def _show(value: Any) -> Any:
    return value if isinstance(value, int | float | str | bool | type(None)) else str(value)
