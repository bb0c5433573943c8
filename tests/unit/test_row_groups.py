"""Event facts reach DuckDB in whole row groups, in order, each row once."""

from __future__ import annotations

import pyarrow as pa

from projections.analytics.row_groups import ROW_GROUP_ROWS, WholeRowGroups, lead_rows


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


def test_the_part_filled_group_goes_first_when_the_row_count_is_known() -> None:
    # Given a rebuild that expects 260,007 rows: a lead of 14,247, then two whole groups
    expected = 2 * ROW_GROUP_ROWS + 14_247
    calls: list[str] = []
    inserted: list[pa.Table] = []

    def insert(table: pa.Table) -> None:
        calls.append("insert")
        inserted.append(table)

    facts_in = WholeRowGroups(
        insert, lead=lead_rows(expected), after_lead=lambda: calls.append("after lead")
    )
    # When the rows come in batches of 20,000 and the rest is flushed
    start = 0
    while start < expected:
        size = min(20_000, expected - start)
        facts_in.add(batch(start, size))
        start += size
    facts_in.flush()

    # Then the lead goes in alone and is settled before any whole group follows
    assert [t.num_rows for t in inserted] == [14_247, ROW_GROUP_ROWS, ROW_GROUP_ROWS]
    assert calls == ["insert", "after lead", "insert", "insert"]
    assert all(t.column(0).num_chunks == 1 for t in inserted)
    sequences = [s for t in inserted for s in t.column("sequence").to_pylist()]
    assert sequences == list(range(expected))


def test_a_lead_never_reached_goes_in_on_flush_without_settling() -> None:
    # Given a lead of 1,000 rows but only 600 coming (the count was too high)
    calls: list[str] = []
    facts_in = WholeRowGroups(
        lambda table: calls.append(f"insert {table.num_rows}"),
        lead=1_000,
        after_lead=lambda: calls.append("after lead"),
    )
    facts_in.add(batch(0, 600))
    facts_in.flush()
    # Then the rows still go in, once
    assert calls == ["insert 600"]


def test_whole_row_groups_of_rows_have_no_lead() -> None:
    assert lead_rows(None) == 0
    assert lead_rows(3 * ROW_GROUP_ROWS) == 0
    assert lead_rows(ROW_GROUP_ROWS + 5) == 5
