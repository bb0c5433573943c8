"""Benchmark: the projectors — catch-up next to their ceilings, command-to-queue latency, KPIs.

Run as a file, never imported:

    .venv/bin/python scripts/bench/projectors.py          # 50,000 events, 500/s, 1M tickets
    .venv/bin/python scripts/bench/projectors.py --smoke  # tiny sizes, < 60 s, for CI
    .venv/bin/python scripts/bench/projectors.py --events 20000 --rate 300 --kpi-tickets 200000

Everything happens in one fresh temporary directory, with the embedded nats-server
(`EmbeddedNats(home).start()`) on the durable SQLite default, and is removed afterwards; every
process started here is stopped by its PID in `finally`, also on errors.

What is measured, in this order:

1. **catch-up, ours next to the plain layers below it**, all on the same messages in one run.
   About `--events` events of a realistic mix (`ticketing.demo_day.support_day` stories: opens,
   triage, assignment, comments, pending / on-hold, resolutions, reopens, ratings, closes) are
   written through `CommandService.execute_many` (waves of 128 tickets, one command per ticket
   per group) and published by `projections.relay.Relay(...).run_until_caught_up()` ("relay"
   principal). Then, in `--rounds` rounds (every second one in reverse order, and each projector
   next to the ceilings of its stack, so drift of the shared machine lands on both sides),
   each from an empty projection and a new durable consumer on an "admin" connection (a
   bench's durables are no projector's own):
   - `jetstream_pull_ack_batch_1000` / `_5000`: a durable pull consumer (AckPolicy.ALL, the
     projector's consumer config) fetching batches and acking the last message; no decoding.
   - `sqlite_queue_rows_txn_1000`: plain `sqlite3` writing exactly the rows the queue store
     writes for each 1,000-event batch (folded beforehand with `projections.queue.store`'s own
     fold, untimed) with `INSERT OR REPLACE` into the same schema (its four indexes, WAL,
     synchronous=NORMAL) plus the position row, one transaction per batch.
     `sqlite_event_rows_txn_1000` (information only): one row per event with its payload.
   - `duckdb_arrow_event_rows_txn_1000` / `_5000`: the analytics event-fact rows of each batch
     as a prebuilt Arrow table, `INSERT ... SELECT` into `event_facts` plus the position update,
     one transaction per batch. `duckdb_store_rows_txn_5000` (information only): the same plus
     the `MERGE` of the folded ticket-fact and account rows, i.e. every statement the
     analytics store runs, without its Python fold.
   - **ours**: `projections.consumer.Projector` in this process with `QueueStore` (batch 1000,
     as `ticketing run queue-projector`) and with `AnalyticsStore` (batch 5000, as `ticketing
     run analytics-projector`), from start until its position is the stream's last sequence.
     Timing wrappers (a subclass and a connection proxy, a few perf_counter calls per batch)
     split the loop into NATS fetch, JSON decode, store read (SQL), store write (SQL incl.
     commit), Python fold/convert, and the rest (ack, thread hand-off).
   `ratio_vs_slowest_ceiling` = ours / min(pull, store ceiling) of its stack (queue: pull 1000
   and SQLite; analytics: pull 5000 and DuckDB 5000). `serial_estimate_events_per_s` is what a
   loop that fetches, then applies, then acks could reach with the two plain layers
   (1 / (1/pull + 1/store)); the projector works exactly that way, without overlap.
2. **command-ack -> visible-in-queue latency** at `--rate` commands/s for `--seconds`:
   `ticketing run command-service`, `ticketing run relay` and `ticketing run queue-projector`
   subprocesses (`python -m ticketing.cli`, TICKETING_HOME = a temp home) on tickets pre-opened
   before they start. The async `commands.client.TicketingClient` sends add_comment /
   tag_ticket commands open-loop on a fixed schedule (each ticket at most once a second, so
   none conflict); a poller reads the queue SQLite read-only (`open_reader`) every 2 ms for the
   max version of every ticket with a command acked but not yet seen, and a command counts as
   visible at the start of the first poll whose row has `version >=` the reply's version.
   A core subscription on `ticketing.events.>` (admin) timestamps each event as the relay
   publishes it, splitting the latency into relay (ack -> published) and projector (published
   -> visible). The first `WARMUP_S` seconds are sent but not counted.
3. **KPI query latency at scale**: an analytics projection of `--kpi-tickets` tickets with ten
   events each (1M / 10M by default) generated directly with DuckDB SQL into the schema that
   `AnalyticsStore(path)` creates (plausible, self-consistent times, statuses, ratings and
   status moves; event rows in time order). Each query runs `KPI_REPEATS` times on a
   read-only connection (`open_readonly`, as analysts do), the first run cold.

Percentiles are nearest-rank. One JSON object goes to stdout, progress to stderr. The JSON also
records the load average and CPU pressure before and after (neighbours on the shared 2-core
machine stretch every wall-clock number here).

Aims: each projector >= 0.5x the slowest ceiling of its stack; visible p99 <= 100 ms at 500
commands/s; every KPI query's median <= 100 ms on 1M tickets / 10M events.

SQLite and DuckDB files go under the system temporary directory (set TMPDIR to measure another
disk).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import gc
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchkit import (  # this folder still heads sys.path here
    aim,
    log,
    log_tail,
    machine_load,
    run_context,
    start_process,
    stop_process,
    temporary_root,
)

# Run as a file, this script's folder comes first on sys.path, and its sibling commands.py
# would shadow the project's `commands` package: drop the folder before importing the project.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

import duckdb  # noqa: E402
import nats.errors  # noqa: E402
import nats.js.errors  # noqa: E402
import pyarrow as pa  # noqa: E402
from nats.aio.client import Client  # noqa: E402
from nats.aio.msg import Msg  # noqa: E402
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy  # noqa: E402

from commands import models as m  # noqa: E402
from commands.client import TicketingClient  # noqa: E402
from commands.command_log import ticket_id_for  # noqa: E402
from commands.replies import Reply  # noqa: E402
from commands.service import CommandService  # noqa: E402
from projections import consumer as consumer_module  # noqa: E402
from projections.analytics.event_facts import event_fact_batch  # noqa: E402
from projections.analytics.kpis import kpi_summary  # noqa: E402
from projections.analytics.queries import open_readonly  # noqa: E402
from projections.analytics.store import (  # noqa: E402
    ACCOUNTS,
    EVENT_FACTS,
    TICKET_FACTS,
    AnalyticsStore,
    BatchFold,
    Column,
)
from projections.consumer import Projector  # noqa: E402
from projections.queue.queries import open_reader  # noqa: E402
from projections.queue.store import COLUMNS as QUEUE_COLUMNS  # noqa: E402
from projections.queue.store import SCHEMA as QUEUE_SCHEMA  # noqa: E402
from projections.queue.store import QueueStore, fold_ticket  # noqa: E402
from projections.relay import VERSION_HEADER, Relay  # noqa: E402
from projections.stream_event import StreamEvent  # noqa: E402
from ticketing.cli.demo_day import support_day  # noqa: E402
from ticketing.domain.values import ActorKind, SlaTier, Visibility  # noqa: E402
from ticketing.nats.connect import NatsEndpoint, connect  # noqa: E402
from ticketing.nats.roles import STREAM, read_credentials  # noqa: E402
from ticketing.nats.server import EmbeddedNats  # noqa: E402
from ticketing.runtime.bootstrap import build_application, build_command_service  # noqa: E402
from ticketing.settings import Settings, queue_path  # noqa: E402

AIM_CATCH_UP_RATIO = 0.5
AIM_VISIBLE_P99_MS = 100.0
AIM_KPI_MS = 100.0
GROUP = 128  # tickets per wave (distinct aggregates per execute_many group)
QUEUE_BATCH = 1000  # as `ticketing run queue-projector`
ANALYTICS_BATCH = 5000  # as `ticketing run analytics-projector`
EVENTS_PER_TICKET = 10  # a support_day story causes about ten events
WARMUP_S = 0.5
POLL_S = 0.002
KPI_REPEATS = 5
KPI_EVENTS_PER_TICKET = 10
ACCOUNT_ID = "acme"
AGENT = m.ActorModel(kind=ActorKind.AGENT, id="ana")
CUSTOMER = m.ActorModel(kind=ActorKind.CUSTOMER, id="bob")
SERVICE_NAME = "ticketing-commands"


# --- statistics and machine -----------------------------------------------------------------


def percentile(ordered: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of sorted values."""
    rank = max(1, round(fraction * len(ordered) + 0.5))
    return ordered[min(rank, len(ordered)) - 1]


