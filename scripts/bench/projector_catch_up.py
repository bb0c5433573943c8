"""Benchmark: the projectors' catch-up, next to the plain layers below them.

Run as a file, never imported:

    .venv/bin/python scripts/bench/projector_catch_up.py          # ~50,000 events, 4 rounds
    .venv/bin/python scripts/bench/projector_catch_up.py --smoke  # tiny sizes, for CI
    .venv/bin/python scripts/bench/projector_catch_up.py --events 20000 --rounds 2

Everything happens in one fresh temporary directory, with the embedded nats-server
(`EmbeddedNats(home).start()`) on the durable SQLite default, and is removed afterwards.

What is measured:

**catch-up, ours next to the plain layers below it**, all on the same messages in one run.
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

Aims: each projector >= 0.5x the slowest ceiling of its stack.

Its JSON keeps the keys of the catch-up part of the former `projectors.py` (`catch_up`, its
`aims`), so figures stay comparable; the other parts are `queue_latency.py` and
`kpi_latency.py`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import gc
import json
import shutil
import sqlite3
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import nats.errors
import nats.js.errors
import pyarrow as pa
from benchkit import (
    aim,
    bench_main,
    bench_parser,
    chunks,
    execute_checked,
    log,
    machine_load,
    run_context,
)
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from commands import models as m
from commands.command_log import ticket_id_for
from commands.replies import Reply
from commands.service import CommandService
from projections import consumer as consumer_module
from projections.analytics.event_facts import event_fact_batch
from projections.analytics.store import (
    ACCOUNTS,
    EVENT_FACTS,
    TICKET_FACTS,
    AnalyticsStore,
    BatchFold,
    Column,
)
from projections.consumer import Projector
from projections.queue.queries import open_reader
from projections.queue.store import COLUMNS as QUEUE_COLUMNS
from projections.queue.store import SCHEMA as QUEUE_SCHEMA
from projections.queue.store import QueueStore, fold_ticket
from projections.relay import Relay
from projections.stream_event import StreamEvent
from ticketing.cli.demo_day import support_day
from ticketing.nats.connect import NatsEndpoint, connect
from ticketing.nats.roles import STREAM, read_credentials
from ticketing.nats.server import EmbeddedNats
from ticketing.runtime.bootstrap import build_application, build_command_service
from ticketing.settings import Settings

AIM_CATCH_UP_RATIO = 0.5
GROUP = 128  # tickets per wave (distinct aggregates per execute_many group)
QUEUE_BATCH = 1000  # as `ticketing run queue-projector`
ANALYTICS_BATCH = 5000  # as `ticketing run analytics-projector`
EVENTS_PER_TICKET = 10  # a support_day story causes about ten events


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


# --- running --------------------------------------------------------------------------------


def run(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    load_before = machine_load()
    catch_up = measure_catch_up(root, args.events, args.rounds)
    load_after = machine_load()
    queue, analytics = catch_up["queue_projector"], catch_up["analytics_projector"]
    aims = {
        "queue_catch_up_ratio": aim(AIM_CATCH_UP_RATIO, queue["ratio_vs_slowest_ceiling"]),
        "analytics_catch_up_ratio": aim(AIM_CATCH_UP_RATIO, analytics["ratio_vs_slowest_ceiling"]),
    }
    return {
        "benchmark": "projector_catch_up",
        "store": "sqlite",
        "smoke": args.smoke,
        "catch_up": catch_up,
        "aims": aims,
        **run_context(load_before, load_after, "nats-py", "duckdb", "pyarrow", sqlite=True),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = bench_parser(__doc__)
    parser.add_argument("--events", type=int, default=50_000, help="catch-up events (~50000)")
    parser.add_argument("--rounds", type=int, default=4, help="catch-up rounds (4)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.events, args.rounds = 2000, 1
    if min(args.events, args.rounds) <= 0:
        parser.error("sizes must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return bench_main(
        "projector-catch-up",
        args,
        f"bench projector catch-up: ~{args.events} events x {args.rounds} round(s)",
        run,
    )


if __name__ == "__main__":
    sys.exit(main())
