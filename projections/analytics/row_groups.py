"""Event facts handed to DuckDB in whole row groups during a rebuild.

An INSERT of at least one whole row group (DuckDB's unit of storage) compresses and writes
those row groups to the file while the statement runs; smaller INSERTs only stage their rows,
and the compression of all of them waits for the commit. A rebuild inserts from a writer
thread while the next events are read and folded, so whole row groups move that work beside
the fold.

When the rebuild knows how many rows will come, `RowGroupLayout` places the part-filled row
groups so that little is left to compress at the end: a part-filled `lead` first, in its own
transaction, compressed by a checkpoint beside the fold; then the whole groups, committed;
then the `tail`, the only rows the last commit compresses. Measured and read in DuckDB 2.0:

- a transaction that ends in a part-filled group after whole ones makes the commit rewrite
  every group (1.0 s of a 200,000-event rebuild, and a file half as large again);
- the last whole group is compressed only once its last row has come, so the tail must be
  long enough to hide that (`SHORTEST_TAIL`);
- a checkpoint merges neighbouring row groups that fit into fewer (rewriting them all), and
  at the end of a table it does so when they reach twice the first one's rows
  (`RowGroupCollection::ScheduleVacuumTasks`); a lead of at least half a row group, or none,
  never qualifies.
"""

from __future__ import annotations

from collections.abc import Callable

import pyarrow as pa

ROW_GROUP_ROWS = 122_880
"""DuckDB's default row group size (`DEFAULT_ROW_GROUP_SIZE`)."""

SHORTEST_TAIL = ROW_GROUP_ROWS // 3
"""Rows after the last whole group: about two batches of events (0.8 s of a rebuild), while
the writer compresses that group (0.4-0.5 s). Compressing them in the last commit takes
0.12 s; a tail may be up to half a row group longer, to keep the lead long enough."""


class RowGroupLayout:
    """Where the part-filled row groups go for `expected_rows` rows: `lead` rows first, then
    whole groups up to `settle_points[-1]` rows, then the tail (the rest)."""

    def __init__(self, expected_rows: int | None) -> None:
        expected = expected_rows or 0
        lead = (expected - SHORTEST_TAIL) % ROW_GROUP_ROWS if expected > SHORTEST_TAIL else 0
        if 2 * lead < ROW_GROUP_ROWS or expected % ROW_GROUP_ROWS == 0:
            lead = 0  # a short lead, or one filling a group with the tail, would be merged
        whole = (expected - lead) // ROW_GROUP_ROWS * ROW_GROUP_ROWS
        if expected - lead - whole < SHORTEST_TAIL:
            whole = max(whole - ROW_GROUP_ROWS, 0)  # (then the tail is a whole group or more)
        self.lead = lead
        self.tail = expected - lead - whole
        self.settle_points = sorted({lead, lead + whole} - {0})
        """Rows inserted after which the writer commits what it has (and checkpoints the
        lead, so that it is compressed now)."""


class WholeRowGroups:
    """Gathers record batches and inserts them as `layout` says: the lead alone, then whole
    row groups one at a time; the rest waits for more rows or for `flush`. `settle` is called
    with the number of rows inserted whenever that reaches one of the layout's points.

    `layout` may be given as a function (a count of the store) called only once half a row
    group has come: no layout inserts anything before that, so the count need not hold up
    the start of a rebuild, nor be taken at all for a small one."""

    def __init__(
        self,
        insert: Callable[[pa.Table], None],
        *,
        layout: RowGroupLayout | Callable[[], RowGroupLayout] | None = None,
        settle: Callable[[int], None] | None = None,
    ) -> None:
        self._insert = insert
        self._make_layout = layout if callable(layout) else None
        self._layout = None if callable(layout) else layout or RowGroupLayout(None)
        self._settle = settle
        self._pending: list[pa.Table] = []
        self._rows = 0
        self._inserted = 0

    @property
    def layout(self) -> RowGroupLayout:
        if self._layout is None:
            assert self._make_layout is not None
            self._layout = self._make_layout()
        return self._layout

    def add(self, rows: pa.Table | pa.RecordBatch) -> None:
        table = pa.Table.from_batches([rows]) if isinstance(rows, pa.RecordBatch) else rows
        self._pending.append(table)
        self._rows += table.num_rows
        if self._layout is None and self._inserted + self._rows < ROW_GROUP_ROWS // 2:
            return
        short_of_lead = self.layout.lead - self._inserted  # (a flush may have sent some)
        if short_of_lead > 0:
            if self._rows < short_of_lead:
                return
            self._insert_first(short_of_lead)
        while self._rows >= ROW_GROUP_ROWS:
            self._insert_first(ROW_GROUP_ROWS)

    def flush(self) -> None:
        """Insert everything gathered (before anything reads or updates these rows)."""
        if self._rows:
            self._insert_first(self._rows)

    def _insert_first(self, rows: int) -> None:
        gathered = pa.concat_tables(self._pending)
        # One contiguous chunk: DuckDB writes an Arrow chunk boundary as a row group boundary,
        # and the checkpoint would then rewrite every part-filled group.
        self._insert(gathered.slice(0, rows).combine_chunks())
        rest = gathered.slice(rows)
        self._pending, self._rows = ([rest] if rest.num_rows else []), self._rows - rows
        self._inserted += rows
        # (no layout yet: fewer rows than any settle point, which is half a row group or more)
        points = self._layout.settle_points if self._layout is not None else []
        if self._settle is not None and self._inserted in points:
            self._settle(self._inserted)
