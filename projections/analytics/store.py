"""The analytics projection in DuckDB: event facts, ticket facts and accounts, written exactly once.

Each batch is folded in Python to one row per ticket (and per account), starting from the rows
already stored for those aggregates, then written through registered Arrow tables together with
the stream position in ONE transaction. Folding first matters: DuckDB silently keeps the first
or the last of several rows with one key in a single statement, so a batch holding two events
of one ticket must never reach `MERGE` as two rows.

DuckDB lets one process hold the file for writing and no other process open it, so analysts
read a snapshot that `publish_snapshot` copies beside the live file."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import threading
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from operator import itemgetter
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from projections.analytics.columns import (
    ACCOUNTS,
    EVENT_FACTS,
    TICKET_FACTS,
    Column,
    micros,
)
from projections.analytics.event_facts import event_fact_batch
from projections.analytics.kpis import create_views
from projections.analytics.row_groups import RowGroupLayout, WholeRowGroups
from projections.analytics.sla import SCHEMA as SLA_SCHEMA
from projections.analytics.sla import fold_ticket_sla
from projections.stream_event import StreamEvent
from ticketing.domain.events import AGGREGATE_KIND_OF
from ticketing.domain.status_rules import WORKING_STATUSES

log = logging.getLogger(__name__)

PROJECTION = "analytics"
ACCOUNT_EVENT_TYPES = frozenset({"AccountRegistered", "AccountTierChanged", "AccountRenamed"})
AUTOMATED_KINDS = frozenset({"automation", "ai"})


_TICKET_NOT_NULL = frozenset(
    {
        "account_id",
        "account_tier",
        "channel",
        "priority",
        "requester",
        "opened_at",
        "opened_by_kind",
        "status",
        "status_since",
        "reopens",
        "agent_replies",
        "public_comments",
        "internal_comments",
        "seconds_new",
        "seconds_open",
        "seconds_pending",
        "seconds_on_hold",
        "reassignments",
        "last_event_at",
        "version",
    }
)


def _table_sql(
    name: str, columns: Sequence[Column], key: str | None, not_null: Iterable[str]
) -> str:
    required = set(not_null)
    lines = [
        f"    {c.name} {c.sql_type}"
        + (f" USING COMPRESSION {c.compression}" if c.compression else "")
        + (" PRIMARY KEY" if c.name == key else "")
        + (" NOT NULL" if c.name in required else "")
        for c in columns
    ]
    return f"CREATE TABLE IF NOT EXISTS {name} (\n" + ",\n".join(lines) + "\n)"


# event_facts has no key on purpose: the position makes each event arrive once, and an ART
# index over every event would cost memory, disk and insert time for nothing analysts need.
SCHEMA = [
    _table_sql("event_facts", EVENT_FACTS, None, ("stream_sequence", "aggregate_id", "type")),
    _table_sql("ticket_facts", TICKET_FACTS, "ticket_id", _TICKET_NOT_NULL),
    _table_sql("accounts", ACCOUNTS, "account_uuid", ("version",)),
    """CREATE TABLE IF NOT EXISTS projection_position (
    projection VARCHAR PRIMARY KEY,
    stream_sequence BIGINT NOT NULL,
    updated_at TIMESTAMPTZ
)""",
]
SCHEMA += [statement for statement in SLA_SCHEMA.split(";") if statement.strip()]
TABLES = ("event_facts", "ticket_facts", "accounts", "projection_position")


ExpectedEvents = int | Callable[[], int] | None
"""How many events a bulk rebuild will write: a number, a function counting them (called once
half a row group has come, so that the count does not hold up the start), or unknown."""

WRITES_IN_FLIGHT = 8
"""Batches a bulk rebuild lets wait for its DuckDB writer: whole row groups (122,880 rows, six
batches) take it about 0.6 s each, and the fold should not stop meanwhile."""


class AnalyticsStore:
    """The DuckDB analytics projection; implements `projections.consumer.ProjectionStore`.

    Keep one instance (one writer connection) open for the projector's lifetime; analysts
    open the file written by `publish_snapshot`, never the live one."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._con = duckdb.connect(str(self.path))
        self._con.execute("SET TimeZone = 'UTC'")
        self._lock = threading.RLock()
        self._create_schema()
        self._position = self._stored_position()

    # --- ProjectionStore ------------------------------------------------------------------

    def position(self) -> int:
        """The last stream sequence committed (0 for an empty projection)."""
        return self._position

    def apply(self, events: Sequence[StreamEvent]) -> None:
        """Fold and write a batch with its position in one transaction.

        Events at or below the committed position are ignored (the runner already skips
        them; this keeps a stray redelivery harmless here too)."""
        with self._lock:
            fresh = sorted(
                (e for e in events if e.sequence > self._position), key=lambda e: e.sequence
            )
            if not fresh:
                return
            self._con.begin()
            try:
                self._write(fresh)
                self._con.commit()
            except BaseException:
                # A failed commit (disk full) has ended the transaction: the commit's error
                # is the one to report, not the rollback's "no transaction is active".
                with contextlib.suppress(duckdb.Error):
                    self._con.rollback()
                raise
            self._position = fresh[-1].sequence

    def apply_all(
        self,
        batches: Iterable[Sequence[StreamEvent]],
        progress: Callable[[int], None] | None = None,
        *,
        expected_events: ExpectedEvents = None,
    ) -> int:
        """Rebuild fast path into an EMPTY projection: ticket and account rows stay in memory
        across batches and are written once at the end, in one transaction (but see
        `expected_events`) with no per-batch loads or MERGEs. Ends in exactly the rows
        `apply` would give. Returns events applied.

        Batches' rows go into DuckDB on a writer thread while the next batches are read and
        folded (DuckDB releases the GIL while it works); up to `WRITES_IN_FLIGHT` batches
        wait for it, since its work comes in lumps (a whole row group at a time).
        Event facts go in whole row groups (`WholeRowGroups`), so DuckDB compresses them on
        that thread instead of in the commit at the end.

        `expected_events` (how many events will come, or a function counting them, when the
        caller knows: `ExpectedEvents`) lays the part-filled row groups out so that little is
        left to compress at the end (`RowGroupLayout`), committing twice on the way: only for
        a file that is thrown away when the rebuild fails, since the facts committed early
        carry no position yet."""
        return self._apply_all(
            ((events, None) for events in batches), progress, expected_events=expected_events
        )

    def apply_all_with_facts(
        self,
        batches: Iterable[tuple[Sequence[StreamEvent], pa.Table]],
        progress: Callable[[int], None] | None = None,
        *,
        expected_events: ExpectedEvents = None,
    ) -> int:
        """`apply_all` for batches whose event fact rows were made elsewhere (a parallel
        rebuild's workers), complete but for the stream sequence and the account, which the
        fold fills in."""
        return self._apply_all(batches, progress, expected_events=expected_events)

    def _apply_all(
        self,
        batches: Iterable[tuple[Sequence[StreamEvent], pa.Table | None]],
        progress: Callable[[int], None] | None,
        *,
        expected_events: ExpectedEvents,
    ) -> int:
        with self._lock:
            if self._position != 0 or not self._is_empty():
                raise ValueError("apply_all needs an empty projection; use apply")
            tickets: dict[str, dict[str, Any]] = {}
            accounts: dict[str, dict[str, Any]] = {}
            changed_tickets: set[str] = set()
            changed_accounts: set[str] = set()
            last, applied = 0, 0
            self._con.begin()
            try:
                facts_in = WholeRowGroups(
                    lambda rows: self._insert_arrow("event_facts", EVENT_FACTS, rows),
                    layout=(
                        _layout_of(expected_events)
                        if callable(expected_events)
                        else RowGroupLayout(expected_events)
                    ),
                    settle=lambda inserted: self._commit_early(
                        checkpoint=inserted == facts_in.layout.lead
                    ),
                )
                with ThreadPoolExecutor(1, thread_name_prefix="analytics-writer") as writer:
                    in_flight: deque[Future[None]] = deque()
                    for events, made_facts in batches:
                        if not events:
                            continue
                        fold = BatchFold(tickets, accounts)
                        if made_facts is None:
                            for event in events:
                                fold.add(event)
                        else:  # the occurred times as the workers parsed them (microseconds)
                            times = made_facts.column("occurred_at").cast(pa.int64()).to_pylist()
                            for event, at in zip(events, times, strict=True):
                                fold.add(event, at)
                        facts = (
                            event_fact_batch(events, fold.account_ids)
                            if made_facts is None
                            else _completed(made_facts, events, fold.account_ids)
                        )
                        if len(in_flight) == WRITES_IN_FLIGHT:
                            in_flight.popleft().result()
                        in_flight.append(writer.submit(self._write_facts, events, facts, facts_in))
                        changed_tickets |= fold.changed_ticket_ids
                        changed_accounts |= fold.changed_account_ids
                        last, applied = events[-1].sequence, applied + len(events)
                        if progress:
                            progress(len(events))
                    # Made while the writer finishes; inserted, not merged: the tables are empty.
                    ticket_rows = _rows_table(
                        TICKET_FACTS, [tickets[i] for i in sorted(changed_tickets)]
                    )
                    account_rows = _rows_table(
                        ACCOUNTS, [accounts[i] for i in sorted(changed_accounts)]
                    )
                    while in_flight:
                        in_flight.popleft().result()
                facts_in.flush()
                self._insert_arrow("ticket_facts", TICKET_FACTS, ticket_rows)
                self._insert_arrow("accounts", ACCOUNTS, account_rows)
                self._con.execute(
                    "UPDATE projection_position SET stream_sequence = ?, updated_at = now() "
                    "WHERE projection = ?",
                    [last, PROJECTION],
                )
                self._con.commit()
            except BaseException:
                self._con.rollback()
                raise
            self._position = last
            return applied

    def _commit_early(self, *, checkpoint: bool) -> None:
        """Commit a rebuild's rows so far (`RowGroupLayout`), and with `checkpoint` compress
        them now rather than at the end."""
        self._con.commit()
        if checkpoint:
            self._con.execute("CHECKPOINT")
        self._con.begin()

    def _is_empty(self) -> bool:
        counts = self._con.execute(
            "SELECT (SELECT count(*) FROM event_facts) + (SELECT count(*) FROM ticket_facts) "
            "+ (SELECT count(*) FROM accounts)"
        ).fetchone()
        return counts == (0,)

    def _write_facts(
        self,
        events: Sequence[StreamEvent],
        facts: pa.Table | pa.RecordBatch,
        facts_in: WholeRowGroups,
    ) -> None:
        """A batch's event facts, redactions and SLA rows (the rebuild's writer thread)."""
        facts_in.add(facts)
        if any(e.payload.get("type") == "CommentRedacted" for e in events):
            facts_in.flush()  # the comments to erase must be in the table first
            self._erase_redacted(events)
        fold_ticket_sla(self._con, (e.payload for e in events))

    # --- snapshots and lifecycle ----------------------------------------------------------

    def publish_snapshot(self, target: Path) -> int:
        """Write a consistent read-only copy for analysts; returns the position it holds.

        CHECKPOINT folds the WAL into the file, the copy goes to a temporary name beside the
        target, and `os.replace` swaps it in atomically: an analyst who has the old snapshot
        open keeps reading it, new opens see the new one."""
        target = Path(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        with self._lock:
            self._con.execute("CHECKPOINT")
            try:
                shutil.copyfile(self.path, temporary)
                os.replace(temporary, target)
            finally:
                temporary.unlink(missing_ok=True)
            return self._position

    def reset(self) -> None:
        """Drop every row and the position, for a rebuild by replay."""
        with self._lock:
            self._con.begin()
            try:
                for table in TABLES:
                    self._con.execute(f"DELETE FROM {table}")
                self._con.execute(
                    "INSERT INTO projection_position VALUES (?, 0, NULL)", [PROJECTION]
                )
                self._con.commit()
            except BaseException:
                self._con.rollback()
                raise
            self._position = 0

    def close(self) -> None:
        with self._lock:
            self._con.close()

    def connection(self) -> duckdb.DuckDBPyConnection:
        """The writer connection, for tests and fixed in-process queries (use a cursor)."""
        return self._con

    def __enter__(self) -> AnalyticsStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- internals ------------------------------------------------------------------------

    def _create_schema(self) -> None:
        self._con.begin()
        try:
            for statement in SCHEMA:
                self._con.execute(statement)
            self._add_subject()
            self._add_external_id()
            self._con.execute(
                "INSERT INTO projection_position VALUES (?, 0, NULL) ON CONFLICT DO NOTHING",
                [PROJECTION],
            )
            create_views(self._con)
            self._con.commit()
        except BaseException:
            self._con.rollback()
            raise

    def _add_subject(self) -> None:
        """A file from before `ticket_facts.subject` gains the column, filled from the opening
        events it already holds (exactly what a rebuild would write: subjects never change)."""
        missing = not self._con.execute(
            "SELECT 1 FROM information_schema.columns "
            "WHERE table_name = 'ticket_facts' AND column_name = 'subject'"
        ).fetchall()
        if not missing:
            return
        self._con.execute("ALTER TABLE ticket_facts ADD COLUMN subject VARCHAR")
        self._con.execute(
            "UPDATE ticket_facts SET subject = opened.subject FROM ("
            "SELECT aggregate_id, json_extract_string(payload, '$.subject') AS subject "
            "FROM event_facts WHERE type = 'TicketOpened') AS opened "
            "WHERE ticket_facts.ticket_id = opened.aggregate_id"
        )

    def _add_external_id(self) -> None:
        """A file from before `ticket_facts.external_id` gains the column, filled from the
        opening events it already holds (as a rebuild would: it never changes)."""
        missing = not self._con.execute(
            "SELECT 1 FROM information_schema.columns "
            "WHERE table_name = 'ticket_facts' AND column_name = 'external_id'"
        ).fetchall()
        if not missing:
            return
        self._con.execute("ALTER TABLE ticket_facts ADD COLUMN external_id VARCHAR")
        self._con.execute(
            "UPDATE ticket_facts SET external_id = opened.external_id FROM ("
            "SELECT aggregate_id, json_extract_string(payload, '$.external_id') AS external_id "
            "FROM event_facts WHERE type = 'TicketOpened') AS opened "
            "WHERE ticket_facts.ticket_id = opened.aggregate_id"
        )

    def _stored_position(self) -> int:
        rows = self._con.execute(
            "SELECT stream_sequence FROM projection_position WHERE projection = ?", [PROJECTION]
        ).fetchall()
        return int(rows[0][0]) if rows else 0

    def _write(self, events: Sequence[StreamEvent]) -> None:
        ticket_ids = {
            str(e.payload["aggregate_id"])
            for e in events
            if AGGREGATE_KIND_OF.get(e.payload.get("type", ""), "ticket") == "ticket"
        }
        account_ids = {
            str(e.payload["aggregate_id"])
            for e in events
            if e.payload.get("type") in ACCOUNT_EVENT_TYPES
        }
        fold = BatchFold(
            tickets=self._load("ticket_facts", TICKET_FACTS, "ticket_id", ticket_ids),
            accounts=self._load("accounts", ACCOUNTS, "account_uuid", account_ids),
        )
        for event in events:
            fold.add(event)
        self._insert_arrow("event_facts", EVENT_FACTS, event_fact_batch(events, fold.account_ids))
        self._erase_redacted(events)
        self._upsert("ticket_facts", TICKET_FACTS, "ticket_id", fold.changed_tickets())
        self._upsert("accounts", ACCOUNTS, "account_uuid", fold.changed_accounts())
        fold_ticket_sla(self._con, (e.payload for e in events))
        self._con.execute(
            "UPDATE projection_position SET stream_sequence = ?, updated_at = now() "
            "WHERE projection = ?",
            [events[-1].sequence, PROJECTION],
        )

    def _erase_redacted(self, events: Sequence[StreamEvent]) -> None:
        """A redacted comment's text leaves the facts too, exactly as the store erases it
        (an empty body), so a rebuild from the store equals the live projection."""
        for event in events:
            if event.payload.get("type") != "CommentRedacted":
                continue
            self._con.execute(
                'UPDATE event_facts SET payload = json_merge_patch(payload, \'{"body": ""}\') '
                "WHERE aggregate_id = ? AND type = 'CommentAdded' "
                "AND json_extract_string(payload, '$.comment_id') = ?",
                [event.payload["aggregate_id"], event.payload["comment_id"]],
            )

    def _load(
        self, table: str, columns: Sequence[Column], key: str, ids: set[str]
    ) -> dict[str, dict[str, Any]]:
        if not ids:
            return {}
        self._con.register("_batch_ids", pa.table({"id": pa.array(sorted(ids), pa.string())}))
        try:
            select = ", ".join(c.read for c in columns)
            rows = self._con.execute(
                f"SELECT {select} FROM {table} "
                f"WHERE {key} IN (SELECT CAST(id AS UUID) FROM _batch_ids)"
            ).fetchall()
        finally:
            self._con.unregister("_batch_ids")
        names = [c.name for c in columns]
        return {row[0]: dict(zip(names, row, strict=True)) for row in rows}

    def _insert_arrow(
        self, table: str, columns: Sequence[Column], batch: pa.Table | pa.RecordBatch
    ) -> None:
        self._con.register("_batch_rows", batch)
        try:
            names = ", ".join(c.name for c in columns)
            select = ", ".join(c.select for c in columns)
            self._con.execute(f"INSERT INTO {table} ({names}) SELECT {select} FROM _batch_rows")
        finally:
            self._con.unregister("_batch_rows")

    def _upsert(
        self, table: str, columns: Sequence[Column], key: str, rows: Sequence[dict[str, Any]]
    ) -> None:
        """MERGE the folded rows: at most one row per key, so MERGE's duplicate trap is shut."""
        if not rows:
            return
        self._con.register("_batch_rows", _rows_table(columns, rows))
        try:
            select = ", ".join(c.select for c in columns)
            self._con.execute(
                f"MERGE INTO {table} USING (SELECT {select} FROM _batch_rows) AS batch "
                f"ON {table}.{key} = batch.{key} "
                "WHEN MATCHED THEN UPDATE WHEN NOT MATCHED THEN INSERT"
            )
        finally:
            self._con.unregister("_batch_rows")


def _layout_of(count: Callable[[], int]) -> Callable[[], RowGroupLayout]:
    return lambda: RowGroupLayout(count())


def _rows_table(columns: Sequence[Column], rows: Sequence[dict[str, Any]]) -> pa.Table:
    """Folded rows (dicts) as the Arrow table DuckDB reads."""
    return pa.table(
        {c.name: pa.array(list(map(itemgetter(c.name), rows)), c.arrow_type) for c in columns}
    )


_SEQUENCE_COLUMN = [c.name for c in EVENT_FACTS].index("stream_sequence")
_ACCOUNT_COLUMN = [c.name for c in EVENT_FACTS].index("account_id")


def _completed(
    facts: pa.Table, events: Sequence[StreamEvent], account_ids: list[str | None]
) -> pa.Table:
    """Fact rows made elsewhere, with the stream sequences and accounts filled in."""
    if facts.num_rows != len(events):
        raise ValueError(f"{facts.num_rows} event fact rows for {len(events)} events")
    facts = facts.set_column(
        _SEQUENCE_COLUMN,
        "stream_sequence",
        pa.array([e.sequence for e in events], pa.int64()),
    )
    return facts.set_column(_ACCOUNT_COLUMN, "account_id", pa.array(account_ids, pa.string()))


class BatchFold:
    """Folds a batch of event payloads into one row per aggregate, noting each event's account.

    Rows are the stored rows of the aggregates the batch touches (times in microseconds);
    the fold changes them in place, in stream order, so any split of the stream into
    batches ends in the same rows."""

    def __init__(
        self, tickets: dict[str, dict[str, Any]], accounts: dict[str, dict[str, Any]]
    ) -> None:
        self.tickets = tickets
        self.accounts = accounts
        self.account_ids: list[str | None] = []
        """Each event's account, in order (for its event fact row)."""
        self._changed_tickets: set[str] = set()
        self._changed_accounts: set[str] = set()

    @property
    def changed_ticket_ids(self) -> set[str]:
        return self._changed_tickets

    @property
    def changed_account_ids(self) -> set[str]:
        return self._changed_accounts

    def changed_tickets(self) -> list[dict[str, Any]]:
        return [self.tickets[i] for i in sorted(self._changed_tickets)]

    def changed_accounts(self) -> list[dict[str, Any]]:
        return [self.accounts[i] for i in sorted(self._changed_accounts)]

    def add(self, event: StreamEvent, at: int | None = None) -> None:
        """Fold one event; `at`: its occurred time in microseconds, when already known."""
        payload = event.payload
        kind = payload["type"]
        aggregate_id = str(payload["aggregate_id"])
        if at is None:
            at = micros(payload["occurred_at"])
        aggregate_kind = AGGREGATE_KIND_OF.get(kind, "ticket")
        account_id: str | None = None
        if aggregate_kind == "account":
            account_id = self._account(aggregate_id, payload, at)
        elif aggregate_kind == "ticket":
            account_id = self._ticket(aggregate_id, payload, at)
        self.account_ids.append(account_id)

    def _account(self, account_uuid: str, payload: dict[str, Any], at: int) -> str | None:
        kind = payload["type"]
        row = self.accounts.get(account_uuid)
        if kind == "AccountRegistered":
            row = {
                "account_uuid": account_uuid,
                "account_id": payload["account_id"],
                "name": payload["name"],
                "tier": payload["tier"],
            }
            self.accounts[account_uuid] = row
        elif row is None:
            log.warning("%s for unknown account %s; account row skipped", kind, account_uuid)
            return None
        elif kind == "AccountTierChanged":
            row["tier"] = payload["tier"]
        elif kind == "AccountRenamed":
            row["name"] = payload["name"]
        row["version"] = payload.get("version")
        row["updated_at"] = at
        self._changed_accounts.add(account_uuid)
        account_id: str | None = row["account_id"]
        return account_id

    def _ticket(self, ticket_id: str, payload: dict[str, Any], at: int) -> str | None:
        kind = payload["type"]
        if kind == "TicketOpened":
            row = _opened_row(ticket_id, payload, at)
            self.tickets[ticket_id] = row
        else:
            existing = self.tickets.get(ticket_id)
            if existing is None:
                log.warning("%s for unknown ticket %s; ticket row skipped", kind, ticket_id)
                return None
            row = existing
            _evolve(row, payload, at)
        row["last_event_at"] = at
        row["version"] = payload.get("version")
        self._changed_tickets.add(ticket_id)
        account_id: str = row["account_id"]
        return account_id


def _opened_row(ticket_id: str, payload: dict[str, Any], at: int) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(c.name for c in TICKET_FACTS)
    actor = payload.get("actor") or {}
    row.update(
        ticket_id=ticket_id,
        account_id=payload["account_id"],
        account_tier=payload["account_tier"],
        channel=payload["channel"],
        category=payload.get("category"),
        priority=payload["priority"],
        requester=payload["requester"],
        subject=payload["subject"],
        external_id=payload.get("external_id"),
        opened_at=at,
        opened_by_kind=actor.get("kind", "customer"),
        status="new",
        status_since=at,
        reopens=0,
        agent_replies=0,
        public_comments=0,
        internal_comments=0,
        seconds_new=0.0,
        seconds_open=0.0,
        seconds_pending=0.0,
        seconds_on_hold=0.0,
        reassignments=0,
    )
    return row


def _evolve(row: dict[str, Any], payload: dict[str, Any], at: int) -> None:
    """One event's effect on a ticket fact row (docs/kpis.md)."""
    kind = payload["type"]
    if "to_status" in payload:
        _move(row, payload["to_status"], at)
    elif kind == "CommentAdded":
        _comment(row, payload, at)
    elif kind == "TicketAssigned":
        agent = payload.get("agent")
        if agent is not None and agent != row["agent"]:
            # Reassignments count agent changes after the first assignment to an agent.
            if row["first_assigned_at"] is None:
                row["first_assigned_at"] = at
            else:
                row["reassignments"] += 1
        row["team"] = payload.get("team")
        row["agent"] = agent
    elif kind == "TicketCategorized":
        row["category"] = payload["category"]
    elif kind == "TicketPrioritized":
        row["priority"] = payload["priority"]
    elif kind == "TicketRated":
        row["rating_score"] = payload["score"]
        row["rating_comment"] = payload.get("comment")
        row["rated_at"] = at


def _move(row: dict[str, Any], to_status: str, at: int) -> None:
    from_status = row["status"]
    if to_status == from_status:
        return  # a new resolution text on a solved ticket: no status change, no new solve
    if from_status in WORKING_STATUSES:
        row[f"seconds_{from_status}"] += (at - row["status_since"]) / 1_000_000
    row["status"] = to_status
    row["status_since"] = at
    if to_status == "solved":
        if row["first_solved_at"] is None:
            row["first_solved_at"] = at
        row["last_solved_at"] = at
        row["team_at_resolution"] = row["team"]
        row["agent_at_resolution"] = row["agent"]
    elif to_status == "closed":
        row["closed_at"] = at
    if from_status == "solved" and to_status in WORKING_STATUSES:
        row["reopens"] += 1


def _comment(row: dict[str, Any], payload: dict[str, Any], at: int) -> None:
    if payload.get("visibility") != "public":
        row["internal_comments"] += 1
        return
    row["public_comments"] += 1
    author = (payload.get("actor") or {}).get("kind")
    if author == "agent":
        row["agent_replies"] += 1
        # docs/kpis.md: "if an agent opened the ticket, its second public agent reply" counts the
        # opening as the agent's first public comment, as Zendesk does with the description.
        # Here the description lives in TicketOpened, not in a CommentAdded, so for every
        # ticket the first reply is the first public agent CommentAdded (Zendesk parity).
        if row["first_reply_at"] is None:
            row["first_reply_at"] = at
    elif author in AUTOMATED_KINDS and row["first_automated_reply_at"] is None:
        row["first_automated_reply_at"] = at
