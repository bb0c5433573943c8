"""The queue projection in SQLite (WAL): readers in other processes never block the projector.

A batch is folded in memory to one row per ticket, then written with the stream position in
one transaction."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from projections.queue.search_index import SCHEMA as SEARCH_SCHEMA
from projections.queue.search_index import SearchChanges
from projections.queue.sla import SCHEMA as SLA_SCHEMA
from projections.queue.sla import fold_queue_sla
from projections.stream_event import StreamEvent
from projections.where_in import fetch_where_in
from ticketing.domain.errors import TicketingError
from ticketing.domain.status_rules import WAITING_ON

COLUMNS = (
    "ticket_id",
    "account_id",
    "account_tier",
    "requester",
    "subject",
    "status",
    "priority",
    "priority_rank",
    "category",
    "channel",
    "team",
    "agent",
    "tags",
    "opened_at",
    "updated_at",
    "status_since",
    "waiting_on",
    "waiting_since",
    "first_reply_at",
    "solved_at",
    "closed_at",
    "reopen_count",
    "comment_count",
    "last_customer_reply_at",
    "last_agent_reply_at",
    "rating_score",
    "follow_up_of",
    "version",
    "external_id",  # last: a file from before gains it by ALTER TABLE, which appends
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS queue_tickets (
    ticket_id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL,
    account_tier TEXT NOT NULL,
    requester TEXT NOT NULL,
    subject TEXT NOT NULL,
    status TEXT NOT NULL,
    priority TEXT NOT NULL,
    priority_rank INTEGER NOT NULL,
    category TEXT,
    channel TEXT NOT NULL,
    team TEXT,
    agent TEXT,
    tags TEXT NOT NULL,
    opened_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    status_since TEXT NOT NULL,
    waiting_on TEXT,
    waiting_since TEXT,
    first_reply_at TEXT,
    solved_at TEXT,
    closed_at TEXT,
    reopen_count INTEGER NOT NULL,
    comment_count INTEGER NOT NULL,
    last_customer_reply_at TEXT,
    last_agent_reply_at TEXT,
    rating_score INTEGER,
    follow_up_of TEXT,
    version INTEGER NOT NULL,
    external_id TEXT
);
CREATE INDEX IF NOT EXISTS queue_tickets_status ON queue_tickets (status, priority_rank, opened_at);
CREATE INDEX IF NOT EXISTS queue_tickets_team ON queue_tickets (team, status);
CREATE INDEX IF NOT EXISTS queue_tickets_agent ON queue_tickets (agent, status);
CREATE INDEX IF NOT EXISTS queue_tickets_account ON queue_tickets (account_id, status);
CREATE INDEX IF NOT EXISTS queue_tickets_requester ON queue_tickets (requester COLLATE NOCASE);
CREATE TABLE IF NOT EXISTS queue_accounts (
    account_uuid TEXT PRIMARY KEY,
    account_id TEXT NOT NULL,
    name TEXT NOT NULL,
    tier TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS projection_position (
    projection TEXT PRIMARY KEY,
    stream_sequence INTEGER NOT NULL,
    updated_at TEXT NOT NULL
);
"""

PRIORITY_RANK = {"urgent": 0, "high": 1, "normal": 2, "low": 3}
PROJECTION = "queue"
SCHEMA_VERSION = 1
"""Kept in the file's `user_version`. 1: the search index (`queue_search`). A file written
before is refused with the fix (a rebuild): the index needs descriptions and comments, which
only the event store holds."""


def utc_text(value: str) -> str:
    """One fixed ISO format in UTC, so times sort correctly as text."""
    return datetime.fromisoformat(value).astimezone(UTC).isoformat(timespec="microseconds")


CORRUPT_ERRORS = frozenset({"SQLITE_CORRUPT", "SQLITE_NOTADB"})


class QueueCorruptError(TicketingError):
    """The queue file is damaged or not an SQLite file: nothing reads or writes it until it is
    rebuilt from the event store, which the message says how to do."""

    code = "projection_corrupt"

    def __init__(self, path: Path | str, reason: str) -> None:
        super().__init__(
            f"{path} is not a valid queue projection ({reason}); run: ticketing rebuild queue",
            path=str(path),
        )