def distribution_ms(seconds: Sequence[float]) -> dict[str, float | None]:
    ordered = sorted(seconds)
    if not ordered:
        return {"p50_ms": None, "p99_ms": None, "max_ms": None}
    return {
        "p50_ms": round(percentile(ordered, 0.50) * 1000, 2),
        "p99_ms": round(percentile(ordered, 0.99) * 1000, 2),
        "max_ms": round(ordered[-1] * 1000, 2),
    }


def chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# --- writing the events ---------------------------------------------------------------------


def day_commands(tickets: int, seed: int) -> list[m.Command]:
    """The commands of `support_day` (accounts first, then ticket stories), recorded rather
    than executed: its `send` only needs an ok reply."""
    recorded: list[m.Command] = []

    def record(command: m.Command) -> Reply:
        recorded.append(command)
        return Reply(ok=True)

    support_day(record, tickets=tickets, seed=seed)
    return recorded


def target_of(command: m.Command) -> str:
    if isinstance(command, m.CreateAccount):
        return f"account:{command.account_id}"
    if isinstance(command, m.OpenTicket):
        return str(ticket_id_for(command.command_id))
    return str(command.ticket_id)  # type: ignore[attr-defined]


def execute_checked(service: CommandService, group: Sequence[m.Command]) -> list[Reply]:
    replies = service.execute_many(group)
    for reply in replies:
        if not reply.ok:
            raise RuntimeError(f"setup command failed: {reply.to_json()}")
    return replies


def write_day(service: CommandService, commands: list[m.Command]) -> Counter[str]:
    """Execute the stories in waves of GROUP tickets: each group holds the next command of
    every ticket of the wave, so per-ticket order holds and no group repeats an aggregate.
    Returns the events caused, by type."""
    types: Counter[str] = Counter()
    stories: dict[str, list[m.Command]] = {}
    accounts = [c for c in commands if isinstance(c, m.CreateAccount)]
    for reply in execute_checked(service, accounts):
        types.update(e["type"] for e in reply.events)
    for command in commands:
        if not isinstance(command, m.CreateAccount):
            stories.setdefault(target_of(command), []).append(command)
    ordered = list(stories.values())
    for wave_start in range(0, len(ordered), GROUP):
        wave = ordered[wave_start : wave_start + GROUP]
        for step in range(max(len(story) for story in wave)):
            group = [story[step] for story in wave if step < len(story)]
            for reply in execute_checked(service, group):
                types.update(e["type"] for e in reply.events)
        if (wave_start // GROUP) % 10 == 9:
            log(f"  store: {sum(types.values())} events")
    return types


async def publish_all(endpoint: NatsEndpoint, settings: Settings) -> tuple[int, float]:
    """The relay from an empty stream until caught up: (stream last sequence, seconds)."""
    app = build_application(settings)
    try:
        nc = await connect(endpoint, "relay", name="bench-relay", reconnect_forever=False)
        try:
            relay = Relay(app, nc)
            start = time.perf_counter()
            await relay.run_until_caught_up()
            return relay.stats.stream_sequence, time.perf_counter() - start
        finally:
            await nc.close()
    finally:
        app.close()


# --- the plain layers (ceilings) ------------------------------------------------------------


def consumer_config(durable: str, batch: int) -> ConsumerConfig:
    """The projector's own consumer configuration, from the start of the stream."""
    return ConsumerConfig(
        durable_name=durable,
        ack_policy=AckPolicy.ALL,
        ack_wait=60,
        max_deliver=-1,
        max_ack_pending=batch * 4,
        filter_subject="ticketing.events.>",
        deliver_policy=DeliverPolicy.ALL,
    )


async def pull_ceiling(
    endpoint: NatsEndpoint, durable: str, batch: int, expected: int, keep: bool = False
) -> tuple[float, list[Msg]]:
    """Fetch + ack every message through a new durable pull consumer, nothing else:
    (seconds, the messages if `keep`)."""
    nc = await connect(endpoint, "admin", name="bench-pull", reconnect_forever=False)
    try:
        js = nc.jetstream(timeout=10)
        received: list[Msg] = []
        count = 0
        start = time.perf_counter()
        await js.add_consumer(STREAM, consumer_config(durable, batch))
        subscription = await js.pull_subscribe_bind(durable=durable, stream=STREAM)
        while count < expected:
            try:
                messages = await subscription.fetch(batch, timeout=0.5)
            except nats.errors.TimeoutError:
                continue
            count += len(messages)
            if keep:
                received.extend(messages)
            await messages[-1].ack()
        elapsed = time.perf_counter() - start
        await subscription.unsubscribe()
        await js.delete_consumer(STREAM, durable)
        return elapsed, received
    finally:
        await nc.close()


def decode(messages: Sequence[Msg]) -> list[StreamEvent]:
    events = [StreamEvent(msg.metadata.sequence.stream, json.loads(msg.data)) for msg in messages]
    events.sort(key=lambda e: e.sequence)
    return events


@dataclass
class QueueBatch:
    tickets: list[tuple[Any, ...]]
    accounts: list[tuple[str, str, str, str]]
    position: int


def queue_batches(events: Sequence[StreamEvent], size: int) -> list[QueueBatch]:
    """The rows the queue store writes for each batch of `size` events, folded with its own
    `fold_ticket` (state kept across batches, as the stored rows would be)."""
    tickets: dict[str, dict[str, Any]] = {}
    batches = []
    for chunk in chunks(events, size):
        touched: dict[str, None] = {}
        accounts = []
        for event in chunk:
            payload = event.payload
            if payload["type"] == "AccountRegistered":
                accounts.append(
                    (
                        payload["aggregate_id"],
                        payload["account_id"],
                        payload["name"],
                        payload["tier"],
                    )
                )
            elif not payload["type"].startswith("Account"):
                fold_ticket(tickets, payload)
                touched[payload["aggregate_id"]] = None
        rows = [tuple(tickets[t][c] for c in QUEUE_COLUMNS) for t in touched if t in tickets]
        batches.append(QueueBatch(rows, accounts, chunk[-1].sequence))
    return batches


def open_plain_sqlite(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    return db


def sqlite_queue_ceiling(path: Path, batches: Sequence[QueueBatch]) -> float:
    """Plain sqlite3: the queue store's rows and position, one transaction per batch."""
    db = open_plain_sqlite(path)
    try:
        db.executescript(QUEUE_SCHEMA)
        insert = (
            f"INSERT OR REPLACE INTO queue_tickets ({','.join(QUEUE_COLUMNS)}) "
            f"VALUES ({','.join('?' for _ in QUEUE_COLUMNS)})"
        )
        start = time.perf_counter()
        for batch in batches:
            db.execute("BEGIN IMMEDIATE")
            db.executemany(insert, batch.tickets)
            if batch.accounts:
                db.executemany(
                    "INSERT OR REPLACE INTO queue_accounts VALUES (?, ?, ?, ?)", batch.accounts
                )
            db.execute(
                "INSERT OR REPLACE INTO projection_position VALUES (?, ?, ?)",
                ("queue", batch.position, datetime.now(UTC).isoformat()),
            )
            db.execute("COMMIT")
        return time.perf_counter() - start
    finally:
        db.close()


def sqlite_event_ceiling(path: Path, events: Sequence[StreamEvent], raw: dict[int, str]) -> float:
    """Plain sqlite3: one row per event (sequence, id, type, time, payload) + position."""
    db = open_plain_sqlite(path)
    try:
        db.executescript(
            "CREATE TABLE events (stream_sequence INTEGER PRIMARY KEY, aggregate_id TEXT NOT NULL, "
            "type TEXT NOT NULL, occurred_at TEXT NOT NULL, payload TEXT NOT NULL);"
            "CREATE TABLE position (projection TEXT PRIMARY KEY, stream_sequence INTEGER NOT NULL);"
        )
        batches = [
            (
                [
                    (
                        e.sequence,
                        e.payload["aggregate_id"],
                        e.payload["type"],
                        e.payload["occurred_at"],
                        raw[e.sequence],
                    )
                    for e in chunk
                ],
                chunk[-1].sequence,
            )
            for chunk in chunks(events, QUEUE_BATCH)
        ]
        start = time.perf_counter()
        for rows, position in batches:
            db.execute("BEGIN IMMEDIATE")
            db.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?)", rows)
            db.execute("INSERT OR REPLACE INTO position VALUES ('events', ?)", (position,))
            db.execute("COMMIT")
        return time.perf_counter() - start
    finally:
        db.close()


@dataclass
class DuckBatch:
    events: pa.Table
    tickets: pa.Table | None
    accounts: pa.Table | None
    position: int


def arrow_rows(columns: Sequence[Column], rows: Sequence[dict[str, Any]]) -> pa.Table | None:
    if not rows:
        return None
    return pa.table({c.name: pa.array([r[c.name] for r in rows], c.arrow_type) for c in columns})


def duck_batches(events: Sequence[StreamEvent], size: int) -> list[DuckBatch]:
    """The analytics store's rows for each batch of `size` events as Arrow tables, folded with
    its own `BatchFold` (state kept across batches; tables built at once, as rows change)."""
    tickets: dict[str, dict[str, Any]] = {}
    accounts: dict[str, dict[str, Any]] = {}
    batches = []
    for chunk in chunks(events, size):
        fold = BatchFold(tickets=tickets, accounts=accounts)
        for event in chunk:
            fold.add(event)
        event_table = pa.Table.from_batches([event_fact_batch(chunk, fold.account_ids)])
        batches.append(
            DuckBatch(
                event_table,
                arrow_rows(TICKET_FACTS, fold.changed_tickets()),
                arrow_rows(ACCOUNTS, fold.changed_accounts()),
                chunk[-1].sequence,
            )
        )
    return batches


def merge_sql(table: str, columns: Sequence[Column], key: str) -> str:
    """The store's upsert of folded rows (one per key) from the registered batch table."""
    select = ", ".join(c.select for c in columns)
    return (
        f"MERGE INTO {table} USING (SELECT {select} FROM _batch_rows) AS batch "
        f"ON {table}.{key} = batch.{key} WHEN MATCHED THEN UPDATE WHEN NOT MATCHED THEN INSERT"
    )


def duckdb_ceiling(path: Path, batches: Sequence[DuckBatch], merge: bool) -> float:
    """Plain DuckDB: register each prebuilt Arrow table, INSERT ... SELECT the event rows
    (and with `merge` also MERGE the ticket and account rows, as the store does), update the
    position, one transaction per batch. The schema is the store's (created by opening it)."""
    AnalyticsStore(path).close()
    con = duckdb.connect(str(path))
    try:
        con.execute("SET TimeZone = 'UTC'")
        names = ", ".join(c.name for c in EVENT_FACTS)
        select = ", ".join(c.select for c in EVENT_FACTS)
        insert = f"INSERT INTO event_facts ({names}) SELECT {select} FROM _batch_rows"
        merges = [merge_sql("ticket_facts", TICKET_FACTS, "ticket_id")]
        merges.append(merge_sql("accounts", ACCOUNTS, "account_uuid"))
        start = time.perf_counter()
        for batch in batches:
            con.begin()
            statements = [(batch.events, insert)]
            if merge:
                statements += [
                    (table, sql)
                    for table, sql in zip((batch.tickets, batch.accounts), merges, strict=True)
                    if table is not None
                ]
            for table, sql in statements:
                con.register("_batch_rows", table)
                con.execute(sql)
                con.unregister("_batch_rows")
            con.execute(
                "UPDATE projection_position SET stream_sequence = ?, updated_at = now() "
                "WHERE projection = 'analytics'",
                [batch.position],
            )
            con.commit()
        return time.perf_counter() - start
    finally:
        con.close()


# --- our projectors, with timing wrappers ---------------------------------------------------


READ = "store_read_sql"
WRITE = "store_write_sql_and_commit"
BUCKETS = ("nats_fetch", "json_decode", READ, "python_fold_and_convert", WRITE, "ack_and_rest")


@dataclass
class Clock:
    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))

    @contextlib.contextmanager
    def time(self, key: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[key] += time.perf_counter() - start


class _Rows:
    """A materialised result (timed with the query) that reads like a cursor."""

    def __init__(self, rows: list[Any]) -> None:
        self.rows = rows

    def __iter__(self) -> Iterator[Any]:
        return iter(self.rows)

    def fetchall(self) -> list[Any]:
        return self.rows

    def fetchone(self) -> Any:
        return self.rows[0] if self.rows else None


class TimedConnection:
    """Forwards to a sqlite3 or DuckDB connection, adding the time of every database call to
    the current bucket (READ inside a store's `_load`, WRITE otherwise). SELECT results are
    fetched inside the timed call."""

    TIMED = frozenset(
        {"execute", "executemany", "begin", "commit", "rollback", "register", "unregister"}
    )

    def __init__(self, inner: Any, clock: Clock) -> None:
        self._inner = inner
        self._clock = clock
        self.bucket = WRITE

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._inner, name)
        if name not in self.TIMED:
            return attribute

        def timed(*args: Any, **kwargs: Any) -> Any:
            with self._clock.time(self.bucket):
                result = attribute(*args, **kwargs)
                if name == "execute" and str(args[0]).lstrip().upper().startswith("SELECT"):
                    return _Rows(result.fetchall())
                return result

        return timed

    @contextlib.contextmanager
    def reading(self) -> Iterator[None]:
        self.bucket = READ
        try:
            yield
        finally:
            self.bucket = WRITE


