"""Queue queries for the CLI, the Python API and `ticketing.query.queue` alike."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from projections.queue.sla import SLA_COLUMNS
from projections.queue.store import COLUMNS, corruption_named
from ticketing.domain.status_rules import WORKING_STATUSES
from ticketing.home import sqlite_read_uri

MAX_LIMIT = 10_000
"""The most tickets one queue query returns (the CLI's `--limit` range says the same)."""
ORDER_BY = {
    "priority": "priority_rank ASC, opened_at ASC",
    "age": "opened_at ASC",
    "updated": "updated_at DESC",
    "due": "s.sla_due_at IS NULL, s.sla_due_at ASC, priority_rank ASC",
}


class QueueQuery(BaseModel):
    """Filters and sort of a queue screen; unset filters match everything, and by default
    only unsolved tickets are listed."""

    model_config = ConfigDict(extra="forbid")
    team: str | None = None
    agent: str | None = None
    status: list[Literal["new", "open", "pending", "on_hold", "solved", "closed"]] | None = None
    priority: list[Literal["low", "normal", "high", "urgent"]] | None = None
    account: str | None = None
    waiting_on: Literal["customer", "us"] | None = None
    sla_breached: bool | None = None
    """True: only tickets with a breached SLA; False: only those without."""
    sort: Literal["priority", "age", "updated", "due"] = "priority"
    limit: int = Field(default=100, ge=1, le=MAX_LIMIT)


class QueueNotReadyError(RuntimeError):
    """The queue projection has not been created yet."""


def open_reader(path: Path) -> sqlite3.Connection:
    if not path.exists():
        raise QueueNotReadyError(
            f"no queue projection at {path}: run `ticketing serve` (or `ticketing run "
            "queue-projector`), or `ticketing rebuild queue`"
        )
    reader = sqlite3.connect(sqlite_read_uri(path), uri=True, check_same_thread=False)
    try:
        queue_position(reader)  # a damaged file is named here, with the fix
    except BaseException:
        reader.close()
        raise
    return reader


def list_queue(reader: sqlite3.Connection, query: QueueQuery) -> list[dict[str, Any]]:
    with corruption_named(reader):
        return _list_queue(reader, query)


def _list_queue(reader: sqlite3.Connection, query: QueueQuery) -> list[dict[str, Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    for column, value in (
        ("team", query.team),
        ("agent", query.agent),
        ("account_id", query.account),
    ):
        if value is not None:
            clauses.append(f"{column} = ?")
            params.append(value)
    statuses: list[str] = list(query.status or WORKING_STATUSES)
    clauses.append(f"status IN ({','.join('?' for _ in statuses)})")
    params.extend(statuses)
    if query.priority:
        clauses.append(f"priority IN ({','.join('?' for _ in query.priority)})")
        params.extend(query.priority)
    if query.waiting_on:
        clauses.append("waiting_on = ?")
        params.append(query.waiting_on)
    if query.sla_breached is not None:
        clauses.append(f"coalesce(s.sla_breached, '[]') {'!=' if query.sla_breached else '='} '[]'")
    names = [*COLUMNS, *SLA_COLUMNS]
    selected = [f"t.{c}" for c in COLUMNS] + [f"s.{c}" for c in SLA_COLUMNS]
    sql = (
        f"SELECT {','.join(selected)} FROM queue_tickets t "
        f"LEFT JOIN queue_sla s USING (ticket_id) WHERE {' AND '.join(clauses)} "
        f"ORDER BY {ORDER_BY[query.sort]}, ticket_id LIMIT ?"
    )
    rows = reader.execute(sql, [*params, query.limit]).fetchall()
    tickets = [dict(zip(names, row, strict=True)) for row in rows]
    for ticket in tickets:
        ticket["tags"] = json.loads(ticket["tags"])
        for flags in ("sla_breached", "sla_warned"):
            ticket[flags] = json.loads(ticket[flags]) if ticket[flags] else []
    return tickets


def queue_position(reader: sqlite3.Connection) -> int:
    with corruption_named(reader):
        row = reader.execute("SELECT stream_sequence FROM projection_position").fetchone()
    return int(row[0]) if row else 0