@contextlib.contextmanager
def corruption_named(db: sqlite3.Connection, path: Path | None = None) -> Iterator[None]:
    """Turns SQLite's "file is not a database" or "disk image is malformed" into a
    `QueueCorruptError` naming the file (`path`, or the connection's) and the fix."""
    try:
        yield
    except sqlite3.DatabaseError as error:
        if getattr(error, "sqlite_errorname", None) not in CORRUPT_ERRORS:
            raise
        raise QueueCorruptError(path or _file_of(db), str(error)) from error


def _file_of(db: sqlite3.Connection) -> str:
    try:
        return str(next(row[2] for row in db.execute("PRAGMA database_list") if row[1] == "main"))
    except (sqlite3.Error, StopIteration):
        return "the queue projection"


class QueueOutdatedError(TicketingError):
    """The queue file was written with another schema than this release's: the projector and
    the search refuse it until it is rebuilt from the event store."""

    code = "projection_outdated"

    def __init__(self, path: Path | str, version: int) -> None:
        written = "an older" if version < SCHEMA_VERSION else "a newer"
        super().__init__(
            f"{path} was written by {written} release (queue schema {version}, this release "
            f"uses {SCHEMA_VERSION}: the search index); run: ticketing rebuild queue",
            path=str(path),
        )


def check_schema(db: sqlite3.Connection, path: Path | str) -> bool:
    """True when the file has this release's schema, False when it is new (no queue yet);
    `QueueOutdatedError` when it holds a queue of another schema."""
    version = int(db.execute("PRAGMA user_version").fetchone()[0])
    if version == SCHEMA_VERSION:
        return True
    made = db.execute("SELECT 1 FROM sqlite_master WHERE name = 'queue_tickets'").fetchone()
    if version == 0 and made is None:
        return False
    raise QueueOutdatedError(path, version)


def add_external_id(db: sqlite3.Connection) -> None:
    """A file from before `queue_tickets.external_id` gains the column; its rows keep null,
    which is what a rebuild writes too (no event from before the column carries one)."""
    names = {row[1] for row in db.execute("PRAGMA table_info(queue_tickets)")}
    if "external_id" not in names:
        db.execute("ALTER TABLE queue_tickets ADD COLUMN external_id TEXT")