class TimedQueueStore(QueueStore):
    def __init__(self, path: Path, clock: Clock) -> None:
        super().__init__(path)
        self.clock = clock
        self.timed = TimedConnection(self.db, clock)
        self.db = self.timed  # type: ignore[assignment]

    def apply(self, events: Sequence[StreamEvent]) -> None:
        with self.clock.time("apply"):
            super().apply(events)

    def _load(self, ticket_ids: Any) -> dict[str, dict[str, Any]]:
        with self.timed.reading():
            return super()._load(ticket_ids)


class TimedAnalyticsStore(AnalyticsStore):
    def __init__(self, path: Path, clock: Clock) -> None:
        super().__init__(path)
        self.clock = clock
        self.timed = TimedConnection(self._con, clock)
        self._con = self.timed  # type: ignore[assignment]

    def apply(self, events: Sequence[StreamEvent]) -> None:
        with self.clock.time("apply"):
            super().apply(events)

    def _load(self, table: str, columns: Sequence[Column], key: str, ids: set[str]) -> Any:
        with self.timed.reading():
            return super()._load(table, columns, key, ids)


class TimedProjector(Projector):
    """The real projector; records when it reaches `target` and times each `fetch`."""

    def __init__(self, nc: Client, store: Any, durable: str, batch: int, clock: Clock, target: int):
        super().__init__(nc, store, durable, batch_size=batch)
        self.clock = clock
        self.target = target
        self.done = asyncio.Event()
        self.finished_at = 0.0
        self.at_done: dict[str, float] = {}
        self.errors_at_done: tuple[int, str | None] = (0, None)

    async def _bind(self, *, force: bool = False) -> None:
        await super()._bind(force=force)
        subscription = self._subscription
        fetch = subscription.fetch

        async def timed_fetch(*args: Any, **kwargs: Any) -> Any:
            with self.clock.time("nats_fetch"):
                return await fetch(*args, **kwargs)

        subscription.fetch = timed_fetch

    async def process(self, messages: Sequence[Msg]) -> int:
        applied = await super().process(messages)
        if self.stats.position >= self.target and not self.done.is_set():
            self.finished_at = time.perf_counter()
            self.at_done = dict(self.clock.seconds)
            self.errors_at_done = (self.stats.consumer_resets, self.stats.last_error)
            self.done.set()
        return applied


