"""Benchmark: SLA — the SLA monitor's fold and judging, and the cost of the SLA columns in the
queue and analytics projectors, each next to the plain layer below it.

Run as a file, never imported:

    .venv/bin/python scripts/bench/sla.py                  # 2,000 tickets (~8 events each)
    .venv/bin/python scripts/bench/sla.py --smoke          # 300 tickets, 1 round, for CI
    .venv/bin/python scripts/bench/sla.py --tickets 5000 --rounds 1

Everything happens in one fresh temporary directory, removed afterwards (`--keep` keeps it).
The default size is small on purpose: the analytics projector with SLA columns ran at a few
hundred events/s here (2026-11), slower as its tables grow, and 2,000 tickets x 2 rounds keep
the whole run within about three minutes on a 2-core machine.

The history: two durable SQLite event stores (`ticketing.runtime.bootstrap.build_command_service`)
receive the same `--tickets` ticket stories through `CommandService.execute_many` (waves of
128 tickets, one command per ticket per group, as `projectors.py` writes them): three accounts
(standard, business, enterprise), then tickets opened over eight weeks from Monday
2026-01-05 with explicit `occurred_at`s and random priorities, answered by an agent (the
first public reply also opens the ticket), sometimes re-prioritised or set pending while
waiting on the customer, answered by the customer (which reopens a pending ticket), answered
again and mostly resolved and sometimes closed; some stop early unanswered or waiting on
us, so their clocks breach. In the **policy** store the calendar and the policy of
`mappings/sla.example.toml` (Europe/Berlin office hours, targets per tier x priority) are
published first (`PublishCalendar`, `PublishSlaPolicy`, dated 30 days before the first
ticket), so every ticket is opened pinned to them (`SlaPolicyApplied`); the **plain** store
gets the same commands without any policy. Both stores are read back once, untimed, with
`replay.stream.stream_batches(app)` into lists of `StreamEvent`s (then frozen out of the
garbage collector's way, as the projectors bench does).

What is measured, in `--rounds` rounds (every second one in reverse order, so drift of the
shared machine lands on both sides of each comparison):

1. **SLA monitor fold**, on the policy store's events: events/s of
   `AutomationStore(path, SlaMonitor(settle_seconds=0)).apply` in batches of 1,000 into a
   fresh SQLite file, next to
   - `noop_worker_store` (the ceiling): the same batches through an `AutomationStore` whose
     worker has no schema and folds nothing, i.e. the runtime's own position and outbox
     transaction per batch; `fold_cost_us_per_event` is the difference;
   - `pure_fold` (information): `SlaCatalog.add` / `TicketSla.add` over the same payloads
     into dicts in memory, no SQL and no JSON.
2. **SLA monitor judging**: right after its fold, the same monitor store's
   `tick(now)` is called until it finds nothing due, at a `now` 90 days after the last
   event (every deadline has passed: each ticket is judged once, its breaches and warnings
   go to the outbox). Tickets judged/s, next to the ceiling `TicketSla.report(catalog, now)`
   (`SlaClock(policy).evaluate(entries, now=now)`) over the in-memory timelines of the pure
   fold. `in_memory_due_actions_and_wakeup` (information) is what the tick does per ticket
   without SQL and JSON (`TicketSla.judge`: one evaluation). The outbox must
   hold exactly the actions the in-memory `judge` gives.
3. **projector overhead of the SLA columns**: events/s of `QueueStore.apply` (batches of
   1,000, fresh SQLite file) and of `AnalyticsStore.apply` (batches of 5,000, fresh DuckDB
   file) over the policy store's events and over the plain store's. `ratio_with_vs_without`
   = events/s with / events/s without; the policy history has one more event per ticket
   (`SlaPolicyApplied`) plus two catalog events, so `ratio_per_ticket` (seconds without /
   seconds with) is the like-for-like one. Note that the shared SLA fold
   (`projections.sla_fold`) keeps each ticket's timeline even without a policy; the
   difference is the clock evaluation and the queue / analytics SLA rows.

Rates are pooled over the rounds (`runs_*` per round); `cpu_*` counts this process's CPU
time (what neighbours cannot stretch). One JSON object goes to stdout, progress to stderr,
with the load average and CPU pressure before and after.

SQLite and DuckDB files go under the system temporary directory (set TMPDIR to measure
another disk).
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import sqlite3
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchkit import (
    chunks,
    execute_checked,
    log,
    machine_load,
    run_context,
    temporary_root,
)

from commands import models as m
from commands.command_log import ticket_id_for
from commands.policy_publishing import publish_commands
from projections.analytics.store import AnalyticsStore
from projections.queue.store import QueueStore
from projections.stream_event import StreamEvent
from replay.stream import stream_batches
from ticketing.domain.events import AGGREGATE_KIND_OF
from ticketing.domain.values import ActorKind, Priority, SlaTier, Status
from ticketing.runtime.bootstrap import build_command_service
from ticketing.settings import Settings
from ticketing.sla.catalog import SlaCatalog
from ticketing.sla.policy_file import load_policy_file
from ticketing.sla.timeline import TicketSla
from ticketing.workers.outbox import Action, AutomationStore, iso
from ticketing.workers.sla_monitor import SlaMonitor

POLICY_FILE = Path(__file__).resolve().parents[2] / "mappings" / "sla.example.toml"
GROUP = 128  # tickets per wave (distinct aggregates per execute_many group)
MONITOR_BATCH = 1000  # as `ticketing run sla-monitor` (the Projector default)
QUEUE_BATCH = 1000  # as `ticketing run queue-projector`
ANALYTICS_BATCH = 5000  # as `ticketing run analytics-projector`
START = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)  # a Monday
SPAN = timedelta(weeks=8)  # tickets are opened evenly over this
JUDGE_AFTER = timedelta(days=90)  # `now` of the judging, after the last event
ACCOUNTS = (
    ("acme", "Acme", SlaTier.ENTERPRISE),
    ("globex", "Globex", SlaTier.BUSINESS),
    ("initech", "Initech", SlaTier.STANDARD),
)
PRIORITIES = (Priority.LOW, Priority.NORMAL, Priority.NORMAL, Priority.HIGH, Priority.URGENT)
AGENT = m.ActorModel(kind=ActorKind.AGENT, id="ana")
SYSTEM = m.ActorModel(kind=ActorKind.SYSTEM, id="sla-bench")


# --- writing the two event stores ----------------------------------------------------------


def ticket_story(rng: random.Random, number: int, opened_at: datetime) -> list[m.Command]:
    """One ticket's commands, oldest first, with explicit historical times."""
    open_id = f"sla-bench-{number}"
    ticket_id = ticket_id_for(open_id)
    account_id = rng.choice(ACCOUNTS)[0]
    customer = m.ActorModel(kind=ActorKind.CUSTOMER, id=f"{account_id}-user{rng.randint(1, 9)}")
    at = opened_at
    story: list[m.Command] = [
        m.OpenTicket(
            command_id=open_id,
            account_id=account_id,
            requester=f"{customer.id}@{account_id}.example",
            subject="The export keeps failing",
            priority=rng.choice(PRIORITIES),
            actor=customer,
            occurred_at=at,
        )
    ]

    def then(minutes: tuple[float, float], command: type[m.TicketCommand], **fields: Any) -> None:
        nonlocal at
        at += timedelta(minutes=rng.uniform(*minutes))
        command_id = f"{open_id}-{len(story)}"
        story.append(command(ticket_id=ticket_id, command_id=command_id, occurred_at=at, **fields))

    if rng.random() < 0.08:
        return story  # never answered: the first reply breaches
    then((5, 2880), m.AddComment, body="Thanks for reporting this. Looking into it.", actor=AGENT)
    if rng.random() < 0.2:
        then((1, 60), m.PrioritizeTicket, priority=rng.choice(PRIORITIES), actor=AGENT)
    if rng.random() < 0.4:
        then((1, 30), m.ChangeStatus, status=Status.PENDING, reason="asked for logs", actor=AGENT)
    then((30, 4320), m.AddComment, body="Here are the details you asked for.", actor=customer)
    if rng.random() < 0.08:
        return story  # waiting on us: the next reply breaches
    then((10, 2880), m.AddComment, body="Deployed a fix, please check.", actor=AGENT)
    if rng.random() < 0.85:
        then((1, 120), m.ResolveTicket, resolution="Fixed and verified.", actor=AGENT)
        if rng.random() < 0.5:
            then((1440, 4320), m.CloseTicket, actor=SYSTEM)
    return story


