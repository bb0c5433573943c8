"""Benchmark: replay — a long ticket's history and past state, projection rebuilds next to the
plain store read and DuckDB ingest rates, and a rebuild of 1,000,000 events.

Run as a file, never imported:

    .venv/bin/python scripts/bench/replay_audit.py                  # 200,000 events, then 1M
    .venv/bin/python scripts/bench/replay_audit.py --smoke          # 5,000 events, no 1M, for CI
    .venv/bin/python scripts/bench/replay_audit.py --events 500000 --skip-million
    .venv/bin/python scripts/bench/replay_audit.py --profile        # + cProfile on stderr

Everything happens on the durable SQLite event store (synchronous=FULL) in one fresh
temporary directory, removed afterwards (`--keep` keeps it).

What is measured, in this order:

1. **a 1,000-event ticket**: in its own store, one ticket opened and driven through agent and
   customer comments, internal notes, tags and untags and open/pending/on-hold moves, built in
   memory as the `Ticket` aggregate with historical `at` times (a minute apart) and saved with
   `app.save` every 200 events. Then `replay.history.history(app, id)`,
   `replay.history.ticket_as_of(app, id, at=<time of event 500>)` and
   `ticket_as_of(app, id, version=500)`, next to the library's default
   `app.repository.get(id)` and `app.get_ticket(id)` (the repository with the fast
   `replay_events` fold), `--repeats` (20) times each after two untimed calls, one call of
   each in turn (the starting operation rotates), so drift lands on all of them. `parts_p50_ms`
   splits the work: the SQL read (`recorder.select_events`), decoding the 1,000 stored events
   (`mapper.to_domain_event`), folding them (`replay_events`), and `event_payload` for each
   (what `history` adds). The aim (<= 10 ms) applies to the p50 of history, as-of-time and
   as-of-version each.
2. **rebuild rates next to the plain rates below them**: `--events` (200,000) published events
   are written into a second store: realistic ticket stories (the `ticketing.demo_day` mix:
   opens, triage, assignment, replies, pending / on-hold, resolutions, reopens, ratings,
   closes, plus tags) made by the aggregates' own methods with historical times, 2,000 tickets
   active at once and one command per ticket in turn, so a ticket's events are spread over
   about 20,000 others as in production. Each command's events are saved together with its
   `CommandRecord` (as `CommandService` stores it; the rebuild's topic filter skips those),
   1,000 commands of distinct tickets per `app.save` (one transaction, like an `execute_many`
   group). Then `--rounds` (2) rounds, the second in reverse order, of:
   - `plain_read`: `recorder.select_notifications` in batches of 5,000 with the published
     topics filter (exactly the rebuild's query), and `mapper.to_domain_event` for every
     notification; `read_events_per_s` counts the SQL time only, `read_decode_events_per_s`
     both.
   - `duckdb_ingest`: the event-fact rows of the store (read back from the first analytics
     rebuild, the same columns and values as `event_facts`) as prebuilt Arrow tables of 5,000
     rows, each `INSERT ... SELECT` (with the store's UUID/JSON casts) in its own transaction
     into a fresh DuckDB file with the `event_facts` schema, closing the file at the end.
     `with_arrow_build_rows_per_s` (information) also builds each Arrow table from Python row
     tuples inside the timing, as the store does; `whole_row_groups_one_transaction_rows_per_s`
     (information) inserts the same rows in whole row groups in one transaction, as the
     rebuild writes them (DuckDB compresses whole row groups as they go in), and
     `ratio_vs_read_decode_and_whole_group_ingest` compares each rebuild with that faster
     ceiling too.
   - `rebuild_queue`, `rebuild_analytics` as `ticketing rebuild` runs it (worker processes,
     one per core, from `replay.rebuild.PARALLEL_FROM` stored records: so at the default
     size but not at `--smoke`) and `rebuild_analytics(workers=0)` in one process
     (`analytics_in_process`, information) into fresh files; CPU includes the workers'. Three
     perf_counter pairs per batch (a wrapper on `select_notifications` for the library's read
     path, a wrapper on the stream's batches timing each batch it hands over, a store subclass
     timing opening and closing) split each rebuild into read (SQL through the library),
     decode + payload (reading, payloads and messages, `StreamEvent`: the stream's time less
     that read), store apply (the rest: `apply` per batch or the bulk `apply_all`), and store
     open/close. With workers, the rebuilding process reads nothing itself: read is 0 and
     "decode + payload" is the time it waited for the workers' batches and unpacked them.
   Rates are pooled over the rounds; `ratio_vs_slower_plain` = rebuild events/s over the
   smaller of read+decode and DuckDB ingest (aim >= 0.5 for each projection).
3. **signed checkpoints** (`replay.checkpoint`), on the store of (2): the first checkpoint
   (every event read, every chain's head listed), then `--checkpoints` (1,440: a day of
   `ticketing serve`'s minutely ones) incremental checkpoints, each after about 50 more
   events; the log's size; `verify_aggregate` of one ticket against its signed head
   (`ticketing verify chain TICKET`) for the 20 oldest tickets (their heads are in the first
   checkpoint, so the whole log is read) and for up to 20 tickets changed in the last minute;
   and one `verify_store` of everything with every checkpoint (`ticketing verify chain`).
4. **1,000,000 events**: extrapolated from the pooled rates of (2) and, unless `--smoke` or
   `--skip-million`, measured: the same writer tops the store up to 1M published events (same
   path, same mix), then one plain read+decode pass, one staged `rebuild_analytics(...,
   upto_sequence=1_000_000)` as the CLI runs it, and one in one process (information). The
   aim (< 30 s) uses the measured time of the first when there is one.

Percentiles are nearest-rank (p99 of 20 samples is the slowest). One JSON object goes to
stdout, progress to stderr. The JSON also records the load average and CPU pressure before and
after: neighbours on the shared 2-core machine stretch every wall-clock number here.

`--profile` adds diagnostics on stderr after the measurements (never in the JSON): cProfile of
20 x `ticket_as_of(version=500)` and 20 x `history`, and of one `rebuild_queue` and one
`rebuild_analytics` over the first min(--events, 100,000) events.

SQLite and DuckDB files go under the system temporary directory (set TMPDIR to measure another
disk; a tmpfs would make fsync free).
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import itertools
import json
import pstats
import random
import resource
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any
from uuid import UUID

import duckdb
import pyarrow as pa
from benchkit import (
    aim,
    log,
    machine_load,
    run_context,
    temporary_root,
)

import replay.rebuild as rebuild_module
from commands.command_log import CommandRecord, ticket_id_for
from projections.analytics.row_groups import ROW_GROUP_ROWS
from projections.analytics.store import EVENT_FACTS, SCHEMA, AnalyticsStore
from projections.payloads import PUBLISHED_TOPICS
from projections.queue.store import QueueStore
from replay.chain import verify_aggregate, verify_store
from replay.checkpoint import CheckpointLog, write_checkpoint
from replay.history import history, ticket_as_of
from replay.rebuild import rebuild_analytics, rebuild_queue
from replay.stream import BATCH
from ticketing.cli.demo_day import (
    ACCOUNTS,
    CATEGORY_TEAM,
    CHANNELS,
    PRIORITIES,
    SUBJECTS,
    TEAMS,
)
from ticketing.domain.account import Account
from ticketing.domain.events import event_payload
from ticketing.domain.ticket import Ticket
from ticketing.domain.values import (
    Actor,
    ActorKind,
    Priority,
    SlaTier,
    Status,
    Visibility,
)
from ticketing.runtime.bootstrap import build_application
from ticketing.settings import Settings
from ticketing.store.application import TicketingApplication, replay_events

AIM_REPLAY_MS = 10.0
AIM_RATIO = 0.5
AIM_MILLION_S = 30.0
CHECKPOINT_MINUTE_EVENTS = 50  # events between two incremental checkpoints
VERIFIED_TICKETS = 20  # tickets verified against their signed heads, oldest and newest
MILLION = 1_000_000
LONG_TICKET_EVENTS = 1000
LONG_TICKET_SAVE = 200  # events per app.save while writing the long ticket
ACTIVE_TICKETS = 2000  # stories in progress at once while writing the big store
SAVE_COMMANDS = 1000  # commands (of distinct tickets) per app.save: one transaction
PROFILE_EVENTS = 100_000
START = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
SYSTEM = Actor(ActorKind.SYSTEM, "onboarding")
AUTOMATION = Actor(ActorKind.AUTOMATION, "triage-rules")

Step = tuple[str, str, Ticket]  # (command name, command id, the ticket it changed)


# --- statistics -----------------------------------------------------------------------------


def percentile_ms(ordered: list[int], fraction: float) -> float:
    """Nearest-rank percentile of sorted nanosecond latencies, in milliseconds."""
    rank = max(1, round(fraction * len(ordered) + 0.5))
    return ordered[min(rank, len(ordered)) - 1] / 1e6


def latency_summary(latencies: list[int], cpu: list[int]) -> dict[str, float]:
    """Wall-clock percentiles, and the median CPU time of this thread (what the call costs
    when it has a CPU to itself: neighbours stretch the wall clock, not this)."""
    ordered = sorted(latencies)
    return {
        "p50_ms": round(percentile_ms(ordered, 0.50), 3),
        "p99_ms": round(percentile_ms(ordered, 0.99), 3),
        "min_ms": round(ordered[0] / 1e6, 3),
        "cpu_p50_ms": round(percentile_ms(sorted(cpu), 0.50), 3),
    }


def open_app(home: Path) -> TicketingApplication:
    return build_application(Settings(home=home))


# --- workload: one long ticket --------------------------------------------------------------


@dataclass(frozen=True)
class LongTicket:
    ticket_id: UUID
    events: int
    times: list[datetime]  # occurred_at of each version, index 0 = version 1


def write_long_ticket(app: TicketingApplication, events: int) -> LongTicket:
    """One ticket of exactly `events` events: every step after the first causes one event."""
    customer = Actor(ActorKind.CUSTOMER, "acme-user1")
    agent = Actor(ActorKind.AGENT, "ana")
    at = START
    command_id = "replay-long-ticket-open"
    ticket = Ticket.open(
        account_id="acme",
        account_tier="enterprise",
        requester="acme-user1@acme.example",
        subject="VPN drops every hour",
        description="Since Monday the VPN client disconnects roughly once an hour.",
        channel="email",
        actor=customer,
        at=at,
        command_id=command_id,
        ticket_id=ticket_id_for(command_id),
    )
    times: list[datetime] = []

    def save() -> None:
        pending = ticket.collect_events()
        times.extend(e.occurred_at for e in pending)
        app.save(*pending)

    for step in itertools.count(1):
        if ticket.version >= events:
            break
        at += timedelta(minutes=1)
        cause: dict[str, Any] = {"at": at, "command_id": f"replay-long-ticket-{step}"}
        kind = step % 6
        if kind == 0 or ticket.status is Status.NEW:
            # (on a new ticket the first agent reply also opens it: two events, once)
            body = f"Could you send the client logs from the last disconnect? ({step})"
            ticket.add_comment(body, actor=agent, **cause)
        elif kind == 1:
            ticket.tag([f"seen-{step}"], actor=agent, **cause)
        elif kind == 2 and ticket.status is Status.OPEN:
            ticket.add_comment(f"It dropped again at {at:%H:%M}.", actor=customer, **cause)
        elif kind == 3:
            target = {Status.OPEN: Status.PENDING, Status.PENDING: Status.ON_HOLD}.get(
                ticket.status, Status.OPEN
            )
            ticket.change_status(target, actor=agent, reason="bench", **cause)
        elif kind == 4 and len(ticket.tags) > 5:
            ticket.untag(ticket.tags[:1], actor=agent, **cause)
        else:
            note = f"Internal: checked the concentrator logs ({step})."
            ticket.add_comment(note, actor=agent, visibility=Visibility.INTERNAL, **cause)
        if len(ticket.pending_events) >= LONG_TICKET_SAVE:
            save()
    save()
    if ticket.version != events or len(times) != events:
        raise RuntimeError(f"long ticket has {ticket.version} events, not {events}")
    return LongTicket(ticket.id, events, times)


# --- workload: many tickets -----------------------------------------------------------------


def ticket_story(  # noqa: PLR0915 - one story reads best top to bottom
    rng: random.Random, number: int, opened_at: datetime
) -> Iterator[Step]:
    """One ticket's life as in `ticketing.demo_day`, one command per step, made by the
    aggregate's own methods (hash chain included) with historical times."""
    category = rng.choice(list(SUBJECTS))
    account_id, _, tier = rng.choice(ACCOUNTS)
    customer = Actor(ActorKind.CUSTOMER, f"{account_id}-user{rng.randint(1, 9)}")
    team = CATEGORY_TEAM[category]
    agent = Actor(ActorKind.AGENT, rng.choice(TEAMS[team]))
    ids = (f"replay-{number}-{k}" for k in itertools.count())
    at = opened_at

    def later(low: float, high: float) -> None:
        nonlocal at
        at += timedelta(minutes=rng.uniform(low, high))

    open_id = next(ids)
    ticket = Ticket.open(
        account_id=account_id,
        account_tier=tier,
        requester=f"{customer.id}@{account_id}.example",
        subject=rng.choice(SUBJECTS[category]),
        description="Reported by the replay benchmark.",
        channel=rng.choice(CHANNELS),
        actor=customer,
        at=at,
        command_id=open_id,
        ticket_id=ticket_id_for(open_id),
    )
    yield "open_ticket", open_id, ticket

    def do(name: str, method: Callable[..., None], *args: Any, **kwargs: Any) -> Step:
        command_id = next(ids)
        method(*args, at=at, command_id=command_id, **kwargs)
        return name, command_id, ticket

    later(0.5, 5)
    yield do("categorize_ticket", ticket.categorize, category, actor=AUTOMATION)
    yield do(
        "prioritize_ticket", ticket.prioritize, Priority(PRIORITIES[category]), actor=AUTOMATION
    )
    later(1, 45)
    yield do("assign_ticket", ticket.assign, team=team, agent=agent.id, actor=AUTOMATION)
    if rng.random() < 0.3:
        yield do("tag_ticket", ticket.tag, [f"{category}-{rng.randint(1, 40)}"], actor=agent)
    later(2, 90)
    yield do(
        "add_comment",
        ticket.add_comment,
        "Thanks for reporting this. Looking into it.",
        actor=agent,
    )
    if rng.random() < 0.12:
        return  # still open: part of the backlog
    if rng.random() < 0.45:
        later(5, 60)
        yield do(
            "add_comment", ticket.add_comment, "Could you send a screenshot or a log?", actor=agent
        )
        yield do(
            "change_status",
            ticket.change_status,
            Status.PENDING,
            actor=agent,
            reason="asked for details",
        )
        later(10, 240)
        if rng.random() < 0.15:
            return  # the customer never answered: still pending
        yield do("add_comment", ticket.add_comment, "Here it is, attached.", actor=customer)
    if rng.random() < 0.2:
        later(5, 30)
        yield do(
            "add_comment",
            ticket.add_comment,
            "Escalated to engineering.",
            actor=agent,
            visibility=Visibility.INTERNAL,
        )
        yield do(
            "change_status", ticket.change_status, Status.ON_HOLD, actor=agent, reason="engineering"
        )
        later(30, 240)
        yield do("change_status", ticket.change_status, Status.OPEN, actor=agent, reason="answered")
    later(5, 120)
    yield do("resolve_ticket", ticket.resolve, actor=agent, resolution="Fixed and verified.")
    if rng.random() < 0.15:
        later(10, 120)
        yield do("add_comment", ticket.add_comment, "It is happening again.", actor=customer)
        later(10, 90)
        yield do("add_comment", ticket.add_comment, "Applied a permanent fix.", actor=agent)
        yield do("resolve_ticket", ticket.resolve, actor=agent, resolution="Permanent fix.")
    if rng.random() < 0.7:
        later(5, 180)
        score = rng.choices((5, 4, 3, 2, 1), weights=(50, 25, 10, 8, 7))[0]
        yield do("rate_ticket", ticket.rate, score, actor=customer, comment="Thanks!")
    if rng.random() < 0.5:
        later(30, 240)
        yield do("close_ticket", ticket.close, actor=SYSTEM)