@contextlib.contextmanager
def timed_decode(clock: Clock) -> Iterator[None]:
    """Time `projections.consumer._decode` (JSON + message metadata) in this process."""
    original = consumer_module._decode

    def decode_timed(messages: Sequence[Msg]) -> list[StreamEvent]:
        with clock.time("json_decode"):
            return original(messages)

    consumer_module._decode = decode_timed
    try:
        yield
    finally:
        consumer_module._decode = original


@contextlib.contextmanager
def timed_gc(clock: Clock) -> Iterator[None]:
    """Add the garbage collector's pauses (any thread) to the "gc" bucket; they overlap the
    other buckets, so they are reported on their own."""
    started: list[float] = []

    def callback(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            started.append(time.perf_counter())
        elif started:
            clock.seconds["gc"] += time.perf_counter() - started.pop()

    gc.callbacks.append(callback)
    try:
        yield
    finally:
        gc.callbacks.remove(callback)


@dataclass
class ProjectorRun:
    seconds: float
    batches: int
    buckets: dict[str, float]
    consumer_resets: int
    last_error: str | None


async def run_projector(
    endpoint: NatsEndpoint,
    make_store: Callable[[Clock], Any],
    durable: str,
    batch: int,
    target: int,
) -> ProjectorRun:
    """Our projector from an empty projection and a new durable until it reaches `target`."""
    clock = Clock()
    store = make_store(clock)
    nc = await connect(endpoint, "admin", name=f"bench-{durable}", reconnect_forever=False)
    try:
        projector = TimedProjector(nc, store, durable, batch, clock, target)
        with timed_decode(clock), timed_gc(clock):
            start = time.perf_counter()
            task = asyncio.create_task(projector.run())
            try:
                await asyncio.wait_for(projector.done.wait(), timeout=900)
            except TimeoutError:
                raise RuntimeError(
                    f"{durable} stuck at {projector.stats.position}/{target}: "
                    f"{projector.stats.last_error}"
                ) from None
            finally:
                projector.stop()
                await asyncio.wait_for(task, 15)
        elapsed = projector.finished_at - start
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await nc.jetstream().delete_consumer(STREAM, durable)
    finally:
        await nc.close()
        store.close()
    resets, error = projector.errors_at_done
    buckets = split_buckets(projector.at_done, elapsed)
    return ProjectorRun(elapsed, projector.stats.batches, buckets, resets, error)


def split_buckets(seen: dict[str, float], total: float) -> dict[str, float]:
    apply = seen.get("apply", 0.0)
    read, write = seen.get(READ, 0.0), seen.get(WRITE, 0.0)
    fetch, decode = seen.get("nats_fetch", 0.0), seen.get("json_decode", 0.0)
    return {
        "gc_pauses_overlapping": seen.get("gc", 0.0),
        "nats_fetch": fetch,
        "json_decode": decode,
        READ: read,
        "python_fold_and_convert": apply - read - write,
        WRITE: write,
        "ack_and_rest": total - fetch - decode - apply,
    }


# --- catch-up measurement -------------------------------------------------------------------


@dataclass
class Series:
    """Runs of one measurement, pooled as events / total seconds."""

    events: int
    runs: list[float] = field(default_factory=list)
    batches: list[int] = field(default_factory=list)
    buckets: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    errors: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.events * len(self.runs) / sum(self.runs)

    def add(self, seconds: float) -> None:
        self.runs.append(seconds)
        log(f"    {self.events / seconds:9.0f} events/s")

    def summary(self) -> dict[str, Any]:
        return {
            "events_per_s": round(self.rate, 1),
            "runs_events_per_s": [round(self.events / s, 1) for s in self.runs],
        }


@dataclass
class CatchUpData:
    expected: int
    events: list[StreamEvent]
    queue: list[QueueBatch]
    duck_1000: list[DuckBatch]
    duck_5000: list[DuckBatch]
    raw: dict[int, str]


async def collect_messages(endpoint: NatsEndpoint, expected: int) -> CatchUpData:
    """Read the stream once (untimed) and prepare every ceiling's rows from it."""
    _, messages = await pull_ceiling(endpoint, "bench-collect", QUEUE_BATCH, expected, keep=True)
    events = decode(messages)
    raw = {msg.metadata.sequence.stream: msg.data.decode() for msg in messages}
    return CatchUpData(
        expected,
        events,
        queue_batches(events, QUEUE_BATCH),
        duck_batches(events, QUEUE_BATCH),
        duck_batches(events, ANALYTICS_BATCH),
        raw,
    )


def catch_up_steps(
    endpoint: NatsEndpoint, scratch: Path, data: CatchUpData, series: dict[str, Series]
) -> list[tuple[str, Callable[[int], None]]]:
    """Each measurement as (name, run(round)); every run starts from nothing."""
    expected = data.expected

    def pull(batch: int) -> Callable[[int], None]:
        def run(number: int) -> None:
            seconds, _ = asyncio.run(
                pull_ceiling(endpoint, f"bench-pull-{batch}-{number}", batch, expected)
            )
            series[f"jetstream_pull_ack_batch_{batch}"].add(seconds)

        return run

    def fresh(name: str, number: int) -> Path:
        path = scratch / f"{name}-{number}"
        path.mkdir()
        return path

    def projector(kind: str) -> Callable[[int], None]:
        def run(number: int) -> None:
            home = fresh(kind, number)
            make: Callable[[Clock], Any]
            if kind == "queue":
                make, batch = functools.partial(TimedQueueStore, home / "queue.sqlite"), QUEUE_BATCH
            else:
                make = functools.partial(TimedAnalyticsStore, home / "a.duckdb")
                batch = ANALYTICS_BATCH
            result = asyncio.run(
                run_projector(endpoint, make, f"bench-{kind}-{number}", batch, expected)
            )
            verify_projection(kind, home, data)
            entry = series[f"{kind}_projector"]
            entry.add(result.seconds)
            entry.batches.append(result.batches)
            if result.consumer_resets or result.last_error:
                entry.errors.append(f"{result.consumer_resets} resets, {result.last_error}")
            for key, seconds in result.buckets.items():
                entry.buckets[key] += seconds
            shutil.rmtree(home, ignore_errors=True)

        return run

    def sqlite_rows(number: int) -> None:
        home = fresh("sqlite-queue", number)
        series["sqlite_queue_rows_txn_1000"].add(
            sqlite_queue_ceiling(home / "q.sqlite", data.queue)
        )
        shutil.rmtree(home, ignore_errors=True)

    def sqlite_events(number: int) -> None:
        home = fresh("sqlite-events", number)
        seconds = sqlite_event_ceiling(home / "e.sqlite", data.events, data.raw)
        series["sqlite_event_rows_txn_1000"].add(seconds)
        shutil.rmtree(home, ignore_errors=True)

    def duck(name: str, batches: list[DuckBatch], merge: bool) -> Callable[[int], None]:
        def run(number: int) -> None:
            home = fresh(name, number)
            series[name].add(duckdb_ceiling(home / "a.duckdb", batches, merge))
            shutil.rmtree(home, ignore_errors=True)

        return run

    duck_1000 = "duckdb_arrow_event_rows_txn_1000"
    duck_5000 = "duckdb_arrow_event_rows_txn_5000"
    duck_store = "duckdb_store_rows_txn_5000"
    # Each projector next to the ceilings of its stack; the information-only ones last.
    return [
        ("jetstream_pull_ack_batch_1000", pull(QUEUE_BATCH)),
        ("sqlite_queue_rows_txn_1000", sqlite_rows),
        ("queue_projector", projector("queue")),
        ("jetstream_pull_ack_batch_5000", pull(ANALYTICS_BATCH)),
        (duck_5000, duck(duck_5000, data.duck_5000, False)),
        ("analytics_projector", projector("analytics")),
        ("sqlite_event_rows_txn_1000", sqlite_events),
        (duck_1000, duck(duck_1000, data.duck_1000, False)),
        (duck_store, duck(duck_store, data.duck_5000, True)),
    ]


def verify_projection(kind: str, home: Path, data: CatchUpData) -> None:
    """The projection holds what the stream says: every ticket (queue), every event
    (analytics)."""
    tickets = sum(1 for e in data.events if e.payload["type"] == "TicketOpened")
    if kind == "queue":
        reader = open_reader(home / "queue.sqlite")
        try:
            count = reader.execute("SELECT count(*) FROM queue_tickets").fetchone()[0]
        finally:
            reader.close()
        expected = tickets
    else:
        con = duckdb.connect(str(home / "a.duckdb"), read_only=True)
        try:
            count = con.execute("SELECT count(*) FROM event_facts").fetchall()[0][0]
        finally:
            con.close()
        expected = len(data.events)
    if count != expected:
        raise RuntimeError(f"{kind} projection holds {count} rows, expected {expected}")


def projector_summary(entry: Series, stack: dict[str, Series], batch: int) -> dict[str, Any]:
    """Ours next to the plain layers of its stack, and where its loop spends the time."""
    rates = {name: s.rate for name, s in stack.items()}
    slowest = min(rates, key=lambda k: rates[k])
    per_round = [
        entry.events / ours / min(entry.events / s.runs[i] for s in stack.values())
        for i, ours in enumerate(entry.runs)
    ]
    total = sum(entry.runs)
    shares = {k: entry.buckets.get(k, 0.0) / total for k in BUCKETS}
    binding = max(shares, key=lambda k: shares[k])
    events = entry.events * len(entry.runs)
    return {
        **entry.summary(),
        "batch_size": batch,
        "mean_batch": round(events / max(1, sum(entry.batches)), 1),
        "ceilings_events_per_s": {k: round(v, 1) for k, v in rates.items()},
        "slowest_ceiling": slowest,
        "ratio_vs_slowest_ceiling": round(entry.rate / rates[slowest], 3),
        "ratio_per_round": [round(r, 3) for r in per_round],
        "serial_estimate_events_per_s": round(1 / sum(1 / v for v in rates.values()), 1),
        "time_share": {k: round(v, 3) for k, v in shares.items()},
        "us_per_event": {k: round(entry.buckets.get(k, 0.0) / events * 1e6, 2) for k in BUCKETS},
        "gc_pauses_us_per_event_overlapping": round(
            entry.buckets.get("gc_pauses_overlapping", 0.0) / events * 1e6, 2
        ),
        "binding_layer_in_loop": binding,
        "errors_before_caught_up": entry.errors,
    }


def measure_catch_up(root: Path, events: int, rounds: int) -> dict[str, Any]:
    home = root / "catch-up"
    home.mkdir()
    server = EmbeddedNats(home)
    try:
        url = server.start()
        endpoint = NatsEndpoint(url, read_credentials(server.credentials_path))
        log(f"catch-up: nats-server at {url}; writing ~{events} events")
        settings = Settings(home=home)
        service = build_command_service(settings)
        try:
            start = time.perf_counter()
            types = write_day(service, day_commands(max(1, events // EVENTS_PER_TICKET), seed=11))
            written = time.perf_counter() - start
        finally:
            service.app.close()
        total = sum(types.values())
        log(f"  {total} events written in {written:.1f} s ({total / written:.0f}/s)")
        last_seq, relay_s = asyncio.run(publish_all(endpoint, settings))
        if last_seq != total:
            raise RuntimeError(f"stream holds {last_seq} messages, the store {total} events")
        log(f"  relay: {last_seq} events in {relay_s:.1f} s ({last_seq / relay_s:.0f}/s)")
        data = asyncio.run(collect_messages(endpoint, last_seq))
        # The prepared rows are millions of live objects a real projector process does not
        # have: keep the garbage collector from walking them during the measurements.
        gc.collect()
        gc.freeze()
        scratch = root / "scratch"
        scratch.mkdir()
        series: dict[str, Series] = defaultdict(lambda: Series(last_seq))
        steps = catch_up_steps(endpoint, scratch, data, series)
        for number in range(rounds):
            for name, step in steps if number % 2 == 0 else steps[::-1]:
                log(f"  round {number + 1}/{rounds}: {name}")
                step(number)
    finally:
        gc.unfreeze()
        server.stop()
    payload_bytes = sum(len(v) for v in data.raw.values()) / len(data.raw)
    queue_stack = {
        k: series[k] for k in ("jetstream_pull_ack_batch_1000", "sqlite_queue_rows_txn_1000")
    }
    analytics_stack = {
        k: series[k] for k in ("jetstream_pull_ack_batch_5000", "duckdb_arrow_event_rows_txn_5000")
    }
    ceilings = {k: s.summary() for k, s in series.items() if not k.endswith("_projector")}
    return {
        "events": last_seq,
        "tickets": types["TicketOpened"],
        "event_types": dict(types.most_common()),
        "mean_payload_bytes": round(payload_bytes, 1),
        "write_events_per_s": round(total / written, 1),
        "relay_events_per_s": round(last_seq / relay_s, 1),
        "rounds": rounds,
        "ceilings": ceilings,
        "queue_projector": projector_summary(series["queue_projector"], queue_stack, QUEUE_BATCH),
        "analytics_projector": projector_summary(
            series["analytics_projector"], analytics_stack, ANALYTICS_BATCH
        ),
    }


# --- command-ack -> visible-in-queue latency ------------------------------------------------


def check_alive(home: Path, processes: dict[str, subprocess.Popen[bytes]]) -> None:
    for name, process in processes.items():
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode}:\n{log_tail(home, name)}")


async def wait_ready(
    endpoint: NatsEndpoint, home: Path, processes: dict[str, subprocess.Popen[bytes]], events: int
) -> None:
    """Until the command service answers a PING and the queue holds every pre-opened ticket."""
    nc = await connect(endpoint, "admin", name="bench-wait", reconnect_forever=False)
    path = queue_path(Settings(home=home))
    deadline = time.monotonic() + 90
    try:
        while True:
            check_alive(home, processes)
            if time.monotonic() > deadline:
                raise RuntimeError("the latency processes were not ready within 90 s")
            with contextlib.suppress(nats.errors.NoRespondersError, nats.errors.TimeoutError):
                await nc.request(f"$SRV.PING.{SERVICE_NAME}", b"", timeout=0.5)
                if path.exists() and queue_position(path) >= events:
                    return
            await asyncio.sleep(0.1)
    finally:
        await nc.close()


def queue_position(path: Path) -> int:
    reader = open_reader(path)
    try:
        row = reader.execute("SELECT max(stream_sequence) FROM projection_position").fetchone()
        return int(row[0] or 0)
    except sqlite3.OperationalError:
        return 0  # the schema is not there yet
    finally:
        reader.close()


def latency_command(ticket_id: Any, index: int) -> m.Command:
    """Alternately a public agent comment and a new tag: each changes the queue row."""
    if index % 2 == 0:
        return m.AddComment(
            ticket_id=ticket_id,
            body=f"Checking the logs you sent ({index}).",
            visibility=Visibility.PUBLIC,
            actor=AGENT,
        )
    return m.TagTicket(ticket_id=ticket_id, tags=[f"lat-{index}"], actor=AGENT)


@dataclass
class Sent:
    index: int
    ticket_id: str
    sent: float
    acked: float = 0.0
    version: int = 0
    seen: float = 0.0
    published: float = 0.0


@dataclass
class LatencyRun:
    commands: list[m.Command]
    ticket_ids: list[str]
    rate: float
    warmup: int
    records: list[Sent] = field(default_factory=list)
    pending: dict[str, list[Sent]] = field(default_factory=lambda: defaultdict(list))
    published: dict[tuple[str, int], float] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    polls: int = 0
    sending: bool = True


async def poll_queue(run: LatencyRun, path: Path) -> None:
    """Every POLL_S: the max version of every ticket with an acked, unseen command."""
    reader = open_reader(path)
    try:
        while run.sending or run.pending:
            if run.pending:
                ids = list(run.pending)
                started = time.perf_counter()
                rows = reader.execute(
                    "SELECT ticket_id, version FROM queue_tickets "
                    f"WHERE ticket_id IN ({','.join('?' for _ in ids)})",
                    ids,
                ).fetchall()
                run.polls += 1
                for ticket_id, row_version in rows:
                    waiting = run.pending[ticket_id]
                    for record in [r for r in waiting if r.version <= row_version]:
                        record.seen = started
                        waiting.remove(record)
                    if not waiting:
                        del run.pending[ticket_id]
            await asyncio.sleep(POLL_S)
    finally:
        reader.close()


async def send_paced(run: LatencyRun, client: TicketingClient) -> float:
    """Open loop: command i leaves at start + i / rate; returns the sending span."""

    async def send(index: int, command: m.Command) -> None:
        record = Sent(index, run.ticket_ids[index % len(run.ticket_ids)], time.perf_counter())
        reply = await client.execute(command, raise_errors=False)
        record.acked = time.perf_counter()
        if not reply.ok or reply.version is None:
            run.failures.append(reply.to_json())
            return
        record.version = reply.version
        run.records.append(record)
        run.pending[record.ticket_id].append(record)

    tasks = []
    start = time.perf_counter()
    for index, command in enumerate(run.commands):
        delay = start + index / run.rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(send(index, command)))
    span = time.perf_counter() - start
    await asyncio.gather(*tasks)
    return span


async def run_latency(endpoint: NatsEndpoint, home: Path, run: LatencyRun) -> dict[str, Any]:
    path = queue_path(Settings(home=home))
    admin = await connect(endpoint, "admin", name="bench-watch", reconnect_forever=False)

    async def on_event(msg: Msg) -> None:
        ticket_id = msg.subject.rsplit(".", 1)[1]
        event_version = int((msg.headers or {}).get(VERSION_HEADER, 0))
        run.published.setdefault((ticket_id, event_version), time.perf_counter())

    client = await TicketingClient.connect(endpoint, principal="caller", timeout=30)
    try:
        await admin.subscribe("ticketing.events.ticket.>", cb=on_event)
        poller = asyncio.create_task(poll_queue(run, path))
        try:
            span = await send_paced(run, client)
            run.sending = False
            await asyncio.wait_for(asyncio.shield(poller), timeout=30)
        except TimeoutError:
            raise RuntimeError(
                f"{sum(map(len, run.pending.values()))} commands never visible"
            ) from None
        finally:
            run.sending = False
            run.pending.clear()
            await poller
    finally:
        await client.close()
        await admin.close()
    return {"span": span}


def latency_summary(run: LatencyRun, span: float) -> dict[str, Any]:
    counted = [r for r in run.records if r.index >= run.warmup]
    visible = [r.seen - r.acked for r in counted]
    ack = [r.acked - r.sent for r in counted]
    relay, projector = [], []
    for record in counted:
        published = run.published.get((record.ticket_id, record.version))
        if published is not None:
            relay.append(published - record.acked)
            projector.append(record.seen - published)
    acked = [r.acked for r in counted]
    window = max(acked) - min(r.sent for r in counted) if counted else 0.0
    return {
        "commands": len(run.commands),
        "counted": len(counted),
        "target_commands_per_s": run.rate,
        "sent_commands_per_s": round(len(run.commands) / span, 1) if span else None,
        "acked_commands_per_s": round(len(counted) / window, 1) if window else None,
        "failures": len(run.failures),
        "visible_after_ack": distribution_ms(visible),
        "command_round_trip": distribution_ms(ack),
        "relay_ack_to_published": distribution_ms(relay),
        "projector_published_to_visible": distribution_ms(projector),
        "poll_interval_ms": POLL_S * 1000,
        "polls": run.polls,
    }


def prepare_latency_store(home: Path, tickets: int) -> tuple[list[str], int]:
    """Pre-open the tickets (before any process starts): (ticket ids, events stored)."""
    service = build_command_service(Settings(home=home))
    try:
        events = 0
        reply = service.execute(
            m.CreateAccount(account_id=ACCOUNT_ID, account_name="Acme", tier=SlaTier.BUSINESS)
        )
        events += len(reply.events)
        opens = [
            m.OpenTicket(
                account_id=ACCOUNT_ID,
                requester="bob@acme.example",
                subject=f"VPN drops every hour ({n})",
                description="Since Monday the VPN client disconnects roughly once an hour.",
                actor=CUSTOMER,
            )
            for n in range(tickets)
        ]
        for group in chunks(opens, GROUP):
            events += sum(len(r.events) for r in execute_checked(service, group))
    finally:
        service.app.close()
    return [str(ticket_id_for(o.command_id)) for o in opens], events


def measure_latency(root: Path, rate: float, seconds: float) -> dict[str, Any]:
    home = root / "latency"
    home.mkdir()
    server = EmbeddedNats(home)
    processes: dict[str, subprocess.Popen[bytes]] = {}
    try:
        url = server.start()
        endpoint = NatsEndpoint(url, read_credentials(server.credentials_path))
        tickets = max(1, round(rate))  # each ticket gets a command about once a second
        ticket_ids, events = prepare_latency_store(home, tickets)
        log(f"latency: nats-server at {url}; {tickets} tickets pre-opened")
        for name in ("command-service", "relay", "queue-projector"):
            processes[name] = start_process(home, ["-m", "ticketing.cli", "run", name], name)
        asyncio.run(wait_ready(endpoint, home, processes, events))
        warmup = round(WARMUP_S * rate)
        total = warmup + max(1, round(seconds * rate))
        run = LatencyRun(
            [latency_command(ticket_ids[i % tickets], i) for i in range(total)],
            ticket_ids,
            rate,
            warmup,
        )
        log(f"  {total} commands at {rate:.0f}/s ({warmup} of them warm-up)")
        result = asyncio.run(run_latency(endpoint, home, run))
        check_alive(home, processes)
    finally:
        for process in processes.values():
            stop_process(process)
        server.stop()
    if run.failures:
        raise RuntimeError(f"{len(run.failures)} commands failed, first: {run.failures[0]}")
    summary = latency_summary(run, result["span"])
    summary["log_warnings"] = {
        name: log_tail(home, name, None).count("retrying") for name in ("relay", "queue-projector")
    }
    log(
        f"  visible after ack: {summary['visible_after_ack']}; relay "
        f"{summary['relay_ack_to_published']}; projector "
        f"{summary['projector_published_to_visible']}"
    )
    return summary


# --- KPI latency at scale -------------------------------------------------------------------

KPI_START = "2025-11-25 00:00:00+00"
KPI_DAYS = 365

GENERATE_TICKETS = """
CREATE TEMP TABLE gen AS
WITH a AS (
    SELECT
        i,
        uuid() AS ticket_id,
        rnd(i, 1) AS r_cat,
        rnd(i, 2) AS r_status,
        floor(pow(rnd(i, 3), 2) * 2000)::INTEGER AS account,
        epoch(TIMESTAMPTZ '{start}') + rnd(i, 4) * {days} * 86400 AS opened_s
    FROM range({tickets}) r(i)
), b AS (
    SELECT
        *,
        CASE WHEN r_cat < 0.10 THEN 'incident' WHEN r_cat < 0.35 THEN 'technical'
             WHEN r_cat < 0.60 THEN 'account' WHEN r_cat < 0.85 THEN 'usage'
             ELSE 'feedback' END AS category,
        NOT ((epoch(TIMESTAMPTZ '{start}') + {days} * 86400 - opened_s < 10 * 86400
              AND r_status < 0.5) OR r_status < 0.02) AS done
    FROM a
)
SELECT
    *,
    CASE WHEN done THEN (CASE WHEN rnd(i, 5) < 0.65 THEN 'closed' ELSE 'solved' END)
         ELSE ['new', 'open', 'open', 'pending', 'pending', 'on_hold'][
             1 + floor(rnd(i, 6) * 6)::INTEGER] END AS status,
    CASE category WHEN 'incident' THEN 'urgent' WHEN 'feedback' THEN 'low'
         WHEN 'technical' THEN (CASE WHEN rnd(i, 7) < 0.7 THEN 'high' ELSE 'normal' END)
         ELSE 'normal' END AS priority,
    ['email', 'email', 'email', 'chat', 'chat', 'web', 'phone', 'slack', 'api'][
        1 + floor(rnd(i, 8) * 9)::INTEGER] AS channel,
    CASE category WHEN 'technical' THEN 'network' WHEN 'account' THEN 'billing'
         WHEN 'feedback' THEN 'billing' ELSE 'platform' END AS team,
    CASE WHEN account < 100 THEN 'enterprise' WHEN account < 600 THEN 'business'
         ELSE 'standard' END AS tier,
    20 + expo(i, 9, 1200) AS assigned_s,
    60 + expo(i, 10, 5400) AS reply_s,
    rnd(i, 11) < 0.3 AS automated,
    60 + expo(i, 10, 5400) + expo(i, 12, 86400) AS solve_s,
    rnd(i, 13) < 0.08 AS reopened,
    expo(i, 14, 172800) AS reopen_s,
    rnd(i, 15) < 0.55 AS rated,
    CASE WHEN rnd(i, 16) < 0.50 THEN 5 WHEN rnd(i, 16) < 0.75 THEN 4
         WHEN rnd(i, 16) < 0.85 THEN 3 WHEN rnd(i, 16) < 0.93 THEN 2 ELSE 1 END AS score,
    1 + floor(rnd(i, 17) * 4)::INTEGER AS agent_replies,
    floor(rnd(i, 18) * 3)::INTEGER AS customer_replies,
    floor(rnd(i, 19) * 2)::INTEGER AS internal_comments,
    rnd(i, 20) AS r_wait,
    rnd(i, 21) < 0.2 AS held,
    rnd(i, 22) < 0.1 AS reassigned,
    rnd(i, 23) < 0.15 AS agent_opened,
    'agent' || (1 + floor(rnd(i, 24) * 8)::INTEGER) AS agent_no
FROM b
"""

# Times as seconds since the epoch, then each ticket_facts column from them.
TIMES = """
CREATE TEMP TABLE tt AS
SELECT
    *,
    opened_s + assigned_s AS assigned_at_s,
    CASE WHEN status <> 'new' THEN opened_s + reply_s END AS reply_at_s,
    CASE WHEN done THEN opened_s + solve_s END AS first_solved_s,
    CASE WHEN done THEN opened_s + solve_s + (CASE WHEN reopened THEN reopen_s ELSE 0 END)
         END AS last_solved_s
FROM gen
"""

INSERT_TICKETS = """
INSERT INTO ticket_facts
SELECT
    ticket_id,
    'acct-' || account,
    tier,
    channel,
    category,
    priority,
    'user' || (i % 50) || '@acct-' || account || '.example',
    to_timestamp(opened_s),
    CASE WHEN agent_opened THEN 'agent' ELSE 'customer' END,
    status,
    to_timestamp(coalesce(CASE status WHEN 'closed' THEN last_solved_s + 4 * 86400
        WHEN 'solved' THEN last_solved_s END, reply_at_s, opened_s)),
    to_timestamp(reply_at_s),
    CASE WHEN automated THEN to_timestamp(opened_s + 60) END,
    to_timestamp(assigned_at_s),
    to_timestamp(first_solved_s),
    to_timestamp(last_solved_s),
    CASE WHEN status = 'closed' THEN to_timestamp(last_solved_s + 4 * 86400) END,
    CASE WHEN reopened AND done THEN 1 ELSE 0 END,
    CASE WHEN status = 'new' THEN 0 ELSE agent_replies END,
    CASE WHEN status = 'new' THEN 0 ELSE agent_replies + customer_replies END,
    internal_comments,
    assigned_s,
    CASE WHEN done THEN (solve_s - assigned_s) * (1 - r_wait * 0.4) ELSE reply_s END,
    CASE WHEN done THEN (solve_s - assigned_s) * r_wait * 0.3 ELSE 0 END,
    CASE WHEN done AND held THEN (solve_s - assigned_s) * r_wait * 0.1 ELSE 0 END,
    team,
    team || '-' || agent_no,
    CASE WHEN done THEN team END,
    CASE WHEN done THEN team || '-' || agent_no END,
    CASE WHEN reassigned THEN 1 ELSE 0 END,
    CASE WHEN done AND rated THEN score END,
    CASE WHEN done AND rated AND score >= 4 THEN 'Thanks!' END,
    CASE WHEN done AND rated THEN to_timestamp(last_solved_s + 7200) END,
    to_timestamp(CASE WHEN status = 'closed' THEN last_solved_s + 4 * 86400
        WHEN done AND rated THEN last_solved_s + 7200 WHEN done THEN last_solved_s
        ELSE opened_s + reply_s + 7200 END),
    {events_per_ticket}
FROM tt
ORDER BY opened_s
"""

# Ten events per ticket, consistent with its row: opened, categorized, prioritized, assigned,
# first agent reply and the move new -> open, customer and agent comments, resolution, then a
# close, a rating or another comment. Event rows go in time order, as the stream has them.
INSERT_EVENTS = """
INSERT INTO event_facts
SELECT
    seq, seq, ticket_id, 'ticket', k + 1, type, to_timestamp(ev_s), to_timestamp(ev_s),
    actor_kind, actor_id, NULL, 'acct-' || account, from_status, to_status,
    '{{"type":"' || type || '","aggregate_id":"' || ticket_id || '","version":' || (k + 1)
        || ',"actor":{{"kind":"' || actor_kind || '","id":"' || actor_id || '"}}}}'
FROM (SELECT *, row_number() OVER (ORDER BY ev_s, ticket_id, k) AS seq FROM (
    SELECT
        i, ticket_id, account, k,
        CASE k WHEN 0 THEN 'TicketOpened' WHEN 1 THEN 'TicketCategorized'
            WHEN 2 THEN 'TicketPrioritized' WHEN 3 THEN 'TicketAssigned'
            WHEN 5 THEN (CASE WHEN status = 'new' THEN 'CommentAdded' ELSE 'StatusChanged' END)
            WHEN 8 THEN (CASE WHEN done THEN 'TicketResolved' ELSE 'CommentAdded' END)
            WHEN 9 THEN (CASE WHEN status = 'closed' THEN 'TicketClosed'
                WHEN done AND rated THEN 'TicketRated' ELSE 'CommentAdded' END)
            ELSE 'CommentAdded' END AS type,
        CASE k WHEN 0 THEN opened_s WHEN 1 THEN opened_s + 10 WHEN 2 THEN opened_s + 11
            WHEN 3 THEN assigned_at_s
            WHEN 4 THEN coalesce(reply_at_s, assigned_at_s + 1)
            WHEN 5 THEN coalesce(reply_at_s, assigned_at_s + 2)
            WHEN 8 THEN coalesce(first_solved_s, opened_s + reply_s + 3600)
            WHEN 9 THEN (CASE WHEN status = 'closed' THEN last_solved_s + 4 * 86400
                WHEN done THEN last_solved_s + 7200 ELSE opened_s + reply_s + 7200 END)
            ELSE coalesce(reply_at_s, assigned_at_s) + (k - 5) * 900 END AS ev_s,
        CASE WHEN k IN (1, 2) THEN 'automation' WHEN k = 9 AND status = 'closed' THEN 'system'
            WHEN k = 0 AND NOT agent_opened OR k = 6 OR (k = 9 AND done AND rated)
                THEN 'customer' ELSE 'agent' END AS actor_kind,
        CASE WHEN k IN (1, 2) THEN 'triage-rules' WHEN k = 9 AND status = 'closed'
            THEN 'auto-close' ELSE team || '-' || agent_no END AS actor_id,
        CASE WHEN k = 5 AND status <> 'new' THEN 'new'
            WHEN k = 8 AND done THEN 'open'
            WHEN k = 9 AND status = 'closed' THEN 'solved' END AS from_status,
        CASE WHEN k = 5 AND status <> 'new' THEN (CASE WHEN done THEN 'open' ELSE status END)
            WHEN k = 8 AND done THEN 'solved'
            WHEN k = 9 AND status = 'closed' THEN 'closed' END AS to_status
    FROM tt, range({events_per_ticket}) e(k)
))
ORDER BY seq
"""

INSERT_ACCOUNTS = """
INSERT INTO accounts
SELECT uuid(), 'acct-' || n, 'Account ' || n,
    CASE WHEN n < 100 THEN 'enterprise' WHEN n < 600 THEN 'business' ELSE 'standard' END,
    1, TIMESTAMPTZ '{start}'
FROM range(2000) r(n)
"""


def generate_projection(path: Path, tickets: int, scratch: Path) -> float:
    """Bulk-generate the analytics tables in the store's own schema; seconds taken."""
    AnalyticsStore(path).close()  # the schema and the KPI views
    start = time.perf_counter()
    con = duckdb.connect(str(path))
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.execute("SET memory_limit = '4GB'")
        con.execute(f"SET temp_directory = '{scratch}'")
        con.execute("CREATE TEMP MACRO rnd(i, s) AS (hash(i * 64 + s) % 1000000) / 1000000.0")
        con.execute("CREATE TEMP MACRO expo(i, s, mean) AS -ln(1 - rnd(i, s)) * mean")
        sizes = {"start": KPI_START, "days": KPI_DAYS, "tickets": tickets}
        con.execute(GENERATE_TICKETS.format(**sizes))
        con.execute(TIMES)
        con.execute("DROP TABLE gen")
        con.execute(INSERT_TICKETS.format(events_per_ticket=KPI_EVENTS_PER_TICKET))
        log(f"  ticket_facts: {tickets} rows after {time.perf_counter() - start:.1f} s")
        con.execute(INSERT_EVENTS.format(events_per_ticket=KPI_EVENTS_PER_TICKET))
        log(
            f"  event_facts: {tickets * KPI_EVENTS_PER_TICKET} rows after "
            f"{time.perf_counter() - start:.1f} s"
        )
        con.execute(INSERT_ACCOUNTS.format(start=KPI_START))
        con.execute(
            "UPDATE projection_position SET stream_sequence = ?, updated_at = now() "
            "WHERE projection = 'analytics'",
            [tickets * KPI_EVENTS_PER_TICKET],
        )
        con.execute("DROP TABLE tt")
        con.execute("CHECKPOINT")
    finally:
        con.close()
    return time.perf_counter() - start


def kpi_queries() -> dict[str, Callable[[duckdb.DuckDBPyConnection], Any]]:
    def sql(text: str) -> Callable[[duckdb.DuckDBPyConnection], Any]:
        return lambda con: con.execute(text).fetchall()

    end = datetime.fromisoformat(KPI_START).timestamp() + KPI_DAYS * 86400
    last_30 = datetime.fromtimestamp(end - 30 * 86400, UTC)
    return {
        "kpi_summary": kpi_summary,
        "kpi_summary_by_category": lambda con: kpi_summary(con, by="category"),
        "kpi_summary_by_team": lambda con: kpi_summary(con, by="team"),
        "kpi_summary_by_channel": lambda con: kpi_summary(con, by="channel"),
        "kpi_summary_by_tier": lambda con: kpi_summary(con, by="tier"),
        "kpi_summary_last_30_days": lambda con: kpi_summary(con, since=last_30),
        "kpi_backlog": sql("SELECT * FROM kpi_backlog"),
        "kpi_daily_volume_per_day": sql(
            "SELECT day, sum(opened) AS opened FROM kpi_daily_volume GROUP BY day ORDER BY day"
        ),
        "kpi_daily_volume_per_day_and_team": sql(
            "SELECT day, team, sum(opened) FROM kpi_daily_volume GROUP BY ALL ORDER BY ALL"
        ),
        "kpi_csat": sql("SELECT * FROM kpi_csat"),
    }


def measure_kpis(root: Path, tickets: int) -> dict[str, Any]:
    home = root / "kpi"
    home.mkdir()
    path = home / "analytics.duckdb"
    log(f"kpi: generating {tickets} tickets / {tickets * KPI_EVENTS_PER_TICKET} events")
    generated = generate_projection(path, tickets, home / "spill")
    size_mb = path.stat().st_size / 1e6
    log(f"  generated in {generated:.1f} s, {size_mb:.0f} MB")
    con = open_readonly(path)
    try:
        counts = con.execute(
            "SELECT (SELECT count(*) FROM ticket_facts), (SELECT count(*) FROM event_facts)"
        ).fetchall()[0]
        queries: dict[str, Any] = {}
        for name, query in kpi_queries().items():
            runs = []
            for _ in range(KPI_REPEATS):
                start = time.perf_counter()
                rows = query(con)
                runs.append((time.perf_counter() - start) * 1000)
            queries[name] = {
                "median_ms": round(statistics.median(runs), 2),
                "max_ms": round(max(runs), 2),
                "first_ms": round(runs[0], 2),
                "rows": len(rows),
            }
            log(
                f"  {name:36} median {queries[name]['median_ms']:8.1f} ms, max "
                f"{queries[name]['max_ms']:8.1f} ms"
            )
    finally:
        con.close()
    return {
        "tickets": counts[0],
        "events": counts[1],
        "generate_s": round(generated, 1),
        "file_mb": round(size_mb, 1),
        "repeats": KPI_REPEATS,
        "queries": queries,
    }


# --- running --------------------------------------------------------------------------------


def run(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    load_before = machine_load()
    catch_up = measure_catch_up(root, args.events, args.rounds)
    latency = measure_latency(root, args.rate, args.seconds)
    kpis = measure_kpis(root, args.kpi_tickets)
    load_after = machine_load()
    queue, analytics = catch_up["queue_projector"], catch_up["analytics_projector"]
    aims = {
        "queue_catch_up_ratio": aim(AIM_CATCH_UP_RATIO, queue["ratio_vs_slowest_ceiling"]),
        "analytics_catch_up_ratio": aim(AIM_CATCH_UP_RATIO, analytics["ratio_vs_slowest_ceiling"]),
        "visible_p99_ms": aim(
            AIM_VISIBLE_P99_MS, latency["visible_after_ack"]["p99_ms"], higher_is_better=False
        ),
    }
    for name, stats in kpis["queries"].items():
        aims[f"{name}_median_ms"] = aim(AIM_KPI_MS, stats["median_ms"], higher_is_better=False)
    return {
        "benchmark": "projectors",
        "store": "sqlite",
        "smoke": args.smoke,
        "catch_up": catch_up,
        "visible_latency": latency,
        "kpi": kpis,
        "aims": aims,
        **run_context(load_before, load_after, "nats-py", "duckdb", "pyarrow", sqlite=True),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=50_000, help="catch-up events (~50000)")
    parser.add_argument("--rounds", type=int, default=4, help="catch-up rounds (4)")
    parser.add_argument("--rate", type=float, default=500.0, help="commands/s (500)")
    parser.add_argument("--seconds", type=float, default=10.0, help="latency run seconds (10)")
    parser.add_argument(
        "--kpi-tickets", type=int, default=1_000_000, help="KPI tickets, 10 events each (1M)"
    )
    parser.add_argument("--smoke", action="store_true", help="tiny run for CI (< 60 s)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args(argv)
    if args.smoke:
        args.events, args.rounds, args.seconds, args.kpi_tickets = 2000, 1, 1.0, 10_000
    if min(args.events, args.rounds, args.rate, args.seconds, args.kpi_tickets) <= 0:
        parser.error("sizes must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    log(
        f"bench projectors: ~{args.events} events x {args.rounds} round(s); {args.rate:.0f} "
        f"commands/s for {args.seconds:.0f} s; KPIs on {args.kpi_tickets} tickets"
    )
    with temporary_root("projectors", keep=args.keep) as root:
        result = run(args, root)
    for name, entry in result["aims"].items():
        log(f"{name}: {entry['value']} (aim {entry['aim']}) {'met' if entry['met'] else 'MISSED'}")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
