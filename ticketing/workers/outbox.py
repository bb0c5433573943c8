"""The state of an automation process: its stream position, its own tables and an outbox.

An automation process (SLA monitor, triggers, router, notifier) reads the TICKETING stream and
acts on it. Each batch of events is folded into the process's SQLite file and the actions it
calls for are written to the outbox, together with the stream position, in ONE transaction.
A separate loop delivers the outbox. So a crash never loses an action (it is either committed
with its position or the events are redelivered and folded again) and never doubles one
(actions have deterministic keys; a repeat is ignored). Delivery is at least once: a crash
between sending and recording resends, and receivers dedup on the key (commands by command
id, e-mails by Message-ID, webhooks by their delivery id header)."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from projections.stream_event import StreamEvent

_SCHEMA = """
CREATE TABLE IF NOT EXISTS automation_position (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    stream_sequence INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    delivered_at TEXT,
    outcome TEXT
);
CREATE INDEX IF NOT EXISTS outbox_undelivered ON outbox (next_attempt_at)
    WHERE delivered_at IS NULL;
"""


@dataclass(frozen=True)
class Action:
    """Something to do outside the process; the same input always gives the same `key`."""

    key: str
    kind: str  # "command" | "email" | "webhook"
    body: dict[str, Any]


@dataclass(frozen=True)
class OutboxItem:
    seq: int
    key: str
    kind: str
    body: dict[str, Any]
    attempts: int


class Worker(Protocol):
    """What an automation process adds: its tables, its fold and (optionally) its timers."""

    name: str
    schema: str

    def fold(self, events: Sequence[StreamEvent], db: sqlite3.Connection) -> list[Action]:
        """Apply a batch to the worker's tables (inside the batch's transaction)."""
        ...

    def tick(self, db: sqlite3.Connection, now: datetime) -> list[Action]:
        """Actions that time alone has made due (inside a transaction); [] if none."""
        ...


def iso(moment: datetime) -> str:
    """One sortable text form for every stored instant (UTC, microseconds)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class AutomationStore:
    """A worker's SQLite file: position, worker tables and outbox, one writer at a time."""

    def __init__(self, path: Path, worker: Worker) -> None:
        self.path = path
        self.worker = worker
        self.lock = threading.Lock()  # the projector and the delivery loop share the file
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(_SCHEMA + worker.schema)

    def close(self) -> None:
        with self.lock:
            self.db.close()

    def position(self) -> int:
        with self.lock:
            return self._position()

    def apply(self, events: Sequence[StreamEvent]) -> None:
        """Fold a batch and queue its actions with the new position, atomically."""
        with self.lock:
            position = self._position()
            fresh = [e for e in events if e.sequence > position]
            if not fresh:
                return

            def fold_and_queue() -> None:
                self._queue(self.worker.fold(fresh, self.db))
                self.db.execute(
                    "INSERT OR REPLACE INTO automation_position VALUES (1, ?)",
                    (fresh[-1].sequence,),
                )

            self._transaction(fold_and_queue)

    def tick(self, now: datetime) -> int:
        """Let the worker's timers queue what `now` has made due; returns how many were new."""
        with self.lock:
            before = self.db.total_changes

            def fire_timers() -> None:
                self._queue(self.worker.tick(self.db, now))

            self._transaction(fire_timers)
            return self.db.total_changes - before

    def due(self, now: datetime, limit: int = 100) -> list[OutboxItem]:
        with self.lock:
            rows = self.db.execute(
                "SELECT seq, key, kind, body, attempts FROM outbox "
                "WHERE delivered_at IS NULL AND next_attempt_at <= ? ORDER BY seq LIMIT ?",
                (iso(now), limit),
            ).fetchall()
        return [OutboxItem(r[0], r[1], r[2], json.loads(r[3]), r[4]) for r in rows]

    def delivered(self, item: OutboxItem, outcome: str, now: datetime) -> None:
        with self.lock:
            self.db.execute(
                "UPDATE outbox SET delivered_at = ?, outcome = ?, attempts = attempts + 1 "
                "WHERE seq = ?",
                (iso(now), outcome, item.seq),
            )

    def retry_later(self, item: OutboxItem, error: str, at: datetime) -> None:
        with self.lock:
            self.db.execute(
                "UPDATE outbox SET attempts = attempts + 1, outcome = ?, next_attempt_at = ? "
                "WHERE seq = ?",
                (error, iso(at), item.seq),
            )

    def outbox_counts(self) -> dict[str, int]:
        with self.lock:
            delivered, waiting = self.db.execute(
                "SELECT count(delivered_at), count(*) - count(delivered_at) FROM outbox"
            ).fetchone()
        return {"delivered": int(delivered), "waiting": int(waiting)}

    def _position(self) -> int:
        row = self.db.execute("SELECT stream_sequence FROM automation_position").fetchone()
        return int(row[0]) if row else 0

    def _queue(self, actions: Sequence[Action]) -> None:
        now = iso(datetime.now(UTC))
        self.db.executemany(
            "INSERT OR IGNORE INTO outbox (key, kind, body, created_at, next_attempt_at) "
            "VALUES (?, ?, ?, ?, '')",
            [(a.key, a.kind, json.dumps(a.body, sort_keys=True), now) for a in actions],
        )

    def _transaction(self, work: Callable[[], None]) -> None:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            work()
            self.db.execute("COMMIT")
        except BaseException:
            if self.db.in_transaction:  # a failed COMMIT (disk full) has rolled back already
                self.db.execute("ROLLBACK")
            raise
