"""Projection checks: feed projection stores from the TICKETING stream in-process, read the
positions of running projectors, and dump tables so two builds can be compared row for row."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import duckdb
import nats.errors
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from projections.analytics.store import AnalyticsStore
from projections.consumer import ProjectionStore, Projector, ProjectorStats
from projections.queue.store import QueueStore
from projections.stream_event import StreamEvent
from tests.faults.stream_checks import stream_position, wait_for_relay
from tests.processes import start_ticketing, stop
from ticketing.cli.demo_day import support_day
from ticketing.nats.connect import NatsUnavailableError, connect, resolve_endpoint
from ticketing.nats.roles import STREAM
from ticketing.runtime.bootstrap import build_command_service
from ticketing.settings import Settings

Tables = dict[str, list[tuple[Any, ...]]]

# Every table of each projection, ordered by its key, so equal projections give equal dumps.
# Only `projection_position.updated_at` is left out: it is the wall-clock time of the commit.
QUEUE_DUMP = {
    "queue_tickets": "SELECT * FROM queue_tickets ORDER BY ticket_id",
    "queue_accounts": "SELECT * FROM queue_accounts ORDER BY account_uuid",
    "queue_search": "SELECT * FROM queue_search ORDER BY ticket_id, field, comment_id",
    "projection_position": "SELECT projection, stream_sequence FROM projection_position",
}
ANALYTICS_DUMP = {
    "ticket_facts": "SELECT * FROM ticket_facts ORDER BY ticket_id",
    "accounts": "SELECT * FROM accounts ORDER BY account_uuid",
    "event_facts": "SELECT * FROM event_facts ORDER BY stream_sequence",
    "projection_position": "SELECT projection, stream_sequence FROM projection_position",
}
STORE_KINDS = ("queue", "analytics")


# --- stores ---------------------------------------------------------------------------------


def open_store(kind: str, directory: Path, name: str = "projection") -> QueueStore | AnalyticsStore:
    """A projection store of `kind` in a new (or existing) file under `directory`."""
    if kind == "queue":
        return QueueStore(directory / f"{name}.sqlite")
    return AnalyticsStore(directory / f"{name}.duckdb")


def dump(store: QueueStore | AnalyticsStore) -> Tables:
    """Every row of the store's tables, through the store's own connection."""
    if isinstance(store, QueueStore):
        return {table: store.db.execute(sql).fetchall() for table, sql in QUEUE_DUMP.items()}
    cursor = store.connection().cursor()
    try:
        return {table: cursor.execute(sql).fetchall() for table, sql in ANALYTICS_DUMP.items()}
    finally:
        cursor.close()


def dump_queue_file(path: Path) -> Tables:
    """The queue projection a process left in `path` (read-only)."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return {table: db.execute(sql).fetchall() for table, sql in QUEUE_DUMP.items()}
    finally:
        db.close()


