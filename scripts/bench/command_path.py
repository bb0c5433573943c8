"""Benchmark: ticket lifecycles through `CommandService.execute` against the plain-library ceiling.

Run as a file, never imported:

    .venv/bin/python scripts/bench/command_path.py                  # 300 lifecycles on SQLite
    .venv/bin/python scripts/bench/command_path.py --smoke          # 5 lifecycles, for CI
    .venv/bin/python scripts/bench/command_path.py --store postgres \
        --postgres-url postgresql://postgres@127.0.0.1:5432/test

What is measured, in one process and one run, on a durable store:

- **ours**: a full ticket lifecycle through `CommandService.execute` (open, categorize,
  prioritize, assign to an agent, public agent reply, set pending, customer reply, resolve,
  rate: 9 commands), one lifecycle after another. Each `execute` call is timed alone with
  `perf_counter_ns`; building the (already validated) pydantic command is not timed, and the
  account the tickets belong to is created before timing starts.
- **ceiling**: what the plain library does for the same number of commands: a minimal
  `Aggregate` with one event per command saved by a plain `eventsourcing.application.Application`
  on the same kind of store (create + save, then 8 x repository.get + one event + save), with
  the library's defaults throughout.

`commands_per_s` is commands divided by the summed per-command latencies; p50/p99 are
nearest-rank percentiles of those latencies. `ratio` is ours/ceiling commands per second;
the aim is 0.7. One JSON object goes to stdout, progress to stderr.

**long_ticket**: a command on a ticket with `--long-events` (1,000) events against the same
command on a new ticket, in the same run and store. The long ticket is a support conversation
written straight through the aggregate (untimed): mostly public and internal comments of
~120 characters, with status moves, tags, reassignments and SLA warnings between them. Then
both sides alternate one command each (`--long-commands`, 100), flipping who goes first: an
internal note (one event) on the long ticket, and the same note on a ticket opened (untimed)
just before. The long ticket keeps growing, so its commands cross snapshot intervals and pay
for the snapshots they write. `ratio` is the long side's mean latency over the new side's
(aim <= 1.5). `without_snapshots` times a few commands on the same long ticket with
snapshotting off (every load replays the whole ticket), for comparison.

Why the runs are interleaved: absolute rates on our shared machines drift 2-4x within minutes,
even within seconds (neighbours, CPU frequency, the disk's and PostgreSQL's fsync queues; one
75-lifecycle slice of the ceiling on PostgreSQL once ran at 160 commands/s between slices at
430-540). Measuring all of "ours" and then all of the ceiling lets such a dip land on one side
only and swings the ratio, the number we care about, between 0.45 and 0.97 on identical code.
So both sides run at the same time, lifecycle by lifecycle: in each round both get a fresh
store of their own (a new temporary directory, or a new PostgreSQL schema dropped afterwards)
and a few untimed warm-up lifecycles (connections, first-use costs), then they alternate one
lifecycle each, flipping who goes first every lifecycle (ours, ceiling, ceiling, ours, ...) so
neither side always follows the other's fsync. A dip then costs both sides alike. `--rounds`
splits the lifecycles over several fresh store pairs (default 2) so that neither store grows
much bigger than the other; the latencies of all rounds are pooled.

The ceiling's aggregate class is defined here, in `__main__`, so its stored topics are
`__main__:...`; that is fine because the same process writes and reads them and the store is
thrown away afterwards (it would not load from another process).

SQLite files go under the system temporary directory (set TMPDIR to measure another disk; a
tmpfs would make fsync free and the numbers meaningless for durability).
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import json
import os
import platform
import pstats
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from importlib.metadata import version
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate

from commands import models as m
from commands.command_log import ticket_id_for
from commands.replies import Reply
from ticketing.domain.ticket import Ticket
from ticketing.domain.values import (
    Actor,
    ActorKind,
    Priority,
    SlaTier,
    Status,
    Visibility,
)
from ticketing.runtime.bootstrap import build_command_service
from ticketing.settings import Settings

AIM = 0.7
LONG_TICKET_AIM = 1.5
COMMANDS_PER_LIFECYCLE = 9
ACCOUNT_ID = "acme"
CUSTOMER = m.ActorModel(kind=ActorKind.CUSTOMER, id="bob")
AGENT = m.ActorModel(kind=ActorKind.AGENT, id="ana")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- stores ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Store:
    """Where a measurement writes: a fresh SQLite directory or a fresh PostgreSQL schema."""

    kind: str
    postgres_url: str | None = None

    @contextlib.contextmanager
    def fresh(self) -> Iterator[tuple[Settings, dict[str, str]]]:
        """A new empty store: the project's settings and the plain library's env for it."""
        if self.kind == "sqlite":
            home = Path(tempfile.mkdtemp(prefix="bench-commands-"))
            try:
                env = {
                    "PERSISTENCE_MODULE": "eventsourcing.sqlite",
                    "SQLITE_DBNAME": str(home / "ceiling.sqlite"),
                }
                yield Settings(home=home), env
            finally:
                shutil.rmtree(home, ignore_errors=True)
            return
        assert self.postgres_url is not None
        schema = f"bench_{uuid.uuid4().hex[:12]}"
        self._psql("CREATE SCHEMA {}", schema)
        try:
            settings = Settings(
                event_store="postgres", postgres_url=self.postgres_url, postgres_schema=schema
            )
            yield settings, {"PERSISTENCE_MODULE": "eventsourcing.postgres", **self._pg_env(schema)}
        finally:
            self._psql("DROP SCHEMA IF EXISTS {} CASCADE", schema)

    def _psql(self, statement: str, schema: str) -> None:
        import psycopg  # only needed for --store postgres
        from psycopg import sql

        query = sql.SQL(statement).format(sql.Identifier(schema))
        with psycopg.connect(self.postgres_url or "", connect_timeout=5, autocommit=True) as conn:
            conn.execute(query)

    def _pg_env(self, schema: str) -> dict[str, str]:
        url = urlsplit(self.postgres_url or "")
        return {
            "POSTGRES_DBNAME": unquote(url.path.strip("/")),
            "POSTGRES_HOST": url.hostname or "127.0.0.1",
            "POSTGRES_PORT": str(url.port or 5432),
            "POSTGRES_USER": unquote(url.username or "postgres"),
            "POSTGRES_PASSWORD": unquote(url.password or ""),
            "POSTGRES_CONNECT_TIMEOUT": "5",
            "POSTGRES_SCHEMA": schema,
        }


# --- ours: the command service --------------------------------------------------------------


def lifecycle_commands(number: int) -> list[m.Command]:
    """One ticket from opening to a rating, as a support team would drive it."""
    open_ticket = m.OpenTicket(
        account_id=ACCOUNT_ID,
        requester="bob@acme.example",
        subject=f"VPN drops every hour ({number})",
        description="Since Monday the VPN client disconnects roughly once an hour.",
        actor=CUSTOMER,
    )
    ticket_id = ticket_id_for(open_ticket.command_id)
    return [
        open_ticket,
        m.CategorizeTicket(ticket_id=ticket_id, category="technical", actor=AGENT),
        m.PrioritizeTicket(ticket_id=ticket_id, priority=Priority.HIGH, actor=AGENT),
        m.AssignTicket(ticket_id=ticket_id, team="tier1", agent="ana", actor=AGENT),
        m.AddComment(
            ticket_id=ticket_id,
            body="Could you send the client logs from the last disconnect?",
            visibility=Visibility.PUBLIC,
            actor=AGENT,
        ),
        m.ChangeStatus(
            ticket_id=ticket_id, status=Status.PENDING, reason="waiting for logs", actor=AGENT
        ),
        m.AddComment(ticket_id=ticket_id, body="Logs attached, thanks.", actor=CUSTOMER),
        m.ResolveTicket(ticket_id=ticket_id, resolution="Upgraded the VPN client", actor=AGENT),
        m.RateTicket(ticket_id=ticket_id, score=5, comment="Quick and clear", actor=CUSTOMER),
    ]


class Ours:
    """The command service on a fresh store, with the account its tickets belong to."""

    name = "ours"

    def __init__(self, settings: Settings) -> None:
        self.service = build_command_service(settings)
        self.latencies: list[int] = []
        account = m.CreateAccount(account_id=ACCOUNT_ID, account_name="Acme", tier=SlaTier.BUSINESS)
        self._check(account, self.service.execute(account))

    def lifecycle(self, number: int, *, timed: bool = True) -> None:
        times: list[int] = []
        for command in lifecycle_commands(number):
            start = time.perf_counter_ns()
            reply = self.service.execute(command)
            times.append(time.perf_counter_ns() - start)
            self._check(command, reply)
        if timed:
            self.latencies.extend(times)

    def close(self) -> None:
        self.service.app.close()

    @staticmethod
    def _check(command: m.Command, reply: Reply) -> None:
        if not reply.ok:
            raise RuntimeError(f"{command.name} failed: {reply.to_json()}")


# --- ceiling: the plain library -------------------------------------------------------------


class BenchTicket(Aggregate):
    """The least an event-sourced ticket can be: one small event per command."""

    class Opened(Aggregate.Created):
        subject: str

    class Changed(Aggregate.Event):
        key: str
        value: str

        def apply(self, aggregate: Any) -> None:
            aggregate.fields[self.key] = self.value

    def __init__(self, subject: str) -> None:
        self.subject = subject
        self.fields: dict[str, str] = {}


CEILING_CHANGES = (
    ("category", "technical"),
    ("priority", "high"),
    ("agent", "ana"),
    ("comment", "Could you send the client logs from the last disconnect?"),
    ("status", "pending"),
    ("comment", "Logs attached, thanks."),
    ("status", "solved"),
    ("rating", "5"),
)


class Ceiling:
    """A plain `Application` on a fresh store, doing the same number of commands."""

    name = "ceiling"

    def __init__(self, env: dict[str, str]) -> None:
        self.app: Application[Any] = Application(env=env)
        self.latencies: list[int] = []

    def lifecycle(self, number: int, *, timed: bool = True) -> None:
        app = self.app
        times: list[int] = []
        start = time.perf_counter_ns()
        ticket = BenchTicket._create(
            BenchTicket.Opened, id=uuid.uuid4(), subject=f"VPN drops every hour ({number})"
        )
        app.save(ticket)
        times.append(time.perf_counter_ns() - start)
        for key, value in CEILING_CHANGES:
            start = time.perf_counter_ns()
            loaded: BenchTicket = app.repository.get(ticket.id)
            loaded.trigger_event(BenchTicket.Changed, key=key, value=value)
            app.save(loaded)
            times.append(time.perf_counter_ns() - start)
        if loaded.version != COMMANDS_PER_LIFECYCLE:
            raise RuntimeError(f"ceiling ticket at version {loaded.version}")
        if timed:
            self.latencies.extend(times)

    def close(self) -> None:
        self.app.close()


# --- long tickets: a command on a 1,000-event ticket against one on a new ticket -------------

LONG_BODY = "Tried again after the client update; the tunnel still drops after about an hour ({n})."


def long_conversation(events: int) -> Ticket:
    """A ticket with `events` events, built through the aggregate as a long support thread."""
    customer, agent = Actor(ActorKind.CUSTOMER, "bob"), Actor(ActorKind.AGENT, "ana")
    start = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    ticket = Ticket.open(
        account_id=ACCOUNT_ID,
        account_tier="business",
        requester="bob@acme.example",
        subject="VPN drops every hour (long thread)",
        actor=customer,
        at=start,
    )
    step = 0
    while ticket.version < events:
        step += 1
        at = start + timedelta(minutes=step)
        remaining = events - ticket.version
        kind = step % 20
        if kind == 5 and remaining >= 2:
            target = Status.PENDING if ticket.status is not Status.PENDING else Status.OPEN
            ticket.change_status(target, actor=agent, reason="waiting", at=at)
        elif kind == 10 and remaining >= 2:
            ticket.tag([f"seen-{step}"], actor=agent, at=at)
        elif kind == 15 and remaining >= 3:
            ticket.assign(team="tier2" if step % 40 else "tier1", agent="ana", actor=agent, at=at)
        elif kind == 19:
            ticket.record_sla_warning(
                metric="next_reply", cycle=step, due_at=at, threshold=0.8, actor=agent, at=at
            )
        else:
            author = customer if step % 3 == 0 else agent
            visibility = Visibility.PUBLIC if step % 4 else Visibility.INTERNAL
            if author is customer:
                visibility = Visibility.PUBLIC
            ticket.add_comment(LONG_BODY.format(n=step), actor=author, visibility=visibility, at=at)
    return ticket


def note(ticket_id: uuid.UUID, number: int) -> m.AddComment:
    return m.AddComment(
        ticket_id=ticket_id,
        body=f"Checked the gateway logs again ({number}).",
        visibility=Visibility.INTERNAL,
        actor=AGENT,
    )


def timed(service: Any, command: m.Command) -> int:
    start = time.perf_counter_ns()
    reply = service.execute(command)
    elapsed = time.perf_counter_ns() - start
    Ours._check(command, reply)
    return elapsed


def run_long_ticket(store: Store, events: int, commands: int, unsnapshotted: int) -> dict[str, Any]:
    """Mean latency of a command on a long ticket over the same command on a new ticket."""
    with store.fresh() as (settings, _):
        ours = Ours(settings)
        app = ours.service.app
        try:
            long_ticket = long_conversation(events)
            pending = long_ticket.collect_events()
            for first in range(0, len(pending), 250):  # a history import's batch size
                app.save(*pending[first : first + 250])
            new_latencies: list[int] = []
            long_latencies: list[int] = []
            for number in range(-1, commands):
                opened = lifecycle_commands(number)[0]
                Ours._check(opened, ours.service.execute(opened))
                new_ticket = ticket_id_for(opened.command_id)
                pair = [
                    (new_latencies, note(new_ticket, number)),
                    (long_latencies, note(long_ticket.id, number)),
                ]
                for latencies, command in pair if number % 2 else pair[::-1]:
                    elapsed = timed(ours.service, command)
                    if number >= 0:  # the first pair warms up (and snapshots the long ticket)
                        latencies.append(elapsed)
            final_version = ours.service.load_ticket(long_ticket.id).version
            interval = app.snapshot_interval
        finally:
            ours.close()
        replayed: list[int] = []
        if unsnapshotted:
            plain = build_command_service(
                replace(settings, extra_env={**settings.extra_env, "IS_SNAPSHOTTING_ENABLED": "n"})
            )
            try:
                replayed = [
                    timed(plain, note(long_ticket.id, 10_000 + n)) for n in range(unsnapshotted)
                ]
            finally:
                plain.app.close()
    new, long = summary(new_latencies), summary(long_latencies)
    ratio = (sum(long_latencies) / len(long_latencies)) / (sum(new_latencies) / len(new_latencies))
    result: dict[str, Any] = {
        "events": events,
        "commands": commands,
        "final_version": final_version,
        "snapshot_interval": interval,
        "new": new,
        "long": long,
        "ratio": round(ratio, 3),
        "aim": LONG_TICKET_AIM,
        "met": ratio <= LONG_TICKET_AIM,
    }
    if replayed:
        result["without_snapshots"] = summary(replayed)
    without = f"; without snapshots {summary(replayed)['mean_ms']:.2f} ms" if replayed else ""
    log(
        f"long ticket ({events} events, snapshot every {interval}): "
        f"{long['mean_ms']:.2f} ms vs new ticket {new['mean_ms']:.2f} ms per command, "
        f"ratio {ratio:.2f} (aim <= {LONG_TICKET_AIM}){without}"
    )
    return result


# --- running and reporting ------------------------------------------------------------------


def percentile_ms(ordered: list[int], fraction: float) -> float:
    """Nearest-rank percentile of sorted nanosecond latencies, in milliseconds."""
    rank = max(1, round(fraction * len(ordered) + 0.5))
    return ordered[min(rank, len(ordered)) - 1] / 1e6


def summary(latencies: list[int]) -> dict[str, float]:
    ordered = sorted(latencies)
    return {
        "commands_per_s": round(len(ordered) / (sum(ordered) / 1e9), 1),
        "mean_ms": round(sum(ordered) / len(ordered) / 1e6, 3),
        "p50_ms": round(percentile_ms(ordered, 0.50), 3),
        "p99_ms": round(percentile_ms(ordered, 0.99), 3),
    }


def split(total: int, parts: int) -> list[int]:
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def run(store: Store, lifecycles: int, rounds: int, warmup: int) -> dict[str, Any]:
    ours_latencies: list[int] = []
    ceiling_latencies: list[int] = []
    slices = [n for n in split(lifecycles, rounds) if n > 0]
    for index, count in enumerate(slices):
        with store.fresh() as (settings, _), store.fresh() as (_, env):
            ours, ceiling = Ours(settings), Ceiling(env)
            try:
                for number in range(warmup):
                    ours.lifecycle(-1 - number, timed=False)
                    ceiling.lifecycle(-1 - number, timed=False)
                for number in range(count):
                    pair = (ours, ceiling) if number % 2 == 0 else (ceiling, ours)
                    for side in pair:
                        side.lifecycle(number)
            finally:
                ours.close()
                ceiling.close()
        for side in (ours, ceiling):
            stats = summary(side.latencies)
            log(
                f"round {index + 1}/{len(slices)} {side.name:7}: {count} lifecycles, "
                f"{stats['commands_per_s']:.0f} commands/s, p50 {stats['p50_ms']:.2f} ms, "
                f"p99 {stats['p99_ms']:.2f} ms"
            )
        ours_latencies.extend(ours.latencies)
        ceiling_latencies.extend(ceiling.latencies)
    ours_stats, ceiling_stats = summary(ours_latencies), summary(ceiling_latencies)
    return {
        "benchmark": "commands",
        "store": store.kind,
        "lifecycles": lifecycles,
        "commands": lifecycles * COMMANDS_PER_LIFECYCLE,
        "rounds": len(slices),
        "ours": ours_stats,
        "ceiling": ceiling_stats,
        "ratio": round(ours_stats["commands_per_s"] / ceiling_stats["commands_per_s"], 3),
        "aim": AIM,
        "python": platform.python_version(),
        "eventsourcing": version("eventsourcing"),
    }


def profile_ours(store: Store, lifecycles: int, warmup: int) -> None:
    """cProfile one extra (unreported) run of ours; the top functions go to stderr."""
    with store.fresh() as (settings, _):
        ours = Ours(settings)
        try:
            for number in range(warmup):
                ours.lifecycle(-1 - number, timed=False)
            profiler = cProfile.Profile()
            profiler.enable()
            for number in range(lifecycles):
                ours.lifecycle(number)
            profiler.disable()
        finally:
            ours.close()
    for order in ("cumulative", "tottime"):
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).strip_dirs().sort_stats(order).print_stats(30)
        log(f"--- profile of ours, {lifecycles} lifecycles, sorted by {order} ---")
        log(text.getvalue())


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--lifecycles", type=int, default=300, help="tickets per side (300)")
    parser.add_argument("--smoke", action="store_true", help="tiny run for CI: 5 lifecycles")
    parser.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("TICKETING_TEST_POSTGRES_URL"),
        help="default: $TICKETING_TEST_POSTGRES_URL",
    )
    parser.add_argument(
        "--rounds", type=int, default=2, help="fresh store pairs the lifecycles are split over (2)"
    )
    parser.add_argument(
        "--warmup", type=int, default=2, help="untimed lifecycles per measurement (2)"
    )
    parser.add_argument(
        "--profile", action="store_true", help="also cProfile ours and print it to stderr"
    )
    parser.add_argument(
        "--long-events", type=int, default=1000, help="events on the long ticket (1000)"
    )
    parser.add_argument(
        "--long-commands",
        type=int,
        default=100,
        help="timed commands per side, long ticket vs new ticket (100)",
    )
    parser.add_argument(
        "--unsnapshotted",
        type=int,
        default=5,
        help="commands on the long ticket with snapshotting off, for comparison (5)",
    )
    args = parser.parse_args(argv)
    if args.smoke:
        args.lifecycles, args.rounds, args.warmup = 5, 1, 1
        args.long_commands, args.unsnapshotted = 5, 1
    if args.lifecycles < 1 or args.rounds < 1 or args.warmup < 0:
        parser.error("--lifecycles and --rounds must be positive, --warmup not negative")
    if args.long_events < 2 or args.long_commands < 1 or args.unsnapshotted < 0:
        parser.error("--long-events must be at least 2, --long-commands positive")
    if args.store == "postgres" and not args.postgres_url:
        parser.error("--store postgres needs --postgres-url or TICKETING_TEST_POSTGRES_URL")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    store = Store(args.store, args.postgres_url if args.store == "postgres" else None)
    log(
        f"bench commands: {args.lifecycles} lifecycles x {COMMANDS_PER_LIFECYCLE} commands "
        f"per side on {args.store}, {args.rounds} interleaved rounds, {args.warmup} warm-up"
    )
    result = run(store, args.lifecycles, args.rounds, args.warmup)
    log(
        f"ratio {result['ratio']:.3f} (aim {AIM}): ours {result['ours']['commands_per_s']:.0f}"
        f" vs ceiling {result['ceiling']['commands_per_s']:.0f} commands/s"
    )
    result["long_ticket"] = run_long_ticket(
        store, args.long_events, args.long_commands, args.unsnapshotted
    )
    if args.profile:
        profile_ours(store, min(args.lifecycles, 100), args.warmup)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
