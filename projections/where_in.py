"""Statements over a set of ticket ids, a bounded number of parameters at a time: the one
chunked `WHERE … IN` loader of the projections and the workers (SQLite and DuckDB alike)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

CHUNK = 500
"""The most ids one statement binds: far below SQLite's parameter limit, large enough that a
batch of thousands of tickets costs a handful of statements."""


def fetch_where_in(db: Any, statement: str, ids: Sequence[Any]) -> list[Any]:
    """Every row of `statement` for `ids`; its `{marks}` stands for one chunk's `?` marks, as
    in `SELECT … WHERE ticket_id IN ({marks})`."""
    rows: list[Any] = []
    for start in range(0, len(ids), CHUNK):
        chunk = list(ids[start : start + CHUNK])
        marks = ",".join("?" for _ in chunk)
        rows.extend(db.execute(statement.format(marks=marks), chunk).fetchall())
    return rows


def delete_where_in(db: Any, table: str, ticket_ids: Sequence[str]) -> None:
    """Delete a set of tickets' rows from `table`."""
    fetch_where_in(db, f"DELETE FROM {table} WHERE ticket_id IN ({{marks}})", ticket_ids)