def dump_analytics_file(path: Path) -> Tables:
    """The analytics projection a process left in `path` (no writer may hold the file)."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        con.execute("SET TimeZone = 'UTC'")
        return {table: con.execute(sql).fetchall() for table, sql in ANALYTICS_DUMP.items()}
    finally:
        con.close()


def differences(live: Tables, rebuilt: Tables) -> list[str]:
    """Per table: row counts and the first differing row, or nothing when equal."""
    problems: list[str] = []
    for table in rebuilt:
        left, right = live[table], rebuilt[table]
        if left == right:
            continue
        first = next(
            (i for i, (a, b) in enumerate(zip(left, right, strict=False)) if a != b),
            min(len(left), len(right)),
        )
        problems.append(
            f"{table}: {len(left)} rows vs {len(right)} rebuilt; first difference at row "
            f"{first}: {left[first] if first < len(left) else None} vs "
            f"{right[first] if first < len(right) else None}"
        )
    return problems


def queue_file_position(path: Path) -> int:
    """The stream sequence committed in a queue file (0 before the projector made it)."""
    if not path.exists():
        return 0
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        row = db.execute("SELECT max(stream_sequence) FROM projection_position").fetchone()
    except sqlite3.OperationalError:  # created but the schema is not committed yet
        return 0
    finally:
        db.close()
    return int(row[0] or 0)


# --- a projector in this process --------------------------------------------------------------


class SimulatedCrashError(BaseException):
    """Raised after a commit and before the ack, as if the process died right there (a
    BaseException, as SystemExit: the projector retries what an `Exception` says it cannot
    apply, but a dying process ends it)."""


class CrashAfterCommit:
    """A store that commits a batch (rows and position), then 'crashes' once the position
    reaches `at`: `Projector.step` never gets to ack that batch."""

    def __init__(self, inner: ProjectionStore, at: int) -> None:
        self.inner = inner
        self.at = at

    def position(self) -> int:
        return self.inner.position()

    def apply(self, events: Sequence[StreamEvent]) -> None:
        self.inner.apply(events)
        if self.inner.position() >= self.at:
            raise SimulatedCrashError(f"crashed after committing up to {self.inner.position()}")


class RecordingStore:
    """Passes batches through to a store and keeps every event it was given."""

    def __init__(self, inner: ProjectionStore) -> None:
        self.inner = inner
        self.events: list[StreamEvent] = []

    def position(self) -> int:
        return self.inner.position()

    def apply(self, events: Sequence[StreamEvent]) -> None:
        self.inner.apply(events)
        self.events.extend(events)


async def _project(
    home: Path,
    store: ProjectionStore,
    durable: str,
    done: Callable[[ProjectorStats], bool],
    batch_size: int,
    timeout: float,
) -> ProjectorStats:
    nc = await connect(resolve_endpoint(Settings(home=home)), "admin", name=f"test-{durable}")
    projector = Projector(nc, store, durable, batch_size=batch_size)
    task = asyncio.create_task(projector.run(), name=durable)
    try:
        deadline = time.monotonic() + timeout
        # `done` runs in a thread: it may make its own blocking NATS requests.
        while not (task.done() or await asyncio.to_thread(done, projector.stats)):
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"projector {durable} not done within {timeout} s: {projector.stats}"
                )
            await asyncio.sleep(0.02)
    finally:
        projector.stop()
        try:
            await asyncio.wait_for(task, 15)
        finally:
            await nc.close()
    return projector.stats


def run_projector(
    home: Path,
    store: ProjectionStore,
    durable: str,
    done: Callable[[ProjectorStats], bool],
    *,
    batch_size: int = 1000,
    timeout: float = 60.0,
) -> ProjectorStats:
    """Run a `Projector` on `durable` feeding `store` until `done(stats)`; return its stats.

    An exception out of `Projector.run` (a `SimulatedCrashError`) propagates after the connection is
    closed, with nothing acked after it."""
    return asyncio.run(_project(home, store, durable, done, batch_size, timeout))


def reaches(sequence: int) -> Callable[[ProjectorStats], bool]:
    return lambda stats: stats.position >= sequence


def build_from_scratch(
    home: Path, kind: str, directory: Path, durable: str, last: int, batch_size: int = 1000
) -> Tables:
    """A fresh store of `kind` fed from seq 1 through a new durable; its table dump."""
    store = open_store(kind, directory, f"scratch-{durable}")
    try:
        assert store.position() == 0
        run_projector(home, store, durable, reaches(last), batch_size=batch_size)
        return dump(store)
    finally:
        store.close()


# --- the stream and its consumers ---------------------------------------------------------------


async def _admin(home: Path) -> Any:
    return await connect(
        resolve_endpoint(Settings(home=home)), "admin", name="test-admin", reconnect_forever=False
    )


async def _consumer_info(home: Path, durable: str) -> Any:
    nc = await _admin(home)
    try:
        return await nc.jetstream(timeout=5).consumer_info(STREAM, durable)
    finally:
        await nc.close()


def consumer_info(home: Path, durable: str) -> Any:
    return asyncio.run(_consumer_info(home, durable))


async def _delete_consumer(home: Path, durable: str) -> None:
    nc = await _admin(home)
    try:
        await nc.jetstream(timeout=5).delete_consumer(STREAM, durable)
    finally:
        await nc.close()


def delete_consumer(home: Path, durable: str) -> None:
    asyncio.run(_delete_consumer(home, durable))


async def _add_consumer(home: Path, config: ConsumerConfig) -> None:
    nc = await _admin(home)
    try:
        await nc.jetstream(timeout=5).add_consumer(STREAM, config)
    finally:
        await nc.close()


def add_replaying_consumer(home: Path, durable: str, *, ack_wait: float = 60.0) -> None:
    """A durable like the projectors' own, but delivering the whole stream from seq 1."""
    config = ConsumerConfig(
        durable_name=durable,
        ack_policy=AckPolicy.ALL,
        ack_wait=ack_wait,
        max_deliver=-1,
        max_ack_pending=4000,
        filter_subject="ticketing.events.>",
        deliver_policy=DeliverPolicy.ALL,
    )
    asyncio.run(_add_consumer(home, config))


def last_sequence(home: Path) -> int:
    position = stream_position(home)
    assert position is not None, f"cannot read the TICKETING stream of {home}"
    return position[1]


def publish_support_day(home: Path, *, tickets: int, seed: int) -> dict[str, int]:
    """Issue a seeded support day through the Python API, then let a relay process publish it
    all to TICKETING; returns the day's counts."""
    service = build_command_service(Settings(home=home))
    try:
        counts = support_day(service.execute, tickets=tickets, seed=seed)
        relay = start_ticketing(home, "run", "relay")
        try:
            wait_for_relay(home, service.app)
        finally:
            code = stop(relay)
        assert code == 0, (home / "run-relay.log").read_text()
    finally:
        service.app.close()
    return counts


# --- running projector processes ---------------------------------------------------------------


async def _request(home: Path, subject: str, data: bytes, timeout: float) -> dict[str, Any]:
    nc = await connect(
        resolve_endpoint(Settings(home=home)),
        "caller",
        name="test-caller",
        reconnect_forever=False,
    )
    try:
        message = await nc.request(subject, data, timeout=timeout)
        answer: dict[str, Any] = json.loads(message.data)
        return answer
    finally:
        await nc.close()


def request(home: Path, subject: str, body: Any, *, timeout: float = 5.0) -> dict[str, Any]:
    """A NATS request as the `caller` principal; `body` is sent as JSON unless it is bytes."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return asyncio.run(_request(home, subject, data, timeout))


def analytics_process_position(home: Path) -> int | None:
    """The analytics projector's committed position, from its `position` endpoint (None when
    no analytics projector answers)."""
    try:
        stats = request(home, "ticketing.query.analytics-projector.position", b"", timeout=1.0)
    except (nats.errors.Error, TimeoutError, NatsUnavailableError):
        return None
    return int(stats["position"])