class QueueStore:
    """Writes the queue projection; `apply` is atomic with the position."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        try:
            with corruption_named(self.db, path):
                self.db.execute("PRAGMA journal_mode=WAL")
                self.db.execute("PRAGMA synchronous=NORMAL")
                if not check_schema(self.db, path):
                    self.db.executescript(
                        f"BEGIN; {SCHEMA}{SLA_SCHEMA}{SEARCH_SCHEMA}"
                        f"PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
                    )
                add_external_id(self.db)
                self.position()
        except BaseException:
            self.db.close()
            raise

    def close(self) -> None:
        self.db.close()

    def position(self) -> int:
        row = self.db.execute(
            "SELECT stream_sequence FROM projection_position WHERE projection = ?", (PROJECTION,)
        ).fetchone()
        return int(row[0]) if row else 0

    def apply(self, events: Sequence[StreamEvent]) -> None:
        with corruption_named(self.db, self.path):
            self._apply(events)

    def _apply(self, events: Sequence[StreamEvent]) -> None:
        position = self.position()
        events = [e for e in events if e.sequence > position]  # replays change nothing
        if not events:
            return
        tickets = self._load({e.payload["aggregate_id"] for e in events})
        accounts: dict[str, dict[str, Any]] = {}
        search = SearchChanges()
        tier_changes = self._fold(events, tickets, accounts, search)
        self.db.execute("BEGIN IMMEDIATE")
        try:
            self._write_rows(tickets, accounts)
            search.write(self.db)
            self.db.executemany(
                "UPDATE queue_tickets SET account_tier = ? WHERE account_id = ?", tier_changes
            )
            fold_queue_sla(self.db, (e.payload for e in events))
            self.db.execute(
                "INSERT OR REPLACE INTO projection_position VALUES (?, ?, ?)",
                (PROJECTION, events[-1].sequence, datetime.now(UTC).isoformat()),
            )
            self.db.execute("COMMIT")
        except BaseException:
            if self.db.in_transaction:  # a failed COMMIT (disk full) has rolled back already
                self.db.execute("ROLLBACK")
            raise
        if search.erased:  # the WAL still holds the pages from before the redaction
            self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def apply_all(
        self,
        batches: Iterable[Sequence[StreamEvent]],
        progress: Callable[[int], None] | None = None,
    ) -> int:
        """Rebuild fast path into an EMPTY projection: ticket and account rows stay in memory
        across batches and are written once at the end, all in one transaction (no per-batch
        loads or rewrites of the same tickets). Ends in exactly the rows `apply` would give
        for the same batches. Returns events applied."""
        if self.position() != 0:
            raise ValueError("apply_all needs an empty projection; use apply")
        tickets: dict[str, dict[str, Any]] = {}
        accounts: dict[str, dict[str, Any]] = {}
        search = SearchChanges()
        last, applied = 0, 0
        self.db.execute("BEGIN IMMEDIATE")
        try:
            for events in batches:
                if not events:
                    continue
                tier_changes = self._fold(events, tickets, accounts, search)
                change_tiers(tickets, tier_changes)
                fold_queue_sla(self.db, (e.payload for e in events))
                last, applied = events[-1].sequence, applied + len(events)
                if progress:
                    progress(len(events))
            self._write_rows(tickets, accounts)
            search.write(self.db)
            self.db.execute(
                "INSERT OR REPLACE INTO projection_position VALUES (?, ?, ?)",
                (PROJECTION, last, datetime.now(UTC).isoformat()),
            )
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        return applied

    def _fold(
        self,
        events: Sequence[StreamEvent],
        tickets: dict[str, dict[str, Any]],
        accounts: dict[str, dict[str, Any]],
        search: SearchChanges,
    ) -> list[tuple[str, str]]:
        """Fold a batch into the rows and the search changes; returns its tier changes
        (tier, account_id), which reach every stored ticket of the account once the batch's
        rows are written."""
        tier_changes: list[tuple[str, str]] = []
        for event in events:
            payload = event.payload
            if payload["type"].startswith("Account"):
                _fold_account(accounts, payload, tier_changes, self.db)
            else:
                fold_ticket(tickets, payload, search)
        return tier_changes

    def _write_rows(
        self, tickets: dict[str, dict[str, Any]], accounts: dict[str, dict[str, Any]]
    ) -> None:
        placeholders = ",".join("?" for _ in COLUMNS)
        self.db.executemany(
            f"INSERT OR REPLACE INTO queue_tickets ({','.join(COLUMNS)}) VALUES ({placeholders})",
            [tuple(row[c] for c in COLUMNS) for row in tickets.values()],
        )
        self.db.executemany(
            "INSERT OR REPLACE INTO queue_accounts VALUES (?, ?, ?, ?)",
            [(k, a["account_id"], a["name"], a["tier"]) for k, a in accounts.items()],
        )

    def _load(self, ticket_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        statement = f"SELECT {','.join(COLUMNS)} FROM queue_tickets WHERE ticket_id IN ({{marks}})"
        return {
            values[0]: dict(zip(COLUMNS, values, strict=True))
            for values in fetch_where_in(self.db, statement, list(ticket_ids))
        }


def change_tiers(tickets: dict[str, dict[str, Any]], changes: list[tuple[str, str]]) -> None:
    """The account-tier fold of ticket rows held in memory: for each (tier, account_id), every
    ticket of the account so far, including those opened later in the same batch, takes the
    new tier (what `apply`'s UPDATE does to stored rows; the trigger worker's rows too)."""
    for tier, account_id in changes:
        for row in tickets.values():
            if row["account_id"] == account_id:
                row["account_tier"] = tier


def _fold_account(
    accounts: dict[str, dict[str, Any]],
    payload: dict[str, Any],
    tier_changes: list[tuple[str, str]],
    db: sqlite3.Connection,
) -> None:
    key = payload["aggregate_id"]
    if key not in accounts:
        row = db.execute(
            "SELECT account_id, name, tier FROM queue_accounts WHERE account_uuid = ?", (key,)
        ).fetchone()
        if row:
            accounts[key] = {"account_id": row[0], "name": row[1], "tier": row[2]}
    if payload["type"] == "AccountRegistered":
        accounts[key] = {k: payload[k] for k in ("account_id", "name", "tier")}
    elif key in accounts and payload["type"] == "AccountTierChanged":
        accounts[key]["tier"] = payload["tier"]
        tier_changes.append((payload["tier"], accounts[key]["account_id"]))
    elif key in accounts and payload["type"] == "AccountRenamed":
        accounts[key]["name"] = payload["name"]


def fold_ticket(
    tickets: dict[str, dict[str, Any]],
    payload: dict[str, Any],
    search: SearchChanges | None = None,
) -> None:
    """Apply one ticket event to its queue row (created by TicketOpened), and its texts to
    `search` when given."""
    ticket_id = payload["aggregate_id"]
    at = utc_text(payload["occurred_at"])
    kind = payload["type"]
    if kind == "TicketOpened":
        if ticket_id not in tickets:
            tickets[ticket_id] = _opened_row(payload, at)
            if search is not None:
                search.opened(payload)
        return
    row = tickets.get(ticket_id)
    if row is None or payload["version"] <= row["version"]:
        return  # an event already folded (replays are harmless)
    row["version"] = payload["version"]
    row["updated_at"] = at
    if search is not None:
        search.fold(payload)
    if kind == "TicketCategorized":
        row["category"] = payload["category"]
    elif kind == "TicketPrioritized":
        row["priority"] = payload["priority"]
        row["priority_rank"] = PRIORITY_RANK[payload["priority"]]
    elif kind == "TicketAssigned":
        row["team"], row["agent"] = payload["team"], payload["agent"]
    elif kind == "CommentAdded":
        _fold_comment(row, payload, at)
    elif "to_status" in payload:
        _fold_status(row, payload, at)
    elif kind == "TicketRated":
        row["rating_score"] = payload["score"]
    elif kind in ("TicketTagged", "TicketUntagged"):
        tags = set(json.loads(row["tags"]))
        tags = (
            tags | set(payload["tags"]) if kind == "TicketTagged" else tags - set(payload["tags"])
        )
        row["tags"] = json.dumps(sorted(tags))


def _opened_row(payload: dict[str, Any], at: str) -> dict[str, Any]:
    return {
        "ticket_id": payload["aggregate_id"],
        "account_id": payload["account_id"],
        "account_tier": payload["account_tier"],
        "requester": payload["requester"],
        "subject": payload["subject"],
        "status": "new",
        "priority": payload["priority"],
        "priority_rank": PRIORITY_RANK[payload["priority"]],
        "category": payload["category"],
        "channel": payload["channel"],
        "team": None,
        "agent": None,
        "tags": json.dumps(sorted(payload["tags"])),
        "opened_at": at,
        "updated_at": at,
        "status_since": at,
        "waiting_on": "us",
        "waiting_since": at,
        "first_reply_at": None,
        "solved_at": None,
        "closed_at": None,
        "reopen_count": 0,
        "comment_count": 0,
        "last_customer_reply_at": None,
        "last_agent_reply_at": None,
        "rating_score": None,
        "follow_up_of": payload["follow_up_of"],
        "external_id": payload.get("external_id"),
        "version": payload["version"],
    }


def _fold_comment(row: dict[str, Any], payload: dict[str, Any], at: str) -> None:
    row["comment_count"] += 1
    if payload["visibility"] != "public":
        return
    actor_kind = payload["actor"]["kind"]
    if actor_kind == "customer":
        row["last_customer_reply_at"] = at
    elif actor_kind == "agent":
        row["last_agent_reply_at"] = at
        row["first_reply_at"] = row["first_reply_at"] or at


def _fold_status(row: dict[str, Any], payload: dict[str, Any], at: str) -> None:
    status = payload["to_status"]
    before = WAITING_ON.get(row["status"])
    row["status"] = status
    row["status_since"] = at
    waiting = WAITING_ON.get(status)
    if waiting != before:
        row["waiting_on"], row["waiting_since"] = waiting, at if waiting else None
    if payload["type"] == "TicketResolved":
        row["solved_at"] = at
    elif payload["type"] == "TicketReopened":
        row["reopen_count"] += 1
        row["solved_at"] = None
    elif payload["type"] == "TicketClosed":
        row["closed_at"] = at
