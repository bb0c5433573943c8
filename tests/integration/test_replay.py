"""Replay and audit from the command line, on a realistic day in a SQLite store: history, the
state as of a time or version, the queue as of a time, rebuilds, projection drift and exports,
each checked against the events folded by hand."""

from __future__ import annotations

import itertools
import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pyarrow.parquet as pq
import pytest

from commands.command_log import ticket_id_for
from projections.payloads import PUBLISHED_TOPICS
from projections.queue.queries import QueueQuery, list_queue, open_reader
from projections.queue.store import QueueStore
from replay.stream import occurred_at, stream_batches
from tests.builders import replayed
from ticketing.cli.demo_day import ACCOUNTS, support_day
from ticketing.domain.account import account_uuid
from ticketing.domain.chain import GENESIS_HASH
from ticketing.runtime.bootstrap import build_application, build_command_service
from ticketing.settings import Settings
from ticketing.store.application import TicketingApplication

pytestmark = pytest.mark.integration

TICKETS = 16
SEED = 13
DAY = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
ALL_STATUSES = ("new", "open", "pending", "on_hold", "solved", "closed")
EVERYTHING = QueueQuery(status=list(ALL_STATUSES), limit=10_000)


@dataclass(frozen=True)
class Day:
    """A home holding a seeded support day; tests only read it (writers copy it first)."""

    home: Path
    app: TicketingApplication
    tickets: tuple[UUID, ...]

    def events(self, ticket: UUID) -> list[Any]:
        return list(self.app.events.get(ticket))

    @property
    def busiest(self) -> UUID:
        """The ticket with the longest history: the most to replay."""
        return max(self.tickets, key=lambda t: len(self.events(t)))


@pytest.fixture(scope="module")
def day(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Day]:
    home = tmp_path_factory.mktemp("replay") / "home"
    service = build_command_service(Settings(home=home))
    support_day(service.execute, tickets=TICKETS, seed=SEED, day=DAY)
    tickets = tuple(ticket_id_for(f"demo-{SEED}-ticket-{n}") for n in range(TICKETS))
    yield Day(home, service.app, tickets)
    service.app.close()


@pytest.fixture
def own_home(day: Day, tmp_path: Path) -> Path:
    """A private copy of the day's store, for tests that write projections or tamper."""
    home = tmp_path / "home"
    home.mkdir()
    # The day's store is open (WAL): copy it with SQLite's backup API, not as a file.
    with (
        closing(sqlite3.connect(day.home / "events.sqlite")) as source,
        closing(sqlite3.connect(home / "events.sqlite")) as copy,
    ):
        source.backup(copy)
    return home


def ticketing(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The installed `ticketing` command, run as an auditor's shell would."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("TICKETING_") and k != "NATS_URL"
    }
    return subprocess.run(
        [str(Path(sys.executable).with_name("ticketing")), *args],
        capture_output=True,
        text=True,
        env={**env, "TICKETING_HOME": str(home)},
        timeout=60,
    )