def ticket_stories(tickets: int, seed: int) -> list[list[m.Command]]:
    rng = random.Random(seed)
    return [ticket_story(rng, n, START + SPAN * n / tickets) for n in range(tickets)]


def write_store(home: Path, stories: list[list[m.Command]], with_policy: bool) -> dict[str, Any]:
    """Accounts, the policy (or none), then the stories in waves of GROUP tickets: each group
    holds the next command of every ticket of the wave, so per-ticket order holds and no group
    repeats an aggregate."""
    service = build_command_service(Settings(home=home))
    types: Counter[str] = Counter()
    start = time.perf_counter()
    try:
        setup: list[m.Command] = [
            m.CreateAccount(
                account_id=account_id,
                account_name=name,
                tier=tier,
                actor=SYSTEM,
                occurred_at=START - timedelta(days=60),
            )
            for account_id, name, tier in ACCOUNTS
        ]
        if with_policy:
            in_force = START - timedelta(days=30)
            setup += publish_commands(load_policy_file(POLICY_FILE), SYSTEM, in_force)
        for command in setup:  # one at a time: the policy names its calendar
            types.update(e["type"] for e in execute_checked(service, [command])[0].events)
        for wave_start in range(0, len(stories), GROUP):
            wave = stories[wave_start : wave_start + GROUP]
            for step in range(max(len(story) for story in wave)):
                group = [story[step] for story in wave if step < len(story)]
                for reply in execute_checked(service, group):
                    types.update(e["type"] for e in reply.events)
    finally:
        service.app.close()
    seconds = time.perf_counter() - start
    total = sum(types.values())
    log(f"  {home.name}: {total} events in {seconds:.1f} s ({total / seconds:.0f}/s)")
    return {
        "events": total,
        "write_seconds": round(seconds, 1),
        "write_events_per_s": round(total / seconds, 1),
        "event_types": dict(types.most_common()),
    }


