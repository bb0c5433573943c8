"""Event facts reach DuckDB in whole row groups, in order, each row once."""

from __future__ import annotations

import pyarrow as pa

from projections.analytics.row_groups import (
    ROW_GROUP_ROWS,
    TAIL_ROWS,
    RowGroupLayout,
    WholeRowGroups,
)


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


def feed(facts_in: WholeRowGroups, rows: int, size: int = 20_000) -> None:
    start = 0
    while start < rows:
        facts_in.add(batch(start, min(size, rows - start)))
        start += size
    facts_in.flush()


def test_a_known_row_count_gets_a_lead_whole_groups_and_a_small_tail() -> None:
    # Given a rebuild that expects 285,760 rows
    expected = 2 * ROW_GROUP_ROWS + 40_000
    layout = RowGroupLayout(expected)
    calls: list[str] = []
    inserted: list[pa.Table] = []

    def insert(table: pa.Table) -> None:
        calls.append(f"insert {table.num_rows}")
        inserted.append(table)

    facts_in = WholeRowGroups(
        insert, layout=layout, settle=lambda rows: calls.append(f"settle at {rows}")
    )
    # When the rows come in batches of 20,000 and the rest is flushed
    feed(facts_in, expected)

    # Then the lead goes in alone and is settled, then the whole groups, settled, then the tail
    lead = expected - TAIL_ROWS - 2 * ROW_GROUP_ROWS
    assert layout.lead == lead
    assert calls == [
        f"insert {lead}",
        f"settle at {lead}",
        f"insert {ROW_GROUP_ROWS}",
        f"insert {ROW_GROUP_ROWS}",
        f"settle at {expected - TAIL_ROWS}",
        f"insert {TAIL_ROWS}",
    ]
    assert all(t.column(0).num_chunks == 1 for t in inserted)
    sequences = [s for t in inserted for s in t.column("sequence").to_pylist()]
    assert sequences == list(range(expected))


def test_a_flush_before_the_lead_is_reached_still_ends_the_lead_where_the_layout_says() -> None:
    # Given a layout with a lead of 50,000 rows and a redaction flushing after 30,000
    expected = ROW_GROUP_ROWS + 50_000 + TAIL_ROWS
    sizes: list[int] = []
    facts_in = WholeRowGroups(
        lambda table: sizes.append(table.num_rows), layout=RowGroupLayout(expected)
    )
    facts_in.add(batch(0, 30_000))
    facts_in.flush()
    for start in range(30_000, expected, 20_000):
        facts_in.add(batch(start, min(20_000, expected - start)))
    facts_in.flush()
    # Then the lead is made up to 50,000 and a whole group follows it
    assert sizes == [30_000, 20_000, ROW_GROUP_ROWS, TAIL_ROWS]


def test_fewer_rows_than_expected_go_in_once_without_settling() -> None:
    # Given a layout for 100,000 rows but only 600 coming (the count was too high)
    calls: list[str] = []
    facts_in = WholeRowGroups(
        lambda table: calls.append(f"insert {table.num_rows}"),
        layout=RowGroupLayout(100_000),
        settle=lambda rows: calls.append("settle"),
    )
    feed(facts_in, 600)
    # Then the rows still go in, once
    assert calls == ["insert 600"]


def test_layouts_of_small_and_unknown_counts() -> None:
    assert (RowGroupLayout(None).lead, RowGroupLayout(None).settle_points) == (0, [])
    assert (RowGroupLayout(5_000).lead, RowGroupLayout(5_000).settle_points) == (0, [])
    whole = RowGroupLayout(3 * ROW_GROUP_ROWS + TAIL_ROWS)
    assert (whole.lead, whole.settle_points) == (0, [3 * ROW_GROUP_ROWS])
