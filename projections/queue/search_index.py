"""The queue's full-text index (SQLite FTS5): subjects, descriptions and comment bodies.

One FTS row per text (a ticket's subject, its description, each comment), written in the
queue's batch transaction with the rows and the position. Internal notes are indexed too, marked
`internal`: the queue is read by agents, and a query can leave them out. A redacted comment's
row is deleted and the index merged at once, so its words leave the index and the file (not
only the visible row) before the batch commits."""

from __future__ import annotations

import re
import sqlite3
from typing import Any

SCHEMA = """
CREATE VIRTUAL TABLE IF NOT EXISTS queue_search USING fts5(
    ticket_id UNINDEXED,
    field UNINDEXED,
    comment_id UNINDEXED,
    visibility UNINDEXED,
    text,
    tokenize = 'unicode61 remove_diacritics 2'
);
"""
FIELDS = ("subject", "description", "comment")
SearchRow = tuple[str, str, str, str, str]
"""(ticket_id, field, comment_id or '', visibility, text), as `queue_search` stores it."""


class SearchChanges:
    """What a batch does to the index, folded in memory like the rows: texts to add (keyed,
    so a rebuild writes each once) and stored comments to delete after a redaction."""

    def __init__(self) -> None:
        self.added: dict[tuple[str, str], SearchRow] = {}
        self.redacted: list[tuple[str, str]] = []
        self.erased = False
        """Whether `write` deleted stored text (the WAL should then be checkpointed)."""

    def opened(self, payload: dict[str, Any]) -> None:
        ticket_id = payload["aggregate_id"]
        for field in ("subject", "description"):
            self._add(ticket_id, field, "", "public", payload[field])

    def fold(self, payload: dict[str, Any]) -> None:
        """A ticket event after its opening (the queue row has not seen it yet)."""
        if payload["type"] == "CommentAdded":
            self.commented(payload)
        elif payload["type"] == "CommentRedacted":
            self.redacted_comment(payload)

    def commented(self, payload: dict[str, Any]) -> None:
        visibility = "public" if payload["visibility"] == "public" else "internal"
        comment_id = payload["comment_id"]
        self._add(payload["aggregate_id"], "comment", comment_id, visibility, payload["body"])

    def redacted_comment(self, payload: dict[str, Any]) -> None:
        key = (payload["aggregate_id"], payload["comment_id"])
        if self.added.pop(key, None) is None:  # added in an earlier batch: stored already
            self.redacted.append(key)

    def _add(self, ticket_id: str, field: str, comment_id: str, visibility: str, text: str) -> None:
        if text:  # an erased comment (a rebuild after a redaction) has nothing to find
            key = (ticket_id, comment_id or field)
            self.added[key] = (ticket_id, field, comment_id, visibility, text)

    def write(self, db: sqlite3.Connection) -> None:
        """Inside the batch's transaction."""
        if self.redacted:
            self.erased = erase(db, self.redacted)
        db.executemany(
            "INSERT INTO queue_search (ticket_id, field, comment_id, visibility, text) "
            "VALUES (?, ?, ?, ?, ?)",
            list(self.added.values()),
        )


def erase(db: sqlite3.Connection, comments: list[tuple[str, str]]) -> bool:
    """Delete the comments' rows, then merge the index into one segment: FTS5 otherwise keeps
    a deleted row's words in older segments (marked deleted) until some later merge. With
    `secure_delete` the freed pages are zeroed too, so the text leaves the file."""
    db.execute("PRAGMA secure_delete = ON")
    try:
        deleted = 0
        for ticket_id, comment_id in comments:
            deleted += db.execute(
                "DELETE FROM queue_search WHERE ticket_id = ? AND comment_id = ?",
                (ticket_id, comment_id),
            ).rowcount
        if deleted:
            db.execute("INSERT INTO queue_search (queue_search) VALUES ('optimize')")
    finally:
        db.execute("PRAGMA secure_delete = OFF")
    return deleted > 0


# --- reading ------------------------------------------------------------------------------

MAX_TEXT = 500
"""The longest search text accepted (characters)."""
_PHRASE_OR_WORD = re.compile(r'"([^"]*)"|(\S+)')
_TOKEN = re.compile(r"[^\W_]+")
"""What the unicode61 tokenizer keeps: runs of letters and digits; all else separates."""


def match_expression(text: str) -> str:
    """User text as a safe FTS5 query: every word or "quoted phrase" must occur (AND), a word
    ending in `*` is a prefix; operators and punctuation are only text. Every term is quoted
    and holds letters and digits only, so no input is FTS5 syntax. Empty when nothing is left
    to search for."""
    terms: list[str] = []
    for phrase, word in _PHRASE_OR_WORD.findall(text):
        tokens = _TOKEN.findall(phrase or word)
        if tokens:
            prefix = "*" if word.endswith("*") else ""
            terms.append(f'"{" ".join(tokens)}"{prefix}')
    return " ".join(terms)