def read_store(home: Path) -> list[StreamEvent]:
    """The store as the stream the projectors and the monitor see, numbered 1, 2, 3…"""
    service = build_command_service(Settings(home=home))
    try:
        return [event for batch in stream_batches(service.app) for event in batch]
    finally:
        service.app.close()


# --- timing --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    count: int
    wall: float
    cpu: float


def timed(work: Callable[[], int]) -> Run:
    """Wall-clock and CPU time of `work`, which returns how many things it did."""
    begin, begin_cpu = time.perf_counter(), time.process_time()
    count = work()
    return Run(count, time.perf_counter() - begin, time.process_time() - begin_cpu)


@dataclass
class Series:
    """One measurement's runs over the rounds, pooled."""

    runs: list[Run] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return sum(r.count for r in self.runs) / sum(r.wall for r in self.runs)

    @property
    def seconds(self) -> float:
        return sum(r.wall for r in self.runs) / len(self.runs)

    def summary(self, unit: str) -> dict[str, Any]:
        return {
            f"{unit}_per_s": round(self.rate, 1),
            f"runs_{unit}_per_s": [round(r.count / r.wall, 1) for r in self.runs],
            f"cpu_{unit}_per_s": round(
                sum(r.count for r in self.runs) / sum(r.cpu for r in self.runs), 1
            ),
            "seconds_per_run": round(self.seconds, 3),
        }


def ratio(numerator: float, denominator: float) -> float:
    return round(numerator / denominator, 3)


# --- the measurements ----------------------------------------------------------------------


class NoopWorker:
    """A worker with no tables that folds nothing: `AutomationStore.apply` then costs only
    the runtime's own transaction (position read, outbox insert of nothing, position write)."""

    name = "noop"
    schema = ""

    def fold(self, events: Sequence[StreamEvent], db: sqlite3.Connection) -> list[Action]:
        return []

    def tick(self, db: sqlite3.Connection, now: datetime) -> list[Action]:
        return []


def apply_batches(store: Any, events: Sequence[StreamEvent], size: int) -> int:
    for batch in chunks(events, size):
        store.apply(batch)
    if store.position() != events[-1].sequence:
        raise RuntimeError(f"{type(store).__name__} stopped at {store.position()}")
    return len(events)


def pure_fold(events: Sequence[StreamEvent]) -> tuple[SlaCatalog, dict[str, TicketSla]]:
    """The monitor's fold without SQL and JSON: the catalog and each ticket's SLA state."""
    catalog = SlaCatalog()
    tickets: dict[str, TicketSla] = {}
    for event in events:
        payload = event.payload
        if catalog.add(payload):
            continue
        if AGGREGATE_KIND_OF.get(payload.get("type", "")) != "ticket":
            continue
        ticket_id = str(payload["aggregate_id"])
        state = tickets.get(ticket_id)
        if state is None:
            state = tickets[ticket_id] = TicketSla()
        state.add(payload)
    return catalog, tickets


