"""Event facts handed to DuckDB in whole row groups during a rebuild.

An INSERT of at least one whole row group (DuckDB's unit of storage) compresses and writes
those row groups to the file while the statement runs; smaller INSERTs only stage their rows,
and the compression of all of them waits for the commit. A rebuild inserts from a writer
thread while the next events are read and folded, so whole row groups move that work (about
half of DuckDB's share of a rebuild, measured) off the commit at the end and beside the fold.
"""

from __future__ import annotations

from collections.abc import Callable

import pyarrow as pa

ROW_GROUP_ROWS = 122_880
"""DuckDB's default row group size (`DEFAULT_ROW_GROUP_SIZE`)."""


class WholeRowGroups:
    """Gathers record batches and inserts them a whole number of row groups at a time; the
    rest waits for more rows or for `flush`."""

    def __init__(self, insert: Callable[[pa.Table], None]) -> None:
        self._insert = insert
        self._pending: list[pa.Table] = []
        self._rows = 0

    def add(self, rows: pa.Table | pa.RecordBatch) -> None:
        table = pa.Table.from_batches([rows]) if isinstance(rows, pa.RecordBatch) else rows
        self._pending.append(table)
        self._rows += table.num_rows
        whole = self._rows - self._rows % ROW_GROUP_ROWS
        if whole:
            gathered = pa.concat_tables(self._pending)
            # One contiguous chunk: DuckDB writes an Arrow chunk boundary as a row group
            # boundary, and the checkpoint would then rewrite every part-filled group.
            self._insert(gathered.slice(0, whole).combine_chunks())
            self._pending = [gathered.slice(whole)]
            self._rows -= whole

    def flush(self) -> None:
        """Insert everything gathered (before anything reads or updates these rows)."""
        if self._rows:
            self._insert(pa.concat_tables(self._pending).combine_chunks())
        self._pending, self._rows = [], 0