def as_module(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m ticketing.cli`, the form the supervisor and the process tests use."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("TICKETING_") and k != "NATS_URL"
    }
    return subprocess.run(
        [sys.executable, "-m", "ticketing.cli", "--home", str(home), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def output(home: Path, *args: str) -> str:
    result = ticketing(home, *args)
    assert result.returncode == 0, result.stderr
    return result.stdout


def plain(value: Any) -> Any:
    """What a value looks like after a trip through JSON."""
    return json.loads(json.dumps(value))


# --- history and state at a time or version -------------------------------------------------


def test_history_lists_every_event_oldest_first_with_actor_and_hash(day: Day) -> None:
    # Given
    events = day.events(day.busiest)
    # When
    entries = json.loads(output(day.home, "history", str(day.busiest), "--json"))
    # Then
    assert [e["version"] for e in entries] == list(range(1, len(events) + 1))
    assert [e["type"] for e in entries] == [type(e).__name__ for e in events]
    assert [e["actor"] for e in entries] == [e.actor for e in events]
    assert [e["event_hash"] for e in entries] == [e.event_hash for e in events]
    assert [e["previous_hash"] for e in entries] == [GENESIS_HASH] + [
        e.event_hash for e in events[:-1]
    ]


@pytest.mark.parametrize("args", [("history", "{ticket}", "--json"), ("verify", "chain", "--json")])
def test_audit_commands_answer_the_same_when_run_as_a_python_module(
    day: Day, args: tuple[str, ...]
) -> None:
    # Given
    filled = [a.format(ticket=day.busiest) for a in args]
    installed = output(day.home, *filled)
    # When
    result = as_module(day.home, *filled)
    # Then
    assert (result.returncode, result.stderr) == (0, ""), result.stderr
    assert result.stdout == installed


def moments(events: list[Any]) -> list[datetime]:
    """Times worth asking about: the opening itself, the instant of a middle event, a second
    before and after it, and long after the last event."""
    middle = events[len(events) // 2].occurred_at
    return [
        events[0].occurred_at,
        middle - timedelta(seconds=1),
        middle,
        middle + timedelta(seconds=1),
        events[-1].occurred_at + timedelta(days=30),
    ]


def test_show_as_of_a_time_equals_the_events_up_to_then_folded_by_hand(day: Day) -> None:
    # Given
    events = day.events(day.busiest)
    for moment in moments(events):
        expected = replayed([e for e in events if e.occurred_at <= moment]).as_dict()
        # When
        shown = json.loads(
            output(day.home, "show", str(day.busiest), "--as-of", moment.isoformat(), "--json")
        )
        # Then
        assert shown == plain(expected), moment


def test_show_as_of_accepts_z_and_zoneless_times_as_utc(day: Day) -> None:
    # Given
    events = day.events(day.busiest)
    moment = events[len(events) // 2].occurred_at.astimezone(UTC)
    expected = plain(replayed([e for e in events if e.occurred_at <= moment]).as_dict())
    zulu = moment.replace(tzinfo=None).isoformat() + "Z"
    zoneless = moment.replace(tzinfo=None).isoformat()
    for text in (zulu, zoneless):
        # When
        shown = json.loads(output(day.home, "show", str(day.busiest), "--as-of", text, "--json"))
        # Then
        assert shown == expected, text


def test_show_at_a_version_equals_the_first_events_folded_by_hand(day: Day) -> None:
    # Given
    events = day.events(day.busiest)
    for version in sorted({1, 2, len(events) // 2, len(events)}):
        # When
        shown = json.loads(
            output(day.home, "show", str(day.busiest), "--version", str(version), "--json")
        )
        # Then
        assert shown == plain(replayed(events[:version]).as_dict()), version
        assert shown["version"] == version


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (("show", "{unknown}"), "not_found"),
        (("show", "{unknown}", "--as-of", "2026-11-24T12:00:00Z"), "not_found"),
        (("history", "{unknown}"), "not_found"),
        (("export", "--ticket", "{unknown}"), "not_found"),
        (("show", "{ticket}", "--as-of", "2026-11-23T00:00:00Z"), "before_ticket_existed"),
        (("show", "{ticket}", "--as-of", "yesterday at noon"), "invalid_time"),
        (("show", "{ticket}", "--as-of", "2026-13-45"), "invalid_time"),
        (("show", "{ticket}", "--version", "999"), "version_out_of_range"),
        (("show", "{ticket}", "--version", "0"), "version_out_of_range"),
        (("show", "not-a-ticket-id"), "validation_error"),
    ],
)
def test_bad_replay_input_is_one_error_line_and_a_failing_exit(
    day: Day, args: tuple[str, ...], code: str
) -> None:
    # Given
    filled = [a.format(unknown=uuid4(), ticket=day.busiest) for a in args]
    # When
    result = ticketing(day.home, *filled)
    # Then
    assert result.returncode != 0
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: {code}: "), lines[0]


# --- the queue as it was ----------------------------------------------------------------------


def queue_fed_up_to(app: TicketingApplication, moment: datetime, path: Path) -> list[Any]:
    """A queue projection fed only the stream's events that happened by `moment`."""
    store = QueueStore(path)
    try:
        for batch in stream_batches(app, batch=50):
            kept = [e for e in batch if occurred_at(e) <= moment]
            if kept:
                store.apply(kept)
        return list_queue(store.db, EVERYTHING)
    finally:
        store.close()


def queue_as_of(home: Path, moment: str) -> list[dict[str, Any]]:
    statuses = [arg for status in ALL_STATUSES for arg in ("--status", status)]
    rows: list[dict[str, Any]] = json.loads(
        output(home, "queue", "--as-of", moment, *statuses, "--limit", "10000", "--json")
    )
    return rows


def test_queue_as_of_a_time_equals_a_projection_of_the_events_up_to_then(
    day: Day, tmp_path: Path
) -> None:
    # Given
    moment = DAY + timedelta(hours=5)
    # When
    rows = queue_as_of(day.home, moment.isoformat())
    # Then
    assert rows == queue_fed_up_to(day.app, moment, tmp_path / "expected.sqlite")
    opened = {t for t in day.tickets if day.events(t)[0].occurred_at <= moment}
    assert 0 < len(opened) < TICKETS, "pick a moment in the middle of the day"
    assert {r["ticket_id"] for r in rows} == {str(t) for t in opened}
    for row in rows:
        ticket = UUID(row["ticket_id"])
        as_of = replayed([e for e in day.events(ticket) if e.occurred_at <= moment])
        got = (row["status"], row["priority"], row["team"], row["agent"], row["version"])
        assert got == (
            str(as_of.status),
            str(as_of.priority),
            as_of.team,
            as_of.agent,
            as_of.version,
        )


def test_queue_as_of_after_everything_equals_a_rebuilt_queue(own_home: Path) -> None:
    # Given
    target = own_home / "rebuilt-queue.sqlite"
    output(own_home, "rebuild", "queue", "--to", str(target))
    with closing(open_reader(target)) as reader:
        rebuilt = list_queue(reader, EVERYTHING)
    # When
    rows = queue_as_of(own_home, "2100-01-01T00:00:00Z")
    # Then
    assert len(rows) == TICKETS
    assert rows == rebuilt


# --- rebuild and drift ------------------------------------------------------------------------


def rebuilt_projections(home: Path) -> None:
    output(home, "rebuild", "queue")
    output(home, "rebuild", "analytics")
    assert (home / "queue.sqlite").exists()
    assert (home / "analytics-snapshot.duckdb").exists()


def test_rebuilt_projections_verify(own_home: Path) -> None:
    # Given
    rebuilt_projections(own_home)
    # When
    result = ticketing(own_home, "verify", "projections", "--json")
    # Then
    assert result.returncode == 0, result.stderr
    checks = {c["projection"]: c for c in json.loads(result.stdout)}
    assert set(checks) == {"queue", "analytics"}
    assert all(c["ok"] and c["drift_count"] == 0 for c in checks.values()), checks
    assert all(c["position"] > 0 and c["rows_compared"] > 0 for c in checks.values()), checks


def tamper_queue(home: Path, column: str, value: str) -> str:
    """Change one column of one queue row behind the projector's back; returns the ticket id."""
    with closing(sqlite3.connect(home / "queue.sqlite")) as db, db:
        (ticket_id,) = db.execute(
            f"SELECT ticket_id FROM queue_tickets WHERE {column} != ? ORDER BY ticket_id LIMIT 1",
            (value,),
        ).fetchone()
        db.execute(f"UPDATE queue_tickets SET {column} = ? WHERE ticket_id = ?", (value, ticket_id))
    return str(ticket_id)


def test_a_tampered_queue_row_is_drift_naming_the_row_and_column(own_home: Path) -> None:
    # Given
    rebuilt_projections(own_home)
    ticket_id = tamper_queue(own_home, "priority", "low")
    # When
    result = ticketing(own_home, "verify", "projections")
    # Then
    assert result.returncode != 0
    drifting = [line for line in result.stdout.splitlines() if line.startswith("  ")]
    assert len(drifting) == 1, result.stdout
    assert f"queue_tickets {ticket_id}: differs" in drifting[0]
    assert "'priority'" in drifting[0] and "'live': 'low'" in drifting[0]
    assert "analytics" in result.stdout and "DRIFT in 1 rows" in result.stdout
    assert result.stderr.splitlines() == ["error: drift: projection drift in queue"]


def test_a_tampered_queue_updated_at_is_drift_too(own_home: Path) -> None:
    """`queue_tickets.updated_at` is the time of the ticket's last event (it orders
    `queue --sort updated`), so a rebuild reproduces it exactly and a change to it is drift."""
    # Given
    rebuilt_projections(own_home)
    ticket_id = tamper_queue(own_home, "updated_at", "2001-01-01T00:00:00.000000+00:00")
    # When
    result = ticketing(own_home, "verify", "projections")
    # Then
    assert result.returncode != 0, result.stdout
    assert f"queue_tickets {ticket_id}: differs" in result.stdout


# --- export -----------------------------------------------------------------------------------


def test_export_of_a_ticket_is_one_linked_line_per_event(day: Day) -> None:
    # Given
    events = day.events(day.busiest)
    # When
    result = ticketing(day.home, "export", "--ticket", str(day.busiest))
    # Then
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(e["aggregate_id"], e["version"]) for e in lines] == [
        (str(day.busiest), n) for n in range(1, len(events) + 1)
    ]
    assert [e["event_hash"] for e in lines] == [e.event_hash for e in events]
    assert lines[0]["previous_hash"] == GENESIS_HASH
    for before, after in itertools.pairwise(lines):
        assert after["previous_hash"] == before["event_hash"]
    assert [e["notification_id"] for e in lines] == store_notification_ids(day.home, day.busiest)


def store_notification_ids(home: Path, ticket: UUID) -> list[int]:
    """The ticket's notification ids, from a scan of the library's notifications."""
    app = build_application(Settings(home=home))
    try:
        notifications = app.recorder.select_notifications(
            start=1, limit=10**9, topics=PUBLISHED_TOPICS, inclusive_of_start=True
        )
        return [n.id for n in notifications if n.originator_id == ticket]
    finally:
        app.close()


def test_export_of_a_time_window_writes_parquet_with_exactly_those_events(
    day: Day, tmp_path: Path
) -> None:
    # Given
    since, until = DAY + timedelta(hours=2), DAY + timedelta(hours=5)
    aggregates = [*day.tickets, *(account_uuid(a) for a, _, _ in ACCOUNTS)]
    expected = sorted(
        (str(e.originator_id), e.originator_version, e.event_hash)
        for aggregate in aggregates
        for e in day.events(aggregate)
        if since <= e.occurred_at < until
    )
    target = tmp_path / "window.parquet"
    # When
    result = ticketing(
        day.home,
        "export",
        "--since",
        since.isoformat(),
        "--until",
        until.isoformat(),
        "--format",
        "parquet",
        "--output",
        str(target),
    )
    # Then
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == f"exported {len(expected)} events to {target}"
    table = pq.read_table(target).to_pylist()
    assert len(expected) > 10
    assert sorted((r["aggregate_id"], r["version"], r["event_hash"]) for r in table) == expected
    assert all(since <= r["occurred_at"] < until for r in table)
    assert [r["notification_id"] for r in table] == sorted(r["notification_id"] for r in table)
    assert all(json.loads(r["payload"])["event_hash"] == r["event_hash"] for r in table)