@dataclass
class Bench:
    """The rounds: every measurement on the same events, alternating their order."""

    work: Path
    with_policy: list[StreamEvent]
    without_policy: list[StreamEvent]
    now: datetime
    series: dict[str, Series] = field(default_factory=dict)
    checks: dict[str, Any] = field(default_factory=dict)

    def record(self, name: str, run: Run, unit: str) -> None:
        self.series.setdefault(name, Series()).runs.append(run)
        log(f"  {name}: {run.count / run.wall:.0f} {unit}/s ({run.wall:.2f} s)")

    def fresh(self, name: str) -> Path:
        path = self.work / name
        for stale in self.work.glob(f"{name}*"):
            stale.unlink()
        return path

    def monitor(self) -> None:
        store = AutomationStore(self.fresh("sla-monitor.sqlite"), SlaMonitor(settle_seconds=0))
        try:
            fold = timed(lambda: apply_batches(store, self.with_policy, MONITOR_BATCH))
            self.record("sla_monitor_fold", fold, "events")
            ticks = 0

            def judge_all() -> int:
                nonlocal ticks
                judged = store.db.execute("SELECT count(*) FROM sla_tickets").fetchone()[0]
                while store.tick(self.now):
                    ticks += 1
                    if ticks > judged // 1000 + 10:
                        raise RuntimeError("the monitor keeps finding tickets due")
                return int(judged)

            judge = timed(judge_all)
            self.record("sla_monitor_tick", judge, "tickets")
            left = store.db.execute(
                "SELECT count(*) FROM sla_tickets WHERE check_at IS NOT NULL AND check_at <= ?",
                (iso(self.now),),
            ).fetchone()[0]
            kinds = dict(
                store.db.execute(
                    "SELECT CASE WHEN key LIKE 'sla:%:breach:%' THEN 'breach' ELSE 'warning' END, "
                    "count(*) FROM outbox GROUP BY 1"
                ).fetchall()
            )
            self.checks["monitor"] = {
                "tickets": judge.count,
                "ticks": ticks + 1,
                "due_after_judging": left,
                "outbox": kinds,
            }
        finally:
            store.close()

    def noop(self) -> None:
        store = AutomationStore(self.fresh("noop.sqlite"), NoopWorker())
        try:
            run = timed(lambda: apply_batches(store, self.with_policy, MONITOR_BATCH))
            self.record("noop_worker_store", run, "events")
        finally:
            store.close()

    def pure(self) -> None:
        folded: list[tuple[SlaCatalog, dict[str, TicketSla]]] = []

        def fold() -> int:
            folded.append(pure_fold(self.with_policy))
            return len(self.with_policy)

        self.record("pure_fold", timed(fold), "events")
        catalog, tickets = folded[0]
        states = list(tickets.values())

        def report() -> int:
            return sum(1 for s in states if s.report(catalog, self.now) is not None)

        self.record("pure_report", timed(report), "tickets")
        actions: Counter[str] = Counter()

        def due() -> int:
            for state in states:
                actions.update(a.kind for a in state.judge(catalog, self.now).due)
            return len(states)

        self.record("pure_due_actions_and_wakeup", timed(due), "tickets")
        self.checks["in_memory"] = {
            "tickets": len(states),
            "pinned": sum(1 for s in states if s.pin is not None),
            "due_actions": dict(actions),
        }

    def projector(self, kind: str, policy: bool) -> None:
        events = self.with_policy if policy else self.without_policy
        name = f"{kind}_{'with' if policy else 'without'}_policy"
        if kind == "queue":
            queue = QueueStore(self.fresh(f"{name}.sqlite"))
            try:
                run = timed(lambda: apply_batches(queue, events, QUEUE_BATCH))
            finally:
                queue.close()
        else:
            analytics = AnalyticsStore(self.fresh(f"{name}.duckdb"))
            try:
                run = timed(lambda: apply_batches(analytics, events, ANALYTICS_BATCH))
            finally:
                analytics.close()
        self.record(name, run, "events")

    def run(self, rounds: int) -> None:
        steps: list[Callable[[], None]] = [
            self.monitor,
            self.noop,
            self.pure,
            lambda: self.projector("queue", True),
            lambda: self.projector("queue", False),
            lambda: self.projector("analytics", True),
            lambda: self.projector("analytics", False),
        ]
        for number in range(rounds):
            log(f"round {number + 1}/{rounds}")
            for step in steps if number % 2 == 0 else steps[::-1]:
                step()
        monitor, in_memory = self.checks["monitor"], self.checks["in_memory"]
        if monitor["outbox"] != in_memory["due_actions"] or monitor["due_after_judging"]:
            raise RuntimeError(f"the monitor's judging disagrees: {self.checks}")

    def summary(self) -> dict[str, Any]:
        s = self.series
        fold, noop, pure = s["sla_monitor_fold"], s["noop_worker_store"], s["pure_fold"]
        tick, report = s["sla_monitor_tick"], s["pure_report"]
        events = len(self.with_policy)
        projectors: dict[str, Any] = {}
        for kind, batch in (("queue", QUEUE_BATCH), ("analytics", ANALYTICS_BATCH)):
            with_, without = s[f"{kind}_with_policy"], s[f"{kind}_without_policy"]
            projectors[kind] = {
                "batch": batch,
                "with_policy": with_.summary("events"),
                "without_policy": without.summary("events"),
                "ratio_with_vs_without": ratio(with_.rate, without.rate),
                "ratio_per_ticket": ratio(without.seconds, with_.seconds),
            }
        return {
            "monitor_fold": {
                "batch": MONITOR_BATCH,
                "events": events,
                "sla_monitor": fold.summary("events"),
                "noop_worker_store": noop.summary("events"),
                "pure_fold": pure.summary("events"),
                "ratio_vs_noop_worker_store": ratio(fold.rate, noop.rate),
                "ratio_vs_pure_fold": ratio(fold.rate, pure.rate),
                "fold_cost_us_per_event": round((fold.seconds - noop.seconds) / events * 1e6, 2),
            },
            "monitor_judging": {
                "now": self.now.isoformat(),
                "sla_monitor_tick": tick.summary("tickets"),
                "pure_report": report.summary("tickets"),
                "in_memory_due_actions_and_wakeup": s["pure_due_actions_and_wakeup"].summary(
                    "tickets"
                ),
                "ratio_vs_pure_report": ratio(tick.rate, report.rate),
                "ratio_vs_in_memory_due_actions_and_wakeup": ratio(
                    tick.rate, s["pure_due_actions_and_wakeup"].rate
                ),
                "checks": self.checks,
            },
            "projectors": projectors,
        }


