"""Event facts handed to DuckDB in whole row groups during a rebuild.

An INSERT of at least one whole row group (DuckDB's unit of storage) compresses and writes
those row groups to the file while the statement runs; smaller INSERTs only stage their rows,
and the compression of all of them waits for the commit. A rebuild inserts from a writer
thread while the next events are read and folded, so whole row groups move that work beside
the fold.

The one part-filled row group goes first, not last, when the rebuild knows how many events it
will write (`lead`): a transaction that ends in a part-filled group after whole ones makes
DuckDB (2.0) rewrite every group in the commit (1.0 s of a 200,000-event rebuild, and a file
half as large again, measured), and even alone that group would be compressed in the commit
at the end. First, in its own transaction and checkpoint (`after_lead`), it is compressed
beside the fold too.
"""

from __future__ import annotations

from collections.abc import Callable

import pyarrow as pa

ROW_GROUP_ROWS = 122_880
"""DuckDB's default row group size (`DEFAULT_ROW_GROUP_SIZE`)."""


def lead_rows(expected_rows: int | None) -> int:
    """Rows of the part-filled row group that goes first when `expected_rows` will come."""
    return (expected_rows or 0) % ROW_GROUP_ROWS


class WholeRowGroups:
    """Gathers record batches and inserts the first `lead` rows alone (then calls
    `after_lead`), and after them a whole number of row groups at a time; the rest waits for
    more rows or for `flush`."""

    def __init__(
        self,
        insert: Callable[[pa.Table], None],
        *,
        lead: int = 0,
        after_lead: Callable[[], None] | None = None,
    ) -> None:
        self._insert = insert
        self._lead = lead
        self._after_lead = after_lead
        self._pending: list[pa.Table] = []
        self._rows = 0

    def add(self, rows: pa.Table | pa.RecordBatch) -> None:
        table = pa.Table.from_batches([rows]) if isinstance(rows, pa.RecordBatch) else rows
        self._pending.append(table)
        self._rows += table.num_rows
        if self._lead:
            if self._rows < self._lead:
                return
            self._insert_first(self._lead)
            self._lead = 0
            if self._after_lead is not None:
                self._after_lead()
        whole = self._rows - self._rows % ROW_GROUP_ROWS
        if whole:
            self._insert_first(whole)

    def flush(self) -> None:
        """Insert everything gathered (before anything reads or updates these rows)."""
        if self._rows:
            self._insert_first(self._rows)
        self._lead = 0  # a lead never reached (fewer rows came) is just the last group

    def _insert_first(self, rows: int) -> None:
        gathered = pa.concat_tables(self._pending)
        # One contiguous chunk: DuckDB writes an Arrow chunk boundary as a row group boundary,
        # and the checkpoint would then rewrite every part-filled group.
        self._insert(gathered.slice(0, rows).combine_chunks())
        rest = gathered.slice(rows)
        self._pending, self._rows = ([rest] if rest.num_rows else []), self._rows - rows
