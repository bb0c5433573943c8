"""The projector contract, on both stores (queue: SQLite, analytics: DuckDB) fed from a real
TICKETING stream: replays change nothing, a crash between commit and ack is redelivered and
skipped, and the queue's query API, NATS endpoint and CLI all give the same answers."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import nats.js.errors
import pytest
from hypothesis import given
from hypothesis import strategies as st

from projections.analytics.kpis import kpi_summary
from projections.analytics.queries import open_readonly, snapshot_position
from projections.queue.queries import QueueQuery, list_queue, open_reader
from tests.conftest import missing_dependency
from tests.processes import start_ticketing, stop, ticketing_env, wait_until
from tests.projection_checks import (
    STORE_KINDS,
    CrashAfterCommit,
    RecordingStore,
    SimulatedCrashError,
    Tables,
    add_replaying_consumer,
    build_from_scratch,
    consumer_info,
    delete_consumer,
    differences,
    dump,
    last_sequence,
    open_store,
    publish_support_day,
    queue_file_position,
    reaches,
    request,
    run_projector,
)
from ticketing.cli.demo_day import ACCOUNTS, TEAMS
from ticketing.nats.server import EmbeddedNats, NatsServerError
from ticketing.settings import Settings, analytics_snapshot_path, queue_path

pytestmark = [pytest.mark.integration, pytest.mark.nats]

TICKETS = 120
SEED = 11
BATCH = 100  # several batches per build, so replays and crashes cross batch boundaries


@dataclass(frozen=True)
class Published:
    """A home whose TICKETING stream holds a whole support day (read-only for the tests)."""

    home: Path
    last: int
    counts: dict[str, int]


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Published]:
    """One embedded nats-server and one published day for the module: every test reads the
    stream through its own durable and writes its own store files."""
    home = tmp_path_factory.mktemp("contract") / "home"
    server = EmbeddedNats(home)
    try:
        server.start()
    except NatsServerError as error:
        missing_dependency(f"cannot start the embedded nats-server: {error}")
    try:
        counts = publish_support_day(home, tickets=TICKETS, seed=SEED)
        yield Published(home, last_sequence(home), counts)
    finally:
        server.stop()


@pytest.fixture(scope="module")
def scratch(published: Published, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Tables]:
    """Each store built once from seq 1 by a plain projector: the reference dumps."""
    directory = tmp_path_factory.mktemp("scratch")
    return {
        kind: build_from_scratch(published.home, kind, directory, f"scratch-{kind}", published.last)
        for kind in STORE_KINDS
    }


def assert_same(live: Tables, reference: Tables) -> None:
    problems = differences(live, reference)
    assert not problems, "\n".join(problems)


# --- (a) replays are idempotent -----------------------------------------------------------------


@pytest.mark.parametrize("kind", STORE_KINDS)
def test_replaying_the_whole_stream_through_a_second_durable_changes_nothing(
    kind: str, published: Published, scratch: dict[str, Tables], tmp_path: Path
) -> None:
    # Given a store projected to the end of the stream
    store = open_store(kind, tmp_path)
    try:
        run_projector(published.home, store, f"{kind}-a", reaches(published.last), batch_size=BATCH)
        before = dump(store)
        assert_same(before, scratch[kind])

        # When a second durable delivers the whole stream again, from seq 1, to the same store
        add_replaying_consumer(published.home, f"{kind}-replay")
        stats = run_projector(
            published.home,
            store,
            f"{kind}-replay",
            lambda s: s.skipped_redeliveries >= published.last,
            batch_size=BATCH,
        )

        # Then every event is skipped and no row changes
        assert (stats.applied, stats.skipped_redeliveries) == (0, published.last)
        assert stats.consumer_resets == 0
        assert_same(dump(store), before)
    finally:
        store.close()


@pytest.mark.parametrize("kind", STORE_KINDS)
def test_a_deleted_durable_is_recreated_after_the_stores_position_and_changes_nothing(
    kind: str, published: Published, tmp_path: Path
) -> None:
    # Given a store projected to the end of the stream
    durable = f"{kind}-deleted"
    store = open_store(kind, tmp_path)
    try:
        run_projector(published.home, store, durable, reaches(published.last), batch_size=BATCH)
        before = dump(store)

        # When its durable consumer is deleted and the projector starts again
        delete_consumer(published.home, durable)
        stats = run_projector(
            published.home,
            store,
            durable,
            lambda _: _exists(published.home, durable),
            batch_size=BATCH,
        )

        # Then the consumer starts right after the store's position, and nothing changes
        info = consumer_info(published.home, durable)
        assert info.config.opt_start_seq == published.last + 1
        assert info.num_pending == 0
        assert (stats.applied, stats.skipped_redeliveries) == (0, 0)
        assert_same(dump(store), before)
    finally:
        store.close()


def _exists(home: Path, durable: str) -> bool:
    try:
        consumer_info(home, durable)
    except nats.js.errors.NotFoundError:  # until the projector has bound
        return False
    return True


@pytest.mark.parametrize("kind", STORE_KINDS)
def test_a_fresh_store_on_a_durable_that_is_ahead_rebuilds_from_seq_1(
    kind: str, published: Published, scratch: dict[str, Tables], tmp_path: Path
) -> None:
    # Given a durable that has acknowledged the whole stream
    durable = f"{kind}-ahead"
    first = open_store(kind, tmp_path, "first")
    try:
        run_projector(published.home, first, durable, reaches(published.last), batch_size=BATCH)
    finally:
        first.close()
    assert consumer_info(published.home, durable).ack_floor.stream_seq == published.last

    # When an empty store (a dropped projection) runs on that durable
    store = open_store(kind, tmp_path, "rebuilt")
    try:
        stats = run_projector(
            published.home, store, durable, reaches(published.last), batch_size=BATCH
        )

        # Then the consumer is recreated from seq 1 and the store equals a from-scratch build
        assert stats.consumer_resets == 1
        assert stats.applied == published.last
        assert_same(dump(store), scratch[kind])
    finally:
        store.close()


# BUG (reported) for the queue: QueueStore.apply (projections/queue/store.py) does not compare
# the batch with its stored position as AnalyticsStore.apply does. It writes `events[-1].sequence`
# as the new position even when that is lower (the position goes backwards), and `fold_ticket`
# rebuilds a row from any TicketOpened it is given, with no version check, so a replayed
# TicketOpened drops every later change of that ticket not in the batch (its comment "replays
# are harmless" holds only for the other event types). The Projector filters such events out,
# so this needs a second writer on one queue file or a runner that lost its place.
@pytest.mark.parametrize("kind", STORE_KINDS)
def test_a_stale_batch_given_straight_to_the_store_changes_nothing(
    kind: str, published: Published, scratch: dict[str, Tables], tmp_path: Path
) -> None:
    # Given a store projected to the end of the stream, and the events it was given
    store = open_store(kind, tmp_path)
    try:
        recorder = RecordingStore(store)
        run_projector(
            published.home, recorder, f"{kind}-stale", reaches(published.last), batch_size=BATCH
        )
        events = recorder.events
        assert [e.sequence for e in events] == list(range(1, published.last + 1))

        # When batches at or below its position reach the store itself (a second writer, or
        # a runner that lost its place): the whole stream, a prefix, a slice from the middle
        for batch in (events, events[:BATCH], events[published.last // 3 : published.last // 2]):
            store.apply(batch)

            # Then nothing changes: not the rows, not the position
            assert_same(dump(store), scratch[kind])
    finally:
        store.close()


# --- (b) a crash between commit and ack ---------------------------------------------------------


@pytest.mark.parametrize("kind", STORE_KINDS)
def test_a_batch_committed_but_not_acked_is_redelivered_and_skipped(
    kind: str, published: Published, scratch: dict[str, Tables], tmp_path: Path
) -> None:
    # Given a durable whose unacked messages come back after 1 s (the projectors' own wait
    # 60 s; a short wait lets the redelivery arrive within the test)
    durable = f"{kind}-crash-last"
    add_replaying_consumer(published.home, durable, ack_wait=1.0)
    store = open_store(kind, tmp_path)
    try:
        # When the projector commits the last batch and dies before acking it
        with pytest.raises(SimulatedCrashError):
            run_projector(
                published.home,
                CrashAfterCommit(store, at=published.last),
                durable,
                lambda _: False,
                batch_size=BATCH,
            )
        assert store.position() == published.last
        info = consumer_info(published.home, durable)
        unacked = published.last - info.ack_floor.stream_seq
        assert 0 < unacked <= BATCH
        assert info.num_ack_pending == unacked

        # And a new projector (a new connection) runs on the same durable and store
        stats = run_projector(
            published.home,
            store,
            durable,
            lambda s: s.skipped_redeliveries >= unacked,
            batch_size=BATCH,
        )

        # Then the redelivered batch is counted as skipped, nothing is applied twice
        assert (stats.applied, stats.skipped_redeliveries) == (0, unacked)
        assert consumer_info(published.home, durable).ack_floor.stream_seq == published.last
        assert_same(dump(store), scratch[kind])
    finally:
        store.close()


@pytest.mark.parametrize("kind", STORE_KINDS)
def test_a_crash_mid_stream_resumes_after_the_committed_position(
    kind: str, published: Published, scratch: dict[str, Tables], tmp_path: Path
) -> None:
    # Given a projector on its own durable (the production consumer settings)
    durable = f"{kind}-crash-mid"
    store = open_store(kind, tmp_path)
    try:
        # When it dies after committing a batch past the middle, before acking it
        with pytest.raises(SimulatedCrashError):
            run_projector(
                published.home,
                CrashAfterCommit(store, at=published.last // 2),
                durable,
                lambda _: False,
                batch_size=BATCH,
            )
        committed = store.position()
        assert published.last // 2 <= committed < published.last
        assert consumer_info(published.home, durable).ack_floor.stream_seq < committed

        # And a new projector runs on the same durable and store
        stats = run_projector(
            published.home, store, durable, reaches(published.last), batch_size=BATCH
        )

        # Then it applies exactly the rest, and the store equals a from-scratch build
        assert stats.applied == published.last - committed
        assert_same(dump(store), scratch[kind])
    finally:
        store.close()


# --- (c) the queue query API against a plain Python filter --------------------------------------

STATUSES = ("new", "open", "pending", "on_hold", "solved", "closed")
URGENCY = ("urgent", "high", "normal", "low")
UNSOLVED = ("new", "open", "pending", "on_hold")
AGENTS = tuple(agent for agents in TEAMS.values() for agent in agents)
ACCOUNT_IDS = tuple(account for account, _, _ in ACCOUNTS)


@pytest.fixture(scope="module")
def queue_rows(
    published: Published, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Any, list[dict[str, Any]]]]:
    """A read-only connection to a built queue and every row of it, read with plain SQL."""
    directory = tmp_path_factory.mktemp("queries")
    store = open_store("queue", directory, "queue")
    try:
        run_projector(published.home, store, "queue-queries", reaches(published.last))
    finally:
        store.close()
    reader = open_reader(directory / "queue.sqlite")
    try:
        cursor = reader.execute(
            "SELECT t.*, s.sla_policy, s.sla_next_metric, s.sla_due_at, s.sla_breached, "
            "s.sla_warned FROM queue_tickets t LEFT JOIN queue_sla s USING (ticket_id)"
        )
        names = [d[0] for d in cursor.description]
        rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        for row in rows:
            row["tags"] = json.loads(row["tags"])
            for flags in ("sla_breached", "sla_warned"):
                row[flags] = json.loads(row[flags] or "[]")
        yield reader, rows
    finally:
        reader.close()


def python_queue(rows: list[dict[str, Any]], query: QueueQuery) -> list[dict[str, Any]]:
    """The queue as the query describes it, by hand: filters, then the sort, then the limit."""
    statuses = query.status or UNSOLVED
    kept = [
        r
        for r in rows
        if r["status"] in statuses
        and (query.team is None or r["team"] == query.team)
        and (query.agent is None or r["agent"] == query.agent)
        and (query.account is None or r["account_id"] == query.account)
        and (not query.priority or r["priority"] in query.priority)
        and (query.waiting_on is None or r["waiting_on"] == query.waiting_on)
        and (query.sla_breached is None or bool(r["sla_breached"]) == query.sla_breached)
    ]
    kept.sort(key=lambda r: r["ticket_id"])  # the tie-breaker, kept by the stable sorts below
    if query.sort == "priority":
        kept.sort(
            key=lambda r: (URGENCY.index(r["priority"]), datetime.fromisoformat(r["opened_at"]))
        )
    elif query.sort == "age":
        kept.sort(key=lambda r: datetime.fromisoformat(r["opened_at"]))
    elif query.sort == "due":
        kept.sort(key=lambda r: URGENCY.index(r["priority"]))
        kept.sort(key=lambda r: (r["sla_due_at"] is None, r["sla_due_at"] or ""))
    else:
        kept.sort(key=lambda r: datetime.fromisoformat(r["updated_at"]), reverse=True)
    return kept[: query.limit]


def maybe(values: tuple[str, ...]) -> st.SearchStrategy[str | None]:
    return st.none() | st.sampled_from((*values, "nobody"))


def some_of(values: tuple[str, ...]) -> st.SearchStrategy[list[str] | None]:
    return st.none() | st.lists(st.sampled_from(values), min_size=1, max_size=3, unique=True)


queue_queries = st.builds(
    QueueQuery,
    team=maybe(tuple(TEAMS)),
    agent=maybe(AGENTS),
    status=some_of(STATUSES),
    priority=some_of(URGENCY),
    account=maybe(ACCOUNT_IDS),
    waiting_on=st.none() | st.sampled_from(("customer", "us")),
    sla_breached=st.none() | st.booleans(),
    sort=st.sampled_from(("priority", "age", "updated", "due")),
    limit=st.integers(1, 2 * TICKETS),
)


@given(query=queue_queries)
def test_list_queue_gives_what_a_python_filter_over_every_row_gives(
    queue_rows: tuple[Any, list[dict[str, Any]]], query: QueueQuery
) -> None:
    reader, rows = queue_rows
    assert list_queue(reader, query) == python_queue(rows, query)


@pytest.mark.parametrize(
    "filters",
    [
        *({"team": team} for team in TEAMS),
        *({"agent": agent} for agent in AGENTS),
        *({"account": account} for account in ACCOUNT_IDS),
        *({"status": [status]} for status in ("open", "pending", "solved", "closed")),
        *({"priority": [priority]} for priority in URGENCY),
        {"waiting_on": "customer"},
        {"waiting_on": "us"},
        {"sort": "age", "status": list(STATUSES)},
        {"sort": "updated", "status": list(STATUSES)},
    ],
    ids=json.dumps,
)
def test_each_queue_filter_alone_selects_some_tickets_and_only_matching_ones(
    queue_rows: tuple[Any, list[dict[str, Any]]], filters: dict[str, Any]
) -> None:
    reader, rows = queue_rows
    query = QueueQuery.model_validate({**filters, "limit": 10_000})
    listed = list_queue(reader, query)
    assert listed, f"the day has no ticket for {filters}: the check would prove nothing"
    assert listed == python_queue(rows, query)


def test_the_default_queue_is_every_unsolved_ticket_most_urgent_first(
    queue_rows: tuple[Any, list[dict[str, Any]]],
) -> None:
    reader, rows = queue_rows
    listed = list_queue(reader, QueueQuery(limit=10_000))
    assert {t["ticket_id"] for t in listed} == {
        r["ticket_id"] for r in rows if r["status"] in UNSOLVED
    }
    ranks = [URGENCY.index(t["priority"]) for t in listed]
    assert ranks == sorted(ranks)
    assert len({t["status"] for t in rows}) >= 3  # the day is varied enough to test filters


# --- (d, e) the running projector processes: NATS queries and CLI readers ----------------------


@dataclass(frozen=True)
class Running:
    home: Path
    last: int
    counts: dict[str, int]
    queue: subprocess.Popen[bytes]
    analytics: subprocess.Popen[bytes]


@pytest.fixture(scope="module")
def running(published: Published) -> Iterator[Running]:
    """Both projector processes on the published home, caught up with the stream."""
    home = published.home
    settings = Settings(home=home)
    queue = start_ticketing(home, "run", "queue-projector")
    analytics = start_ticketing(home, "run", "analytics-projector")
    try:
        wait_until(
            lambda: queue_file_position(queue_path(settings)) == published.last,
            timeout=60,
            what="the queue projector to reach the end of the stream",
        )
        wait_until(
            lambda: _snapshot_position(analytics_snapshot_path(settings)) == published.last,
            timeout=60,
            what="the analytics snapshot to reach the end of the stream",
        )
        yield Running(home, published.last, published.counts, queue, analytics)
    finally:
        codes = stop(queue), stop(analytics)
    assert codes == (0, 0), (home / "run-queue-projector.log").read_text() + (
        home / "run-analytics-projector.log"
    ).read_text()


def _snapshot_position(path: Path) -> int:
    if not path.exists():
        return 0
    con = open_readonly(path)
    try:
        return snapshot_position(con)
    finally:
        con.close()


def python_api_queue(home: Path, filters: dict[str, Any]) -> list[dict[str, Any]]:
    reader = open_reader(queue_path(Settings(home=home)))
    try:
        return list_queue(reader, QueueQuery.model_validate(filters))
    finally:
        reader.close()


def assert_alive(running: Running) -> None:
    for name, process in (("queue", running.queue), ("analytics", running.analytics)):
        assert process.poll() is None, f"the {name} projector died; see its log in {running.home}"


@pytest.mark.parametrize(
    "filters",
    [
        {},
        {"team": "network"},
        {"agent": "eli", "status": ["open", "pending", "solved"], "sort": "updated"},
        {"waiting_on": "customer", "sort": "age"},
        {"priority": ["urgent", "high"], "account": "acme", "limit": 5},
        {"status": list(STATUSES), "limit": 10_000},
    ],
    ids=json.dumps,
)
def test_the_queue_query_over_nats_returns_what_the_python_api_returns(
    running: Running, filters: dict[str, Any]
) -> None:
    answer = request(running.home, "ticketing.query.queue", filters)
    assert answer["ok"] is True, answer
    assert answer["position"] == running.last
    expected = python_api_queue(running.home, filters)
    assert [t["ticket_id"] for t in answer["tickets"]] == [t["ticket_id"] for t in expected]
    assert answer["tickets"] == expected
    assert_alive(running)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"sort": "random"}, "sort"),
        ({"limit": 0}, "limit"),
        ({"status": ["archived"]}, "status.0"),
        ({"waiting_on": "nobody"}, "waiting_on"),
        ({"colour": "red"}, "colour"),
        (b"{not json", None),
    ],
    ids=["sort", "limit", "status", "waiting_on", "unknown-field", "not-json"],
)
def test_a_bad_queue_filter_over_nats_gets_a_validation_error(
    running: Running, body: Any, field: str | None
) -> None:
    answer = request(running.home, "ticketing.query.queue", body)
    assert answer["ok"] is False, answer
    assert answer["error"]["code"] == "validation_error"
    assert answer["error"]["message"]
    if field is not None:
        assert field in [e["field"] for e in answer["error"]["details"]["errors"]]
    assert_alive(running)


TICKETING = str(Path(sys.executable).with_name("ticketing"))  # the installed console script


def cli(home: Path, *args: str, program: tuple[str, ...] = (TICKETING,)) -> Any:
    """`ticketing <args>` as its own process; the JSON it prints."""
    result = subprocess.run(
        [*program, *args],
        env=ticketing_env(home),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_the_cli_reads_the_queue_while_the_projector_runs(running: Running) -> None:
    printed = cli(running.home, "queue", "--json", "--team", "platform", "--sort", "age")
    assert printed == python_api_queue(running.home, {"team": "platform", "sort": "age"})
    everything = cli(running.home, "queue", "--json", "--limit", "10000", *_all_statuses())
    assert len(everything) == running.counts["tickets"]
    assert_alive(running)


def _all_statuses() -> list[str]:
    return [arg for status in STATUSES for arg in ("--status", status)]


def test_the_cli_reads_kpis_and_sql_from_the_snapshot_while_the_projector_runs(
    running: Running,
) -> None:
    # sql: every ticket and every event of the day is in the snapshot
    assert cli(running.home, "sql", "SELECT count(*) FROM ticket_facts", "--json") == [
        {"count_star()": running.counts["tickets"]}
    ]
    last_event = cli(
        running.home, "sql", "SELECT max(stream_sequence) AS s FROM event_facts", "--json"
    )
    assert last_event == [{"s": running.last}]

    # kpi: the numbers the snapshot gives in this process, and the day's own counts
    printed = cli(running.home, "kpi", "--json")
    con = open_readonly(analytics_snapshot_path(Settings(home=running.home)))
    try:
        expected = json.loads(json.dumps(kpi_summary(con), default=str))
    finally:
        con.close()
    assert printed == expected
    (overall,) = printed
    assert overall["group"] == "all"
    assert overall["tickets"] == running.counts["tickets"]
    assert overall["ratings"] == running.counts["rated"]
    assert overall["reopened"] == running.counts["reopened"]
    assert_alive(running)


# `python -m ticketing.cli` (what tests/processes.py and the supervisor run) goes through
# ticketing/cli/__main__.py to the same click group as the console script, so the analyst
# commands, which look the CLI context up by class, find it either way.
@pytest.mark.parametrize(
    "args",
    [("sql", "SELECT count(*) AS n FROM ticket_facts", "--json"), ("kpi", "--json")],
    ids=["sql", "kpi"],
)
def test_the_analyst_commands_also_run_as_python_m_ticketing_cli(
    running: Running, args: tuple[str, ...]
) -> None:
    as_module = cli(running.home, *args, program=(sys.executable, "-m", "ticketing.cli"))
    assert as_module == cli(running.home, *args)
