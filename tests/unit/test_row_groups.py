"""Event facts reach DuckDB in whole row groups, in order, each row once."""

from __future__ import annotations

import pyarrow as pa
import pytest

from projections.analytics.row_groups import (
    ROW_GROUP_ROWS,
    SHORTEST_TAIL,
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


def test_a_known_row_count_gets_a_lead_whole_groups_and_a_tail() -> None:
    # Given a rebuild that expects 2 whole groups, a tail and a lead of 100,000 rows
    lead = 100_000
    expected = lead + 2 * ROW_GROUP_ROWS + SHORTEST_TAIL
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
    assert (layout.lead, layout.tail) == (lead, SHORTEST_TAIL)
    assert calls == [
        f"insert {lead}",
        f"settle at {lead}",
        f"insert {ROW_GROUP_ROWS}",
        f"insert {ROW_GROUP_ROWS}",
        f"settle at {expected - SHORTEST_TAIL}",
        f"insert {SHORTEST_TAIL}",
    ]
    assert all(t.column(0).num_chunks == 1 for t in inserted)
    sequences = [s for t in inserted for s in t.column("sequence").to_pylist()]
    assert sequences == list(range(expected))


@pytest.mark.parametrize(
    "expected",
    [
        0,
        5_000,
        SHORTEST_TAIL + 10,
        ROW_GROUP_ROWS,
        ROW_GROUP_ROWS + SHORTEST_TAIL + 1,
        200_000,
        3 * ROW_GROUP_ROWS,
        1_000_000,
        *range(150_000, 1_500_000, 77_777),
    ],
)
def test_layouts_add_up_and_leave_no_row_groups_a_checkpoint_would_merge(expected: int) -> None:
    layout = RowGroupLayout(expected)
    whole = (layout.settle_points[-1] if layout.settle_points else 0) - layout.lead
    # Then lead, whole groups and tail are the rows expected
    assert whole % ROW_GROUP_ROWS == 0
    assert layout.lead + whole + layout.tail == expected
    # A lead is at least half a row group, and never fills one with the tail
    assert layout.lead == 0 or 2 * layout.lead >= ROW_GROUP_ROWS
    assert layout.lead == 0 or layout.lead + layout.tail != ROW_GROUP_ROWS
    # The tail is long enough to hide the last whole group's compression, unless all is tail
    assert layout.tail >= SHORTEST_TAIL or layout.settle_points == []
    assert layout.tail < SHORTEST_TAIL + ROW_GROUP_ROWS // 2 or layout.tail == ROW_GROUP_ROWS


def test_a_flush_before_the_lead_is_reached_still_ends_the_lead_where_the_layout_says() -> None:
    # Given a layout with a lead of 100,000 rows and a redaction flushing after 30,000
    expected = 100_000 + ROW_GROUP_ROWS + SHORTEST_TAIL
    sizes: list[int] = []
    facts_in = WholeRowGroups(
        lambda table: sizes.append(table.num_rows), layout=RowGroupLayout(expected)
    )
    facts_in.add(batch(0, 30_000))
    facts_in.flush()
    for start in range(30_000, expected, 20_000):
        facts_in.add(batch(start, min(20_000, expected - start)))
    facts_in.flush()
    # Then the lead is made up to 100,000 and a whole group follows it
    assert sizes == [30_000, 70_000, ROW_GROUP_ROWS, SHORTEST_TAIL]


def test_fewer_rows_than_expected_go_in_once_without_settling() -> None:
    # Given a layout for 150,000 rows (a lead of 109,040) but only 600 coming
    calls: list[str] = []
    facts_in = WholeRowGroups(
        lambda table: calls.append(f"insert {table.num_rows}"),
        layout=RowGroupLayout(150_000),
        settle=lambda rows: calls.append("settle"),
    )
    feed(facts_in, 600)
    # Then the rows still go in, once
    assert calls == ["insert 600"]


def test_a_layout_given_as_a_count_is_taken_only_once_half_a_row_group_has_come() -> None:
    # Given a layout counted on demand
    counts: list[int] = []
    expected = 100_000 + ROW_GROUP_ROWS + SHORTEST_TAIL

    def count() -> RowGroupLayout:
        counts.append(expected)
        return RowGroupLayout(expected)

    sizes: list[int] = []
    facts_in = WholeRowGroups(lambda table: sizes.append(table.num_rows), layout=count)
    # When rows come up to just under half a row group, nothing is counted or inserted
    facts_in.add(batch(0, ROW_GROUP_ROWS // 2 - 1))
    assert (counts, sizes) == ([], [])
    # Then the next row has the store counted once, and the layout is followed
    facts_in.add(batch(ROW_GROUP_ROWS // 2 - 1, 1))
    for start in range(ROW_GROUP_ROWS // 2, expected, 20_000):
        facts_in.add(batch(start, min(20_000, expected - start)))
    facts_in.flush()
    assert counts == [expected]
    assert sizes == [100_000, ROW_GROUP_ROWS, SHORTEST_TAIL]


def test_a_small_rebuild_never_takes_the_count() -> None:
    sizes: list[int] = []
    facts_in = WholeRowGroups(
        lambda table: sizes.append(table.num_rows),
        layout=lambda: pytest.fail("counted"),
        settle=lambda rows: pytest.fail("settled"),
    )
    feed(facts_in, 50_000)
    assert sizes == [50_000]