# --- running -------------------------------------------------------------------------------


def run(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    load_before = machine_load()
    started = time.perf_counter()
    stories = ticket_stories(args.tickets, args.seed)
    log(f"writing {args.tickets} tickets ({sum(map(len, stories))} commands) into two stores")
    written = {
        "with_policy": write_store(root / "with-policy", stories, with_policy=True),
        "without_policy": write_store(root / "without-policy", stories, with_policy=False),
    }
    with_policy, without_policy = (
        read_store(root / "with-policy"),
        read_store(root / "without-policy"),
    )
    for name, events in (("with_policy", with_policy), ("without_policy", without_policy)):
        if len(events) != written[name]["events"]:
            raise RuntimeError(f"{name}: read {len(events)} events, wrote {written[name]}")
    last = max(datetime.fromisoformat(e.payload["occurred_at"]) for e in with_policy)
    work = root / "work"
    work.mkdir()
    # The events are hundreds of thousands of live objects a real consumer does not hold:
    # keep the garbage collector from walking them during the measurements.
    gc.collect()
    gc.freeze()
    try:
        bench = Bench(work, with_policy, without_policy, now=last + JUDGE_AFTER)
        bench.run(args.rounds)
    finally:
        gc.unfreeze()
    load_after = machine_load()
    return {
        "benchmark": "sla",
        "store": "sqlite",
        "smoke": args.smoke,
        "tickets": args.tickets,
        "rounds": args.rounds,
        "policy_file": str(POLICY_FILE.relative_to(POLICY_FILE.parents[1])),
        "written": written,
        "events_per_ticket": round(len(with_policy) / args.tickets, 2),
        **bench.summary(),
        "wall_seconds": round(time.perf_counter() - started, 1),
        **run_context(load_before, load_after, "eventsourcing", "duckdb", sqlite=True),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--tickets", type=int, default=2_000, help="tickets, ~8 events each (2000)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds, alternating (2)")
    parser.add_argument("--seed", type=int, default=7, help="workload seed (7)")
    parser.add_argument(
        "--smoke", action="store_true", help="tiny run for CI: 300 tickets, 1 round"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args(argv)
    if args.smoke:
        args.tickets, args.rounds = 300, 1
    if min(args.tickets, args.rounds) < 1:
        parser.error("sizes must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    log(f"bench sla: {args.tickets} tickets x {args.rounds} round(s), SQLite")
    with temporary_root("sla", keep=args.keep) as root:
        result = run(args, root)
    fold, judging = result["monitor_fold"], result["monitor_judging"]
    log(
        f"monitor fold {fold['ratio_vs_noop_worker_store']} x the no-op store, judging "
        f"{judging['ratio_vs_pure_report']} x the pure report; with/without policy: queue "
        f"{result['projectors']['queue']['ratio_with_vs_without']}, analytics "
        f"{result['projectors']['analytics']['ratio_with_vs_without']}"
    )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
