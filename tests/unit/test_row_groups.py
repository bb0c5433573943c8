"""Event facts reach DuckDB in whole row groups, in order, each row once."""

from __future__ import annotations

import pyarrow as pa

from projections.analytics.row_groups import ROW_GROUP_ROWS, WholeRowGroups


def batch(start: int, rows: int) -> pa.RecordBatch:
    return pa.record_batch({"sequence": pa.array(range(start, start + rows), pa.int64())})


def test_inserts_whole_row_groups_as_single_chunks_and_the_rest_on_flush() -> None:
    inserted: list[pa.Table] = []
    facts_in = WholeRowGroups(inserted.append)
    sizes = [20_000] * 13 + [7]  # 260,007 rows: two whole row groups and a rest
    start = 0
    for size in sizes:
        facts_in.add(batch(start, size))
        start += size

    assert [t.num_rows for t in inserted] == [ROW_GROUP_ROWS, ROW_GROUP_ROWS]
    facts_in.flush()

    assert [t.num_rows for t in inserted][-1] == start - 2 * ROW_GROUP_ROWS
    assert all(t.column(0).num_chunks == 1 for t in inserted)
    sequences = [s for t in inserted for s in t.column("sequence").to_pylist()]
    assert sequences == list(range(start))


def test_flush_with_nothing_gathered_inserts_nothing() -> None:
    inserted: list[pa.Table] = []
    facts_in = WholeRowGroups(inserted.append)
    facts_in.flush()
    facts_in.add(batch(0, ROW_GROUP_ROWS))
    facts_in.flush()

    assert [t.num_rows for t in inserted] == [ROW_GROUP_ROWS]
