"""Read-only access to the published analytics snapshot, for analysts and the CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb


class SnapshotMissingError(FileNotFoundError):
    """No snapshot has been published at the path yet."""


def open_readonly(path: Path) -> duckdb.DuckDBPyConnection:
    """A read-only connection to a snapshot (never the live file: its writer locks it).

    Several processes may hold read-only connections to one snapshot; a newer snapshot
    replaces the file's name, not the file, so an open connection keeps a consistent view."""
    path = Path(path)
    if not path.is_file():
        raise SnapshotMissingError(f"no analytics snapshot at {path}")
    con = duckdb.connect(str(path), read_only=True)
    con.execute("SET TimeZone = 'UTC'")
    return con


def run_sql(path: Path, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Run one SQL text against the snapshot; returns the column names and the rows."""
    con = open_readonly(path)
    try:
        con.execute(sql)
        if con.description is None:
            return [], []
        columns = [str(d[0]) for d in con.description]
        return columns, con.fetchall()
    finally:
        con.close()


def snapshot_position(con: duckdb.DuckDBPyConnection) -> int:
    """The stream sequence the snapshot holds."""
    rows = con.execute("SELECT max(stream_sequence) FROM projection_position").fetchall()
    return int(rows[0][0] or 0) if rows else 0