def command_record(
    command_id: str, name: str, aggregate: Ticket | Account, events: Sequence[Any]
) -> CommandRecord:
    """The idempotency record `CommandService` saves with a command's events."""
    from_version = events[0].originator_version - 1 if events else aggregate.version
    return CommandRecord.record(
        command_id,
        command_name=name,
        fingerprint={"(command)": name, "(target)": str(aggregate.id)},  # (no payload here)
        aggregate_kind="ticket" if isinstance(aggregate, Ticket) else "account",
        aggregate_id=str(aggregate.id),
        from_version=from_version,
        to_version=aggregate.version,
    )


@dataclass
class StoreWriter:
    """Writes ticket stories into the real store; can be resumed to a larger total."""

    app: TicketingApplication
    seed: int = 7
    published: int = 0  # events the rebuild reads (tickets and accounts)
    records: int = 0  # command records (stored, filtered out by the rebuild)
    tickets: int = 0
    seconds: float = 0.0
    stories: deque[Iterator[Step]] = field(default_factory=deque)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.clock = START
        pending: list[Any] = []
        for account_id, name, tier in ACCOUNTS:
            command_id = f"replay-account-{account_id}"
            account = Account.register(
                account_id=account_id,
                name=name,
                tier=SlaTier(tier),
                actor=SYSTEM,
                at=START - timedelta(days=30),
                command_id=command_id,
            )
            events = account.collect_events()
            pending += [
                *events,
                *command_record(command_id, "create_account", account, events).collect_events(),
            ]
            self.published += len(events)
            self.records += 1
        self.app.save(*pending)

    def write_until(self, target: int) -> None:
        """Write commands until at least `target` published events are stored (at most one
        over: a command causes one or two events)."""
        start = time.perf_counter()
        pending: list[Any] = []
        commands = 0
        next_log = self.published + max(target // 10, 1)
        while self.published < target:
            while len(self.stories) < ACTIVE_TICKETS:
                self.clock += timedelta(seconds=self.rng.uniform(0, 20))
                self.stories.append(ticket_story(self.rng, self.tickets, self.clock))
                self.tickets += 1
            story = self.stories.popleft()
            step = next(story, None)
            if step is None:
                continue
            self.stories.append(story)
            name, command_id, ticket = step
            events = ticket.collect_events()
            pending += events
            pending += command_record(command_id, name, ticket, events).collect_events()
            self.published += len(events)
            commands += 1
            if commands == SAVE_COMMANDS or self.published >= target:
                self.app.save(*pending)
                self.records += commands
                pending.clear()
                commands = 0
                if self.published >= next_log:
                    log(f"  store: {self.published}/{target} events")
                    next_log += max(target // 10, 1)
        self.seconds += time.perf_counter() - start

    def summary(self) -> dict[str, Any]:
        return {
            "published_events": self.published,
            "command_records": self.records,
            "tickets": self.tickets,
            "write_seconds": round(self.seconds, 1),
            "published_events_per_s": round(self.published / self.seconds, 1),
        }


# --- 1. the long ticket ---------------------------------------------------------------------


def measure_long_ticket(app: TicketingApplication, ticket: LongTicket, repeats: int) -> dict:
    ticket_id = ticket.ticket_id
    half = ticket.events // 2
    middle = ticket.times[half - 1]  # the time of event `half`: as of then, `half` events

    def check(result: Any, expected: int, label: str) -> None:
        got = len(result) if isinstance(result, list) else result.version
        if got != expected:
            raise RuntimeError(f"{label} gave {got} events/version, expected {expected}")

    operations: dict[str, tuple[Callable[[], Any], int]] = {
        "history": (lambda: history(app, ticket_id), ticket.events),
        "as_of_at_middle": (lambda: ticket_as_of(app, ticket_id, at=middle), half),
        f"as_of_version_{half}": (lambda: ticket_as_of(app, ticket_id, version=half), half),
        "repository_get_library_default": (lambda: app.repository.get(ticket_id), ticket.events),
        "get_ticket_fast_fold": (lambda: app.get_ticket(ticket_id), ticket.events),
    }
    stored = app.recorder.select_events(ticket_id)
    decoded = [app.mapper.to_domain_event(s) for s in stored]
    parts: dict[str, Callable[[], Any]] = {
        "select_events_sql": lambda: app.recorder.select_events(ticket_id),
        "decode_mapper": lambda: [app.mapper.to_domain_event(s) for s in stored],
        "fold_replay_events": lambda: replay_events(None, decoded),
        "event_payload": lambda: [event_payload(e) for e in decoded],
    }
    timings: dict[str, list[int]] = {name: [] for name in [*operations, *parts]}
    cpu: dict[str, list[int]] = {name: [] for name in timings}
    calls: dict[str, Callable[[], Any]] = {
        **{name: op for name, (op, _) in operations.items()},
        **parts,
    }
    for name, (op, expected) in operations.items():
        for _ in range(2):  # warm-up, and a check that each gives the right state
            check(op(), expected, name)
    for name in parts:
        calls[name]()
    names = list(calls)
    for repeat in range(repeats):
        shift = repeat % len(names)
        for name in names[shift:] + names[:shift]:
            begin, begin_cpu = time.perf_counter_ns(), time.thread_time_ns()
            calls[name]()
            timings[name].append(time.perf_counter_ns() - begin)
            cpu[name].append(time.thread_time_ns() - begin_cpu)
    result: dict[str, Any] = {
        "events": ticket.events,
        "repeats": repeats,
        "as_of_at": middle.isoformat(),
        **{name: latency_summary(timings[name], cpu[name]) for name in operations},
        "parts_p50_ms": {
            name: round(percentile_ms(sorted(timings[name]), 0.5), 3) for name in parts
        },
        "parts_cpu_p50_ms": {
            name: round(percentile_ms(sorted(cpu[name]), 0.5), 3) for name in parts
        },
    }
    for name in operations:
        stats = result[name]
        log(
            f"  {name:32} p50 {stats['p50_ms']:7.2f} ms  p99 {stats['p99_ms']:7.2f} ms  "
            f"(CPU p50 {stats['cpu_p50_ms']:.2f} ms)"
        )
    log(f"  parts (p50 ms): {result['parts_p50_ms']}")
    return result


# --- 2. rebuild stages, plain read, plain DuckDB ingest -------------------------------------


@dataclass
class Stages:
    """Where one rebuild's time went."""

    events: int = 0
    total: float = 0.0
    cpu: float = 0.0  # process CPU time (all threads: DuckDB uses several), workers' included
    workers: int = 0  # rebuild worker processes (`replay.rebuild_workers`); 0: one process
    read: float = 0.0
    stream: float = 0.0  # inside the stream's batches, the read included
    open_close: float = 0.0

    @property
    def decode_payload(self) -> float:
        return self.stream - self.read

    @property
    def apply(self) -> float:
        """The store's share: all but the stream and opening/closing (bulk paths consume the
        stream inside one call, so the store cannot be timed per batch)."""
        return self.total - self.stream - self.open_close

    def parts(self) -> dict[str, float]:
        return {
            "read_sql": self.read,
            "decode_payload": self.decode_payload,
            "store_apply": self.apply,
            "store_open_close": self.open_close,
        }

    def add(self, other: Stages) -> None:
        self.events += other.events
        self.total += other.total
        self.cpu += other.cpu
        self.workers = max(self.workers, other.workers)
        self.read += other.read
        self.stream += other.stream
        self.open_close += other.open_close


def timed_store_class(base: Any, stages: Stages) -> Any:
    """`base` with its constructor and `close` timed into `stages`."""

    class Timed(base):  # type: ignore[misc, valid-type]
        def __init__(self, path: Path) -> None:
            begin = time.perf_counter()
            super().__init__(path)
            stages.open_close += time.perf_counter() - begin

        def close(self) -> None:
            begin = time.perf_counter()
            super().close()
            stages.open_close += time.perf_counter() - begin

    return Timed


@contextlib.contextmanager
def staged(app: TicketingApplication, stages: Stages) -> Iterator[None]:
    """Time the rebuild's reads and its store, per batch, while inside."""
    recorder = app.recorder
    select = recorder.select_notifications

    def timed_select(*args: Any, **kwargs: Any) -> Any:
        begin = time.perf_counter()
        try:
            return select(*args, **kwargs)
        finally:
            stages.read += time.perf_counter() - begin

    stream_batches = rebuild_module.stream_batches

    def timed(batches: Iterator[Any]) -> Iterator[Any]:
        while True:
            begin = time.perf_counter()
            batch = next(batches, None)
            stages.stream += time.perf_counter() - begin
            if batch is None:
                return
            yield batch

    def timed_stream(*args: Any, **kwargs: Any) -> Iterator[Any]:
        return timed(stream_batches(*args, **kwargs))

    workers_class = rebuild_module.RebuildWorkers

    class TimedWorkers(workers_class):  # type: ignore[misc, valid-type]
        """The workers' batches as the rebuilding process receives them."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            stages.workers = kwargs["workers"]

        def batches(self, upto_sequence: int | None = None) -> Iterator[Any]:
            return timed(super().batches(upto_sequence))

    recorder.select_notifications = timed_select  # type: ignore[method-assign]
    rebuild_module.stream_batches = timed_stream  # type: ignore[assignment]
    rebuild_module.RebuildWorkers = TimedWorkers  # type: ignore[misc]
    rebuild_module.QueueStore = timed_store_class(QueueStore, stages)  # type: ignore[misc]
    rebuild_module.AnalyticsStore = timed_store_class(AnalyticsStore, stages)  # type: ignore[misc]
    try:
        yield
    finally:
        del recorder.select_notifications  # back to the class's method
        rebuild_module.stream_batches = stream_batches  # type: ignore[assignment]
        rebuild_module.RebuildWorkers = workers_class  # type: ignore[misc]
        rebuild_module.QueueStore = QueueStore  # type: ignore[misc]
        rebuild_module.AnalyticsStore = AnalyticsStore  # type: ignore[misc]


def rebuild_analytics_in_process(
    app: TicketingApplication, target: Path, *, upto_sequence: int | None = None
) -> int:
    return rebuild_analytics(app, target, upto_sequence=upto_sequence, workers=0)


REBUILDERS: dict[str, Callable[..., int]] = {
    "queue": rebuild_queue,
    "analytics": rebuild_analytics,  # as `ticketing rebuild` runs it: workers for large stores
    "analytics_in_process": rebuild_analytics_in_process,
}
SUFFIX = {"queue": ".sqlite", "analytics": ".duckdb", "analytics_in_process": ".duckdb"}


def children_cpu() -> float:
    """CPU seconds of every child process waited for so far (the rebuild's workers)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_rebuild(
    app: TicketingApplication, kind: str, target: Path, expected: int, upto: int | None = None
) -> Stages:
    stages = Stages()
    with staged(app, stages):
        begin, begin_cpu = time.perf_counter(), time.process_time() + children_cpu()
        applied = REBUILDERS[kind](app, target, upto_sequence=upto)
        stages.total = time.perf_counter() - begin
        stages.cpu = time.process_time() + children_cpu() - begin_cpu
    if applied != expected:
        raise RuntimeError(f"rebuild_{kind} applied {applied} events, expected {expected}")
    stages.events = applied
    return stages


def remove_store(path: Path) -> None:
    for leftover in (path, Path(f"{path}-wal"), Path(f"{path}-shm"), Path(f"{path}.wal")):
        leftover.unlink(missing_ok=True)


@dataclass(frozen=True)
class ReadRun:
    events: int
    read: float  # seconds in the SQL query
    decode: float  # seconds in mapper.to_domain_event
    cpu: float  # process CPU seconds of the whole pass

    @property
    def total(self) -> float:
        return self.read + self.decode


def plain_read(app: TicketingApplication, upto: int | None = None) -> ReadRun:
    """The rebuild's own query and decoding, nothing else."""
    recorder, to_domain_event = app.recorder, app.mapper.to_domain_event
    position, count, read, decode = 0, 0, 0.0, 0.0
    begin_cpu = time.process_time()
    while upto is None or count < upto:
        limit = BATCH if upto is None else min(BATCH, upto - count)
        begin = time.perf_counter()
        batch = recorder.select_notifications(
            start=position + 1, limit=limit, topics=PUBLISHED_TOPICS, inclusive_of_start=True
        )
        middle = time.perf_counter()
        read += middle - begin
        if not batch:
            break
        for notification in batch:
            to_domain_event(notification)
        decode += time.perf_counter() - middle
        count += len(batch)
        position = batch[-1].id
    return ReadRun(count, read, decode, time.process_time() - begin_cpu)


def event_fact_tables(analytics_file: Path) -> list[pa.Table]:
    """The store's event-fact rows as Arrow tables of `BATCH` rows (UUID and JSON as text,
    as the store hands them to DuckDB)."""
    con = duckdb.connect(str(analytics_file), read_only=True)
    try:
        select = ", ".join(
            f"CAST({c.name} AS VARCHAR) AS {c.name}" if c.sql_type in ("UUID", "JSON") else c.name
            for c in EVENT_FACTS
        )
        table = con.sql(f"SELECT {select} FROM event_facts ORDER BY stream_sequence")
        table = table.to_arrow_table()
    finally:
        con.close()
    schema = pa.schema([(c.name, c.arrow_type) for c in EVENT_FACTS])
    table = table.cast(schema).combine_chunks()
    return [table.slice(start, BATCH) for start in range(0, table.num_rows, BATCH)]


def python_rows(tables: list[pa.Table]) -> list[list[tuple[Any, ...]]]:
    """The same rows as Python tuples, times as integer microseconds (as the store folds them)."""
    batches = []
    for table in tables:
        columns = []
        for column, spec in zip(table.columns, EVENT_FACTS, strict=True):
            plain = column.cast(pa.int64()) if spec.sql_type == "TIMESTAMPTZ" else column
            columns.append(plain.to_pylist())
        batches.append(list(zip(*columns, strict=True)))
    return batches


EVENT_FACTS_SQL = next(s for s in SCHEMA if "event_facts" in s.split("(")[0])
INSERT_EVENT_FACTS = (
    f"INSERT INTO event_facts ({', '.join(c.name for c in EVENT_FACTS)}) "
    f"SELECT {', '.join(c.select for c in EVENT_FACTS)} FROM _batch_rows"
)


@contextlib.contextmanager
def fresh_event_facts(path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """A new DuckDB file holding the store's empty `event_facts`, removed afterwards."""
    remove_store(path)
    con = duckdb.connect(str(path))
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.execute(EVENT_FACTS_SQL)
        yield con
    finally:
        with contextlib.suppress(duckdb.Error):
            con.close()
        remove_store(path)


def insert_batch(con: duckdb.DuckDBPyConnection, table: pa.Table) -> None:
    con.register("_batch_rows", table)
    con.execute(INSERT_EVENT_FACTS)
    con.unregister("_batch_rows")


def duckdb_ingest(
    path: Path,
    tables: list[pa.Table] | None = None,
    rows: list[list[tuple[Any, ...]]] | None = None,
) -> tuple[int, float, float]:
    """Plain ingest into a fresh `event_facts`: one INSERT ... SELECT transaction per batch;
    from prebuilt tables, or building each table from row tuples inside the timing."""
    with fresh_event_facts(path) as con:
        count = 0
        begin, begin_cpu = time.perf_counter(), time.process_time()
        for batch in tables if tables is not None else rows or []:
            if isinstance(batch, pa.Table):
                table = batch
            else:
                columns = list(zip(*batch, strict=True))
                table = pa.table(
                    {
                        c.name: pa.array(values, c.arrow_type)
                        for c, values in zip(EVENT_FACTS, columns, strict=True)
                    }
                )
            con.begin()
            insert_batch(con, table)
            con.commit()
            count += table.num_rows
        con.close()
        return count, time.perf_counter() - begin, time.process_time() - begin_cpu


def duckdb_ingest_whole_groups(path: Path, tables: list[pa.Table]) -> tuple[int, float, float]:
    """Information beside the plain ingest: the same rows in whole row groups, one transaction
    (the way the rebuild now writes them, compressed as they go in)."""
    rows = pa.concat_tables(tables).combine_chunks()
    with fresh_event_facts(path) as con:
        begin, begin_cpu = time.perf_counter(), time.process_time()
        con.begin()
        for start in range(0, rows.num_rows, ROW_GROUP_ROWS):
            insert_batch(con, rows.slice(start, ROW_GROUP_ROWS))
        con.commit()
        con.close()
        return rows.num_rows, time.perf_counter() - begin, time.process_time() - begin_cpu


@dataclass
class RebuildBench:
    """The rounds of (2): every measurement on the same store, alternating their order."""

    app: TicketingApplication
    work: Path
    events: int
    reads: list[ReadRun] = field(default_factory=list)
    ingests: list[tuple[int, float, float]] = field(default_factory=list)
    ingests_built: list[tuple[int, float, float]] = field(default_factory=list)
    rebuilds: dict[str, list[Stages]] = field(
        default_factory=lambda: {kind: [] for kind in REBUILDERS}
    )
    ingests_whole: list[tuple[int, float, float]] = field(default_factory=list)
    tables: list[pa.Table] | None = None
    rows: list[list[tuple[Any, ...]]] | None = None

    def read(self) -> None:
        run = plain_read(self.app)
        if run.events != self.events:
            raise RuntimeError(f"plain read saw {run.events} events, expected {self.events}")
        self.reads.append(run)
        log(
            f"  plain read: {run.events / run.read:.0f} events/s SQL only, "
            f"{run.events / run.total:.0f} events/s with decoding"
        )

    def rebuild(self, kind: str) -> None:
        target = self.work / f"rebuilt-{kind}{SUFFIX[kind]}"
        stages = run_rebuild(self.app, kind, target, self.events)
        self.rebuilds[kind].append(stages)
        parts = ", ".join(f"{k} {v:.2f} s" for k, v in stages.parts().items())
        log(
            f"  rebuild {kind}: {stages.events / stages.total:.0f} events/s, "
            f"{stages.workers} workers ({parts})"
        )
        if kind == "analytics" and self.tables is None:
            self.tables = event_fact_tables(target)
            self.rows = python_rows(self.tables)
            facts = sum(t.num_rows for t in self.tables)
            if facts != self.events:
                raise RuntimeError(f"analytics has {facts} event facts, expected {self.events}")
        remove_store(target)

    def ingest(self) -> None:
        if self.tables is None:
            self.rebuild("analytics")  # (only when it has not run yet: the rows come from it)
        path = self.work / "plain-ingest.duckdb"
        count, seconds, cpu = duckdb_ingest(path, tables=self.tables)
        self.ingests.append((count, seconds, cpu))
        built, built_seconds, built_cpu = duckdb_ingest(path, rows=self.rows)
        self.ingests_built.append((built, built_seconds, built_cpu))
        whole, whole_seconds, whole_cpu = duckdb_ingest_whole_groups(path, self.tables)
        self.ingests_whole.append((whole, whole_seconds, whole_cpu))
        log(
            f"  plain DuckDB ingest: {count / seconds:.0f} rows/s prebuilt Arrow, "
            f"{built / built_seconds:.0f} rows/s building Arrow from tuples, "
            f"{whole / whole_seconds:.0f} rows/s in whole row groups in one transaction"
        )

    def run(self, rounds: int) -> None:
        steps: list[Callable[[], None]] = [
            self.read,
            lambda: self.rebuild("analytics"),  # first: the ingest's rows come from it
            self.ingest,
            lambda: self.rebuild("analytics_in_process"),
            lambda: self.rebuild("queue"),
        ]
        for number in range(rounds):
            log(f"round {number + 1}/{rounds}")
            for step in steps if number % 2 == 0 else steps[::-1]:
                step()

    def summary(self) -> dict[str, Any]:
        read_events = sum(r.events for r in self.reads)
        read_s = sum(r.read for r in self.reads)
        read_decode_rate = read_events / sum(r.total for r in self.reads)
        ingested = sum(n for n, _, _ in self.ingests)
        ingest_rate = ingested / sum(s for _, s, _ in self.ingests)
        built = sum(n for n, _, _ in self.ingests_built)
        built_rate = built / sum(s for _, s, _ in self.ingests_built)
        slower = min(read_decode_rate, ingest_rate)
        whole = sum(n for n, _, _ in self.ingests_whole)
        whole_rate = whole / sum(s for _, s, _ in self.ingests_whole)
        rebuilds = {}
        for kind, runs in self.rebuilds.items():
            pooled = Stages()
            for stages in runs:
                pooled.add(stages)
            rate = pooled.events / pooled.total
            parts = pooled.parts()
            rebuilds[kind] = {
                "events_per_s": round(rate, 1),
                "runs_events_per_s": [round(s.events / s.total, 1) for s in runs],
                "cpu_events_per_s": round(pooled.events / pooled.cpu, 1),
                "ratio_vs_slower_plain": round(rate / slower, 3),
                "ratio_vs_read_decode_and_whole_group_ingest": round(
                    rate / min(read_decode_rate, whole_rate), 3
                ),
                "workers": pooled.workers,
                "stages_s_per_run": {k: round(v / len(runs), 3) for k, v in parts.items()},
                "stage_shares": {k: round(v / pooled.total, 3) for k, v in parts.items()},
                "binding_stage": max(parts, key=lambda k: parts[k]),
                "stage_rates_events_per_s": {
                    k: round(pooled.events / v, 1) for k, v in parts.items() if v > 0
                },
            }
        return {
            "plain_read": {
                "events": self.events,
                "read_events_per_s": round(read_events / read_s, 1),
                "read_decode_events_per_s": round(read_decode_rate, 1),
                "runs_read_decode_events_per_s": [round(r.events / r.total, 1) for r in self.reads],
                "cpu_read_decode_events_per_s": round(
                    read_events / sum(r.cpu for r in self.reads), 1
                ),
            },
            "duckdb_ingest": {
                "rows": self.events,
                "batch_rows": BATCH,
                "rows_per_s": round(ingest_rate, 1),
                "runs_rows_per_s": [round(n / s, 1) for n, s, _ in self.ingests],
                "cpu_rows_per_s": round(ingested / sum(c for _, _, c in self.ingests), 1),
                "with_arrow_build_rows_per_s": round(built_rate, 1),
                "with_arrow_build_cpu_rows_per_s": round(
                    built / sum(c for _, _, c in self.ingests_built), 1
                ),
                "whole_row_groups_one_transaction_rows_per_s": round(whole_rate, 1),
            },
            "slower_plain_events_per_s": round(slower, 1),
            "slower_plain": "read_decode" if read_decode_rate <= ingest_rate else "duckdb_ingest",
            "rebuild": rebuilds,
        }


# --- 3. signed checkpoints ------------------------------------------------------------------


def timed(call: Callable[[], Any]) -> tuple[Any, float, float]:
    begin, begin_cpu = time.perf_counter(), time.thread_time()
    result = call()
    return result, time.perf_counter() - begin, time.thread_time() - begin_cpu


def measure_checkpoints(writer: StoreWriter, work: Path, minutes: int) -> dict[str, Any]:
    app = writer.app
    signed_log = CheckpointLog(work / "audit")
    events = writer.published
    first, first_s, first_cpu = timed(lambda: write_checkpoint(app, signed_log))
    first_bytes = signed_log.path.stat().st_size
    log(f"3. first checkpoint of {events} events: {first_s:.2f} s, {first_bytes / 1e6:.1f} MB")
    seconds, cpu_seconds, heads = [], [], []
    for _ in range(minutes):
        writer.write_until(writer.published + CHECKPOINT_MINUTE_EVENTS)
        last, elapsed, used = timed(lambda: write_checkpoint(app, signed_log))
        seconds.append(int(elapsed * 1e9))
        cpu_seconds.append(int(used * 1e9))
        heads.append(len(last.heads))
    log_bytes = signed_log.path.stat().st_size
    log(f"  {minutes} incremental checkpoints, log {log_bytes / 1e6:.1f} MB")
    tickets = {str(ticket_id_for(f"replay-{n}-0")) for n in range(writer.tickets)}
    newest = [UUID(a) for a in last.heads if a in tickets][:VERIFIED_TICKETS]
    oldest = [ticket_id_for(f"replay-{n}-0") for n in range(VERIFIED_TICKETS)]
    verified: dict[str, Any] = {}
    for label, chosen in (("oldest", oldest), ("newest", newest)):
        latencies, cpu = [], []
        for ticket in chosen:
            report, elapsed, used = timed(partial(verify_aggregate, app, ticket, signed_log))
            if not report.ok or report.signed_head is None:
                raise RuntimeError(f"ticket {ticket} did not verify: {report.breaks}")
            latencies.append(int(elapsed * 1e9))
            cpu.append(int(used * 1e9))
        verified[f"verify_ticket_{label}"] = {
            "tickets": len(chosen),
            **latency_summary(latencies, cpu),
        }
    whole, whole_s, whole_cpu = timed(lambda: verify_store(app, signed_log))
    if not whole.ok or whole.checkpoints_checked != minutes + 1:
        raise RuntimeError(f"the store did not verify: {whole.breaks[:3]}")
    log(
        f"  verify_ticket p50 oldest {verified['verify_ticket_oldest']['p50_ms']} ms, newest "
        f"{verified['verify_ticket_newest']['p50_ms']} ms; verify_store {whole_s:.1f} s"
    )
    return {
        "first": {
            "events": events,
            "heads": len(first.heads),
            "seconds": round(first_s, 3),
            "cpu_seconds": round(first_cpu, 3),
            "events_per_s": round(events / first_s, 1),
            "line_mb": round(first_bytes / 1e6, 2),
        },
        "incremental": {
            "checkpoints": minutes,
            "events_each": CHECKPOINT_MINUTE_EVENTS,
            "heads_mean": round(sum(heads) / len(heads), 1),
            **latency_summary(seconds, cpu_seconds),
        },
        "log_mb": round(log_bytes / 1e6, 2),
        **verified,
        "verify_store": {
            "events": whole.events,
            "checkpoints": whole.checkpoints_checked,
            "seconds": round(whole_s, 2),
            "cpu_seconds": round(whole_cpu, 2),
            "events_per_s": round(whole.events / whole_s, 1),
        },
    }


# --- 4. one million -------------------------------------------------------------------------


def measure_million(writer: StoreWriter, work: Path) -> dict[str, Any]:
    log(f"1M: topping the store up to {MILLION} events")
    writer.write_until(MILLION)
    plain = plain_read(writer.app, upto=MILLION)
    log(f"1M: plain read+decode {plain.total:.1f} s ({plain.read:.1f} s SQL)")
    target = work / "rebuilt-analytics-1m.duckdb"
    stages = run_rebuild(writer.app, "analytics", target, MILLION, upto=MILLION)
    size = target.stat().st_size
    remove_store(target)
    log(
        f"1M: rebuild_analytics {stages.total:.1f} s, {stages.workers} workers, "
        + ", ".join(f"{k} {v:.1f} s" for k, v in stages.parts().items())
    )
    one = run_rebuild(writer.app, "analytics_in_process", target, MILLION, upto=MILLION)
    remove_store(target)
    log(f"1M: rebuild_analytics in one process {one.total:.1f} s")
    return {
        "events": MILLION,
        "store": writer.summary(),
        "plain_read_decode_s": round(plain.total, 2),
        "plain_read_sql_s": round(plain.read, 2),
        "rebuild_analytics_s": round(stages.total, 2),
        "rebuild_analytics_cpu_s": round(stages.cpu, 2),
        "rebuild_analytics_stages_s": {k: round(v, 2) for k, v in stages.parts().items()},
        "rebuild_analytics_workers": stages.workers,
        "rebuild_analytics_in_process_s": round(one.total, 2),
        "analytics_file_mb": round(size / 1e6, 1),
    }


# --- diagnostics ----------------------------------------------------------------------------


def print_profile(profiler: cProfile.Profile, title: str, lines: int = 25) -> None:
    for order in ("tottime", "cumulative"):
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).strip_dirs().sort_stats(order).print_stats(lines)
        log(f"--- {title}, sorted by {order} ---")
        log(text.getvalue())


def diagnose(
    ticket_app: TicketingApplication,
    ticket: LongTicket,
    app: TicketingApplication,
    work: Path,
    events: int,
) -> None:
    half = ticket.events // 2
    for label, call in (
        (
            f"20 x ticket_as_of(version={half})",
            lambda: ticket_as_of(ticket_app, ticket.ticket_id, version=half),
        ),
        ("20 x history", lambda: history(ticket_app, ticket.ticket_id)),
    ):
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(20):
            call()
        profiler.disable()
        print_profile(profiler, label)
    upto = min(events, PROFILE_EVENTS)
    for kind in ("analytics", "queue"):
        target = work / f"profiled-{kind}{SUFFIX[kind]}"
        profiler = cProfile.Profile()
        profiler.enable()
        REBUILDERS[kind](app, target, upto_sequence=upto)
        profiler.disable()
        remove_store(target)
        print_profile(profiler, f"rebuild_{kind} of {upto} events")


# --- running --------------------------------------------------------------------------------


def run(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    load_before = machine_load()
    started = time.perf_counter()
    work = root / "work"
    work.mkdir()
    ticket_app = open_app(root / "ticket-store")
    app = open_app(root / "bulk-store")
    try:
        log(f"1. a {LONG_TICKET_EVENTS}-event ticket")
        ticket = write_long_ticket(ticket_app, LONG_TICKET_EVENTS)
        long_ticket = measure_long_ticket(ticket_app, ticket, args.repeats)

        log(f"2. writing {args.events} events")
        writer = StoreWriter(app, seed=args.seed)
        writer.write_until(args.events)
        written = writer.summary()
        log(
            f"  {written['published_events']} events, {written['command_records']} command "
            f"records, {written['tickets']} tickets in {written['write_seconds']} s"
        )
        bench = RebuildBench(app, work, writer.published)
        bench.run(args.rounds)
        rates = bench.summary()
        checkpoints = measure_checkpoints(writer, work, args.checkpoints)
        load_after = machine_load()

        extrapolated = {
            kind: round(MILLION / stats["events_per_s"], 1)
            for kind, stats in rates["rebuild"].items()
        }
        million: dict[str, Any] | None = None
        if not args.skip_million:
            million = measure_million(writer, work)
            load_after = machine_load()
        if args.profile:
            diagnose(ticket_app, ticket, app, work, args.events)
    finally:
        ticket_app.close()
        app.close()

    half = LONG_TICKET_EVENTS // 2
    million_s = million["rebuild_analytics_s"] if million else extrapolated["analytics"]
    aims = {
        "history_p50_ms": aim(AIM_REPLAY_MS, long_ticket["history"]["p50_ms"], False),
        "as_of_at_p50_ms": aim(AIM_REPLAY_MS, long_ticket["as_of_at_middle"]["p50_ms"], False),
        f"as_of_version_{half}_p50_ms": aim(
            AIM_REPLAY_MS, long_ticket[f"as_of_version_{half}"]["p50_ms"], False
        ),
        **{
            f"rebuild_{kind}_ratio": aim(AIM_RATIO, rates["rebuild"][kind]["ratio_vs_slower_plain"])
            for kind in ("queue", "analytics")
        },
        "million_rebuild_analytics_s": {
            **aim(AIM_MILLION_S, million_s, False),
            "basis": "measured" if million else "extrapolated",
        },
    }
    return {
        "benchmark": "replay",
        "store": "sqlite",
        "long_ticket": long_ticket,
        "events": args.events,
        "rounds": args.rounds,
        "written": written,
        **rates,
        "checkpoints": checkpoints,
        "million": {
            "extrapolated_s": extrapolated,
            "measured": million,
        },
        "aims": aims,
        "all_met": all(a["met"] for a in aims.values()),
        "wall_seconds": round(time.perf_counter() - started, 1),
        **run_context(load_before, load_after, "eventsourcing", "duckdb", "pyarrow"),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--events", type=int, default=200_000, help="published events to rebuild (200000)"
    )
    parser.add_argument("--rounds", type=int, default=2, help="rounds of (2), alternating (2)")
    parser.add_argument(
        "--repeats", type=int, default=20, help="timed calls per long-ticket operation (20)"
    )
    parser.add_argument("--seed", type=int, default=7, help="workload seed (7)")
    parser.add_argument(
        "--checkpoints",
        type=int,
        default=1440,
        help="incremental checkpoints after the first (1440: a day of minutely ones)",
    )
    parser.add_argument(
        "--skip-million", action="store_true", help="extrapolate 1M instead of rebuilding it"
    )
    parser.add_argument(
        "--smoke", action="store_true", help="tiny run for CI: 5000 events, 1 round, no 1M"
    )
    parser.add_argument(
        "--profile", action="store_true", help="also print diagnostics (cProfile) to stderr"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args(argv)
    if args.smoke:
        args.events, args.rounds, args.skip_million, args.checkpoints = 5000, 1, True, 20
    if min(args.events, args.rounds, args.repeats, args.checkpoints) < 1:
        parser.error("sizes must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    log(
        f"bench replay: {LONG_TICKET_EVENTS}-event ticket x {args.repeats}, rebuilds of "
        f"{args.events} events x {args.rounds} rounds, "
        f"{'1M extrapolated' if args.skip_million else '1M measured'}, SQLite"
    )
    with temporary_root("replay", keep=args.keep) as root:
        result = run(args, root)
    aims = result["aims"]
    log(
        ", ".join(
            f"{name} {a['value']} ({'met' if a['met'] else 'MISSED'}, aim {a['aim']})"
            for name, a in aims.items()
        )
    )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
