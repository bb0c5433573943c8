"""Queue queries for the CLI, the Python API and `ticketing.query.queue` alike."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from projections.queue.search_index import MAX_TEXT, match_expression
from projections.queue.sla import SLA_COLUMNS
from projections.queue.store import COLUMNS, QueueOutdatedError, _file_of, corruption_named
from ticketing.domain.errors import ValidationError
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
    requester: str | None = None
    """The requester's e-mail address, in any case."""
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
    if query.requester is not None:
        clauses.append("requester = ? COLLATE NOCASE")
        params.append(query.requester)
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


# --- search -------------------------------------------------------------------------------

Status = Literal["new", "open", "pending", "on_hold", "solved", "closed"]
SEARCH_LIMIT = 1_000
"""The most tickets one search returns."""
SUBJECT_WEIGHT = 3.0
"""A match in the subject ranks as a three times better one elsewhere (BM25 is per text)."""
PLACES = {
    ("subject", "public"): "subject",
    ("description", "public"): "description",
    ("comment", "public"): "comment",
    ("comment", "internal"): "internal note",
}


class SearchFilters(BaseModel):
    """What a search is narrowed to; unset filters match everything (every status too:
    search finds solved and closed tickets)."""

    model_config = ConfigDict(extra="forbid")
    status: list[Status] | None = None
    account: str | None = None
    requester: str | None = None
    """The requester's e-mail address, in any case."""
    include_internal: bool = True
    """Whether internal notes are searched (agents: yes; anything a customer sees: no)."""


def search(
    reader: sqlite3.Connection,
    text: str,
    limit: int = 20,
    filters: SearchFilters | None = None,
    marks: tuple[str, str] = ("[", "]"),
) -> list[dict[str, Any]]:
    """Tickets whose subject, description or comments hold every word of `text` (a "quoted
    phrase" in order, `word*` a prefix), best first (BM25, subject matches weighted), each
    with where it matched and a snippet of its best text with the matches between `marks`.

    `internal_only` is true when only internal notes matched: a customer must not be shown
    that ticket as a hit. Bad input is a `ValidationError` naming the field (`text`,
    `limit`); any text is safe, FTS5 operators in it are searched as words."""
    filters = filters or SearchFilters()
    if len(text) > MAX_TEXT:
        raise ValidationError(f"text: at most {MAX_TEXT} characters", field="text")
    expression = match_expression(text)
    if not expression:
        raise ValidationError(
            f"text: nothing to search for in {text!r} (words are letters and digits)",
            field="text",
        )
    if not 1 <= limit <= SEARCH_LIMIT:
        raise ValidationError(f"limit: must be 1 to {SEARCH_LIMIT:,}", field="limit")
    with corruption_named(reader):
        if not reader.execute("SELECT 1 FROM sqlite_master WHERE name = 'queue_search'").fetchone():
            raise QueueOutdatedError(_file_of(reader), int(_user_version(reader)))
        try:
            return _search(reader, expression, limit, filters, marks)
        except sqlite3.OperationalError as error:  # never expected: the expression is quoted
            if "fts5" not in str(error):
                raise
            raise ValidationError(f"text: cannot search for {text!r}", field="text") from error


def _search(
    reader: sqlite3.Connection,
    expression: str,
    limit: int,
    filters: SearchFilters,
    marks: tuple[str, str],
) -> list[dict[str, Any]]:
    hits_where = "" if filters.include_internal else "AND visibility = 'public'"
    clauses, params = ["1"], [expression]
    if filters.status:
        clauses.append(f"t.status IN ({','.join('?' for _ in filters.status)})")
        params.extend(filters.status)
    if filters.account is not None:
        clauses.append("t.account_id = ?")
        params.append(filters.account)
    if filters.requester is not None:
        clauses.append("t.requester = ? COLLATE NOCASE")
        params.append(filters.requester)
    # The best text of each ticket is the row min() picks (SQLite takes the bare `hit` and
    # `place` from it); its snippet is made afterwards, for the tickets returned only.
    rows = reader.execute(
        f"""
        WITH hits AS MATERIALIZED (
            SELECT rowid AS hit, ticket_id, field || ':' || visibility AS place,
                   bm25(queue_search) * (CASE field WHEN 'subject' THEN {SUBJECT_WEIGHT}
                                         ELSE 1.0 END) AS score
            FROM queue_search WHERE queue_search MATCH ? {hits_where}
        ), best AS (
            SELECT ticket_id, min(score) AS score, hit, place,
                   group_concat(DISTINCT place) AS places
            FROM hits GROUP BY ticket_id
        )
        SELECT b.ticket_id, b.score, b.hit, b.place, b.places, t.subject, t.status, t.priority,
               t.account_id, t.requester, t.team, t.agent, t.updated_at
        FROM best b JOIN queue_tickets t USING (ticket_id)
        WHERE {" AND ".join(clauses)}
        ORDER BY b.score, b.ticket_id LIMIT ?
        """,
        [*params, limit],
    ).fetchall()
    snippets = _snippets(reader, expression, [row[2] for row in rows], marks)
    results = []
    for ticket_id, score, hit, place, places, *rest in rows:
        matched = [PLACES[p] for p in _ordered_places(places.split(","))]
        results.append(
            {
                "ticket_id": ticket_id,
                **dict(
                    zip(
                        (
                            "subject",
                            "status",
                            "priority",
                            "account_id",
                            "requester",
                            "team",
                            "agent",
                            "updated_at",
                        ),
                        rest,
                        strict=True,
                    )
                ),
                "matched_in": matched,
                "internal_only": matched == ["internal note"],
                "snippet": snippets.get(hit, ""),
                "snippet_in": PLACES[tuple(place.split(":"))],
                "rank": -score,
            }
        )
    return results


def _ordered_places(places: list[str]) -> list[tuple[str, str]]:
    wanted = {tuple(p.split(":", 1)) for p in places}
    return [key for key in PLACES if key in wanted]


def _snippets(
    reader: sqlite3.Connection, expression: str, hits: list[int], marks: tuple[str, str]
) -> dict[int, str]:
    if not hits:
        return {}
    rows = reader.execute(
        "SELECT rowid, snippet(queue_search, 4, ?, ?, '…', 16) FROM queue_search "
        f"WHERE queue_search MATCH ? AND rowid IN ({','.join('?' for _ in hits)})",
        [marks[0], marks[1], expression, *hits],
    ).fetchall()
    return {int(rowid): " ".join(text.split()) for rowid, text in rows}


def _user_version(reader: sqlite3.Connection) -> int:
    return int(reader.execute("PRAGMA user_version").fetchone()[0])
