"""Benchmark: the whole write pipeline — NATS commands, group commit, relay — in one run.

Run as a file, never imported:

    .venv/bin/python scripts/bench/pipeline.py                  # 3,000 commands/case, 20,000 events
    .venv/bin/python scripts/bench/pipeline.py --smoke          # tiny sizes, < 30 s, for CI
    .venv/bin/python scripts/bench/pipeline.py --commands 6000 --relay-events 50000

Everything happens in one fresh temporary directory with the embedded nats-server
(`EmbeddedNats(home).start()`), on the durable SQLite default, and is removed afterwards; every
process started here is stopped by its PID in `finally`, also on errors.

What is measured, in this order:

1. **the one-commit-per-command ceiling**: `CommandService.execute` in-process, one command
   after another, on its own fresh SQLite home (each command = one durable commit), the same
   number and mix of commands as one NATS case. It runs in 4 slices: one before each NATS case
   and one after the last, pooled, so drift of the shared machine (2-5x within a minute) does
   not land on one side only. `slices_commands_per_s` shows that drift;
   `ratio_64_vs_adjacent_ceiling_slices` compares the 64-caller case with only the two slices
   that bracket it.
2. **NATS request/reply** with 1, 16 and 64 concurrent callers: one `ticketing run
   command-service` subprocess (`python -m ticketing.cli`, TICKETING_HOME = the temp home), the
   async `commands.client.TicketingClient` on `--connections` connections (default 1) in this
   process. Every caller issues add_comment / tag_ticket / assign_ticket commands on tickets it
   alone uses (pre-opened through the Python API before the service starts), so concurrent
   commands never conflict and the service can group them into one commit. Each case sends
   `--commands` commands in total (split evenly over the callers), after one untimed warm-up
   command per caller on a separate ticket. Latency is measured around `client.execute`
   (serialise, request, reply validation); building the pydantic commands is not timed.
   `commands_per_s` is commands / wall time of the case. The service's own `nats.micro` stats
   (groups, commands) give the mean group size per case.
3. **relay vs raw publish**: `--relay-events` published events are written to another fresh
   SQLite store via `CommandService.execute_many` (tickets opened, then commands on them in
   groups of 128 distinct tickets; command records, which the relay does not publish, are in
   the store as in production). Then, against the same server, `--relay-rounds` times (2):
   raw `js.publish_async` of the same payloads and application headers (without the relay's
   Nats-Msg-Id / Expected-Last-Sequence guards) to a fresh scratch stream (`BENCH_RAW`,
   `bench.raw.>`, admin role), pipelined and awaited at the end; then
   `projections.relay.Relay(app, nc).run_until_caught_up()` in-process on a "relay"-role
   connection from an empty TICKETING stream (deleted before each run); and one last raw run,
   so raw runs bracket every relay run. Both rates are pooled over their runs.

Commands per ticket are capped (`--per-ticket`, default 10) so that every case loads tickets of
the same short history; all sides get the same command mix.

Percentiles are nearest-rank. One JSON object goes to stdout, progress to stderr. The JSON
also records the load average and Linux CPU pressure before and after: on a shared 2-core
machine, neighbours taking the CPUs stretch every wall-clock number here.

Aims: ours at 64 callers >= 2x the ceiling; p99 at 64 callers <= 50 ms; relay >= 0.5x raw.

`--profile` adds diagnostics on stderr after the measurements (never in the JSON): a timing
breakdown of one more relay catch-up (read, decode/encode, publish calls, waiting for acks),
the relay's encoding alone and raw publishing with the relay's guard headers, and a cProfile
of a catch-up; `execute_many` in-process in groups of 64, split by phase; a cProfile of the
calling side; and the 64-caller case against this file run as the command service
(`--profiled-service`): group sizes, wall and CPU time per group, idle gaps, then cProfile of
its worker thread (`execute_many`) and its event loop.

SQLite files go under the system temporary directory (set TMPDIR to measure another disk; a
tmpfs would make fsync free and the numbers meaningless for durability).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import itertools
import json
import os
import pstats
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nats.errors
import nats.js.errors
from benchkit import (
    aim,
    log,
    log_tail,
    machine_load,
    run_context,
    start_process,
    stop_process,
    temporary_root,
)
from nats.js.api import StorageType, StreamConfig

from commands import models as m
from commands.client import TicketingClient
from commands.command_log import ticket_id_for
from commands.service import CommandService
from projections.payloads import PUBLISHED_TOPICS
from projections.relay import Relay
from ticketing.domain.values import ActorKind, SlaTier, Visibility
from ticketing.nats.connect import NatsEndpoint, connect
from ticketing.nats.roles import STREAM, read_credentials
from ticketing.nats.server import EmbeddedNats
from ticketing.runtime.bootstrap import build_application, build_command_service
from ticketing.settings import Settings

CASES = (1, 16, 64)
AIM_RATIO_64 = 2.0
AIM_P99_64_MS = 50.0
AIM_RELAY_RATIO = 0.5
ACCOUNT_ID = "acme"
AGENT = m.ActorModel(kind=ActorKind.AGENT, id="ana")
CUSTOMER = m.ActorModel(kind=ActorKind.CUSTOMER, id="bob")
SERVICE_NAME = "ticketing-commands"
RAW_STREAM = "BENCH_RAW"
RAW_PREFIX = "bench.raw."
GROUP = 128  # commands per execute_many call when writing the relay's events
REQUEST_TIMEOUT_S = 30.0


# --- workload -------------------------------------------------------------------------------


def open_command(label: str) -> m.OpenTicket:
    return m.OpenTicket(
        account_id=ACCOUNT_ID,
        requester="bob@acme.example",
        subject=f"VPN drops every hour ({label})",
        description="Since Monday the VPN client disconnects roughly once an hour.",
        actor=CUSTOMER,
    )


def ticket_command(ticket_id: Any, index: int) -> m.Command:
    """The index-th command on a ticket: comment, tag, assign in turn (each causes one event,
    plus a status change on a first assignment or first agent reply)."""
    kind = index % 3
    if kind == 0:
        return m.AddComment(
            ticket_id=ticket_id,
            body=f"Could you send the client logs from the last disconnect? ({index})",
            visibility=Visibility.PUBLIC,
            actor=AGENT,
        )
    if kind == 1:
        return m.TagTicket(ticket_id=ticket_id, tags=[f"vpn-{index}"], actor=AGENT)
    return m.AssignTicket(ticket_id=ticket_id, team="tier1", agent=f"agent{index}", actor=AGENT)


def split(total: int, parts: int) -> list[int]:
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


@dataclass
class Plan:
    """Tickets to pre-open and, per caller, the commands to send on them."""

    opens: list[m.OpenTicket] = field(default_factory=list)
    warmup: list[m.Command] = field(default_factory=list)  # one per caller
    callers: list[list[m.Command]] = field(default_factory=list)

    @property
    def commands(self) -> int:
        return sum(len(c) for c in self.callers)


def plan_case(label: str, total: int, callers: int, per_ticket: int) -> Plan:
    plan = Plan()
    for caller, count in enumerate(split(total, callers)):
        warm = open_command(f"{label} warm-up {caller}")
        plan.opens.append(warm)
        plan.warmup.append(ticket_command(ticket_id_for(warm.command_id), 0))
        commands: list[m.Command] = []
        for ticket_number, size in enumerate(split(count, -(-count // per_ticket) or 1)):
            opener = open_command(f"{label} caller {caller} ticket {ticket_number}")
            plan.opens.append(opener)
            ticket_id = ticket_id_for(opener.command_id)
            commands.extend(ticket_command(ticket_id, i) for i in range(size))
        plan.callers.append(commands)
    return plan


def execute_grouped(service: CommandService, commands: Sequence[m.Command]) -> int:
    """Run commands through `execute_many` in groups (each group: distinct aggregates);
    return how many events they caused."""
    events = 0
    for start in range(0, len(commands), GROUP):
        for reply in service.execute_many(commands[start : start + GROUP]):
            if not reply.ok:
                raise RuntimeError(f"setup command failed: {reply.to_json()}")
            events += len(reply.events)
    return events


def create_account(service: CommandService) -> None:
    reply = service.execute(
        m.CreateAccount(account_id=ACCOUNT_ID, account_name="Acme", tier=SlaTier.BUSINESS)
    )
    if not reply.ok:
        raise RuntimeError(f"create_account failed: {reply.to_json()}")


# --- statistics -----------------------------------------------------------------------------


def percentile_ms(ordered: list[int], fraction: float) -> float:
    """Nearest-rank percentile of sorted nanosecond latencies, in milliseconds."""
    rank = max(1, round(fraction * len(ordered) + 0.5))
    return ordered[min(rank, len(ordered)) - 1] / 1e6


def summary(latencies: list[int], wall_s: float) -> dict[str, float]:
    ordered = sorted(latencies)
    return {
        "commands_per_s": round(len(ordered) / wall_s, 1),
        "p50_ms": round(percentile_ms(ordered, 0.50), 3),
        "p99_ms": round(percentile_ms(ordered, 0.99), 3),
    }


# --- processes ------------------------------------------------------------------------------


async def wait_for_service(
    endpoint: NatsEndpoint, process: subprocess.Popen[bytes], home: Path, log_name: str
) -> None:
    """Until the command service answers a `nats.micro` PING (or its process dies)."""
    nc = await connect(endpoint, "caller", name="bench-wait", reconnect_forever=False)
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(
                    f"{log_name} exited with {process.returncode}:\n{log_tail(home, log_name)}"
                )
            try:
                await nc.request(f"$SRV.PING.{SERVICE_NAME}", b"", timeout=0.5)
                return
            except (nats.errors.NoRespondersError, nats.errors.TimeoutError):
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"{log_name} did not answer within 60 s:\n{log_tail(home, log_name)}"
                    ) from None
                await asyncio.sleep(0.1)
    finally:
        await nc.close()


async def service_stats(client: TicketingClient) -> dict[str, int]:
    """The command service's own counters (groups, commands) from `$SRV.STATS`."""
    message = await client.nc.request(f"$SRV.STATS.{SERVICE_NAME}", b"", timeout=2)
    endpoints = json.loads(message.data).get("endpoints") or []
    data = next((e["data"] for e in endpoints if e.get("data")), {})
    return {"groups": int(data.get("groups", 0)), "commands": int(data.get("commands", 0))}


# --- NATS request/reply ---------------------------------------------------------------------


async def run_case(endpoint: NatsEndpoint, plan: Plan, connections: int) -> dict[str, Any]:
    clients = [
        await TicketingClient.connect(endpoint, principal="caller", timeout=REQUEST_TIMEOUT_S)
        for _ in range(max(1, min(connections, len(plan.callers))))
    ]
    failures: list[str] = []

    async def caller(client: TicketingClient, commands: list[m.Command], out: list[int]) -> None:
        for command in commands:
            start = time.perf_counter_ns()
            reply = await client.execute(command, raise_errors=False)
            out.append(time.perf_counter_ns() - start)
            if not reply.ok:
                failures.append(reply.to_json())

    try:
        pick = [clients[i % len(clients)] for i in range(len(plan.callers))]
        await asyncio.gather(*(caller(c, [w], []) for c, w in zip(pick, plan.warmup, strict=True)))
        before = await service_stats(clients[0])
        latencies: list[list[int]] = [[] for _ in plan.callers]
        start = time.perf_counter()
        await asyncio.gather(
            *(
                caller(c, cmds, out)
                for c, cmds, out in zip(pick, plan.callers, latencies, strict=True)
            )
        )
        wall = time.perf_counter() - start
        after = await service_stats(clients[0])
    finally:
        for client in clients:
            await client.close()
    if failures:
        raise RuntimeError(f"{len(failures)} commands failed, first: {failures[0]}")
    pooled = [x for out in latencies for x in out]
    groups = after["groups"] - before["groups"]
    commands = after["commands"] - before["commands"]
    return {
        **summary(pooled, wall),
        "mean_group_size": round(commands / groups, 2) if groups else None,
    }


# --- the ceiling ----------------------------------------------------------------------------


def run_ceiling(service: CommandService, commands: list[m.Command]) -> tuple[list[int], float]:
    latencies: list[int] = []
    start = time.perf_counter()
    for command in commands:
        begin = time.perf_counter_ns()
        reply = service.execute(command)
        latencies.append(time.perf_counter_ns() - begin)
        if not reply.ok:
            raise RuntimeError(f"{command.name} failed: {reply.to_json()}")
    return latencies, time.perf_counter() - start


# --- relay and raw publishing ---------------------------------------------------------------


def write_relay_events(service: CommandService, events: int, per_ticket: int) -> None:
    """Store about `events` published events (opens, then commands on the tickets, in groups
    of distinct tickets); a command may cause two events (a first assignment or agent reply
    also changes the status), so the total can overshoot by a few."""
    tickets = max(1, min(events, events // (per_ticket + per_ticket // 3) or 1))
    opens = [open_command(f"relay {n}") for n in range(tickets)]
    written = 1 + execute_grouped(service, opens)  # + the account
    ids = [ticket_id_for(o.command_id) for o in opens]
    index = 0
    while written < events:
        position = 0
        while written < events and position < len(ids):
            chunk = ids[position : position + min(GROUP, events - written)]
            written += execute_grouped(service, [ticket_command(t, index) for t in chunk])
            position += len(chunk)
        index += 1
        log(f"  relay store: {written}/{events} events")


Message = tuple[str, bytes, dict[str, str]]


async def raw_messages(endpoint: NatsEndpoint, service: CommandService) -> list[Message]:
    """The relay's own messages for the store (same payloads, same application headers) on
    `bench.raw.*` subjects, without the relay's JetStream guards (msg id, expected sequence)."""
    nc = await connect(endpoint, "relay", name="bench-encode", reconnect_forever=False)
    try:
        return encode_all(Relay(service.app, nc))
    finally:
        await nc.close()


def encode_all(relay: Relay) -> list[Message]:
    messages = []
    position = 0
    while True:
        batch = relay.app.recorder.select_notifications(
            start=position + 1, limit=1000, topics=PUBLISHED_TOPICS, inclusive_of_start=True
        )
        if not batch:
            return messages
        for notification in batch:
            subject, payload, headers = relay.message_for(notification)
            headers.pop("Nats-Msg-Id", None)
            messages.append((RAW_PREFIX + subject.split(".", 2)[2], payload, headers))
        position = batch[-1].id


async def publish_raw(endpoint: NatsEndpoint, messages: list[Message]) -> float:
    """Pipelined `publish_async` of every message to a fresh scratch stream; seconds taken."""
    nc = await connect(endpoint, "admin", name="bench-raw", reconnect_forever=False)
    try:
        js = nc.jetstream(timeout=10)
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await js.delete_stream(RAW_STREAM)
        await js.add_stream(
            StreamConfig(
                name=RAW_STREAM,
                subjects=[f"{RAW_PREFIX}>"],
                storage=StorageType.FILE,
                duplicate_window=120.0,
            )
        )
        prepared = [(s, p, dict(h)) for s, p, h in messages]
        start = time.perf_counter()
        futures = [await js.publish_async(s, p, headers=h) for s, p, h in prepared]
        acks = await asyncio.wait_for(asyncio.gather(*futures), timeout=120)
        elapsed = time.perf_counter() - start
        info = await js.stream_info(RAW_STREAM)
        if info.state.messages != len(messages) or acks[-1].seq != len(messages):
            raise RuntimeError(f"raw stream holds {info.state.messages}/{len(messages)} messages")
        await js.delete_stream(RAW_STREAM)
        return elapsed
    finally:
        await nc.close()


@contextlib.asynccontextmanager
async def fresh_relay(endpoint: NatsEndpoint, relay_settings: Settings) -> AsyncIterator[Relay]:
    """A relay on the relay store whose TICKETING stream was deleted first (starts empty)."""
    admin = await connect(endpoint, "admin", name="bench-admin", reconnect_forever=False)
    try:
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await admin.jetstream().delete_stream(STREAM)
    finally:
        await admin.close()
    app = build_application(relay_settings)
    try:
        nc = await connect(endpoint, "relay", name="bench-relay", reconnect_forever=False)
        try:
            yield Relay(app, nc)
        finally:
            await nc.close()
    finally:
        app.close()


async def run_relay(
    endpoint: NatsEndpoint, relay_settings: Settings, expected: int
) -> tuple[int, float, int]:
    """The relay from an empty TICKETING stream until caught up: (published, seconds,
    batches)."""
    async with fresh_relay(endpoint, relay_settings) as relay:
        start = time.perf_counter()
        await relay.run_until_caught_up()
        elapsed = time.perf_counter() - start
        info = await relay.js.stream_info(STREAM)
        if relay.stats.published != expected or info.state.messages != expected:
            raise RuntimeError(
                f"relay published {relay.stats.published}, stream holds "
                f"{info.state.messages}, expected {expected}"
            )
        return relay.stats.published, elapsed, relay.stats.batches


# --- diagnostics (--profile) ----------------------------------------------------------------


def print_profile(source: cProfile.Profile | str, title: str, lines: int = 25) -> None:
    for order in ("cumulative", "tottime"):
        text = io.StringIO()
        stats = pstats.Stats(source, stream=text)
        stats.strip_dirs().sort_stats(order).print_stats(lines)
        log(f"--- {title}, sorted by {order} ---")
        log(text.getvalue())


@contextlib.contextmanager
def timed(totals: dict[str, float], key: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        totals[key] = totals.get(key, 0.0) + time.perf_counter() - start


def profiled_service_main(output: Path, with_cprofile: bool) -> None:
    """Run as `--profiled-service OUT` in a child: the real command service, recording the
    size, start and end of every `execute_many` group; with `--service-cprofile` also
    cProfile on the event loop (main thread) and on every group (worker thread). Written to
    OUT.* when SIGTERM stops the service."""
    from ticketing.runtime import processes

    loop_profiler = cProfile.Profile()
    store_profiler = cProfile.Profile()
    groups: list[tuple[int, float, float, float]] = []
    lock = threading.Lock()
    original = CommandService.execute_many

    def execute_many(self: CommandService, commands: Sequence[m.Command]) -> list[Any]:
        with lock:
            if with_cprofile:
                store_profiler.enable()
            start, cpu = time.perf_counter(), time.thread_time()
            try:
                return original(self, commands)
            finally:
                cpu = time.thread_time() - cpu
                groups.append((len(commands), start, time.perf_counter(), cpu))
                if with_cprofile:
                    store_profiler.disable()

    CommandService.execute_many = execute_many  # type: ignore[method-assign]
    settings = Settings.from_env()

    async def main(stop: asyncio.Event) -> None:
        if with_cprofile:
            loop_profiler.enable()
        try:
            await processes.command_service(settings, stop, lambda text: None)
        finally:
            loop_profiler.disable()

    processes.run_process(main)
    if with_cprofile:
        loop_profiler.dump_stats(f"{output}.loop")
        store_profiler.dump_stats(f"{output}.store")
    Path(f"{output}.groups").write_text(json.dumps(groups))


def service_case(
    endpoint: NatsEndpoint, home: Path, plan: Plan, out: Path, with_cprofile: bool
) -> list[tuple[int, float, float, float]]:
    """Run one 64-caller case against a `--profiled-service` child; its groups (warm-up
    dropped)."""
    args = [os.path.abspath(__file__), "--profiled-service", str(out)]
    if with_cprofile:
        args.append("--service-cprofile")
    process = start_process(home, args, out.name)
    try:
        asyncio.run(wait_for_service(endpoint, process, home, out.name))
        result = asyncio.run(run_case(endpoint, plan, 1))
        label = "cProfile" if with_cprofile else "timed groups"
        log(f"service ({label}), {len(plan.callers)} callers: {result}")
    finally:
        stop_process(process, 60)
    groups = [tuple(g) for g in json.loads(Path(f"{out}.groups").read_text())]
    warm = 0
    while groups and warm < len(plan.warmup):  # the warm-up commands come first
        warm += groups.pop(0)[0]
    return groups  # type: ignore[return-value]


def diagnose_service(endpoint: NatsEndpoint, home: Path, per_ticket: int, total: int) -> None:
    """The 64-caller case against an instrumented command service: group sizes, how busy the
    worker thread is, the idle gaps between groups; then once more under cProfile."""
    plans = [plan_case(f"diagnose {n}", total, 64, per_ticket) for n in range(2)]
    service = build_command_service(Settings(home=home))
    try:
        for plan in plans:
            execute_grouped(service, plan.opens)
    finally:
        service.app.close()
    groups = service_case(endpoint, home, plans[0], home / "timed", False)
    sizes = sorted(group[0] for group in groups)
    busy = [end - start for _, start, end, _ in groups]
    cpu = sum(group[3] for group in groups)
    gaps = [b[1] - a[2] for a, b in itertools.pairwise(groups)]
    span = groups[-1][2] - groups[0][1]
    commands = sum(sizes)
    log(
        f"execute_many groups: {len(groups)}, size min {sizes[0]} p10 "
        f"{sizes[len(sizes) // 10]} p50 {sizes[len(sizes) // 2]} max {sizes[-1]} mean "
        f"{commands / len(groups):.1f}; per group {sum(busy) / len(busy) * 1e3:.1f} ms busy "
        f"(max {max(busy) * 1e3:.1f}), {sum(busy) / commands * 1e3:.3f} ms per command, of "
        f"which {cpu / commands * 1e3:.3f} ms on the worker thread's CPU clock; "
        f"worker busy {sum(busy) / span:.0%} of {span:.2f} s; idle gap between groups "
        f"mean {sum(gaps) / max(1, len(gaps)) * 1e3:.2f} ms"
    )
    service_case(endpoint, home, plans[1], home / "cprofile", True)
    print_profile(f"{home / 'cprofile'}.store", "command service: execute_many (worker thread)")
    print_profile(f"{home / 'cprofile'}.loop", "command service: event loop (main thread)")


def diagnose_client(endpoint: NatsEndpoint, home: Path, per_ticket: int, total: int) -> None:
    """cProfile of the calling side (this process) during a 64-caller case."""
    service = build_command_service(Settings(home=home))
    try:
        plan = plan_case("client-profile", total, 64, per_ticket)
        execute_grouped(service, plan.opens)
    finally:
        service.app.close()
    process = start_process(home, ["-m", "ticketing.cli", "run", "command-service"], "cs-client")
    try:
        asyncio.run(wait_for_service(endpoint, process, home, "cs-client"))
        profiler = cProfile.Profile()
        profiler.enable()
        result = asyncio.run(run_case(endpoint, plan, 1))
        profiler.disable()
        log(f"calling side under cProfile, 64 callers: {result}")
        print_profile(profiler, "calling side (64 callers, this process)", 15)
    finally:
        stop_process(process)


def diagnose_group_commit(root: Path, per_ticket: int, total: int) -> None:
    """`execute_many` in-process, groups of 64 distinct tickets back to back (no NATS): the
    best the service's worker thread can do, split into phases by timing wrappers."""
    service = build_command_service(Settings(home=root / "group-commit"))
    try:
        create_account(service)
        plan = plan_case("group", total, 64, per_ticket)
        execute_grouped(service, plan.opens)
        totals: dict[str, float] = {}

        def wrap(key: str, func: Any) -> Any:
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                with timed(totals, key):
                    return func(*args, **kwargs)

            return wrapper

        for name, key in (
            ("_prior_reply", "idempotency lookup (_prior_reply)"),
            ("load_ticket", "load ticket (read + replay)"),
            ("_decide", "decide"),
            ("_commit", "commit (one save: inserts + fsync)"),
        ):
            setattr(service, name, wrap(key, getattr(service, name)))
        groups = [
            [c[i] for c in plan.callers if i < len(c)]
            for i in range(max(len(c) for c in plan.callers))
        ]
        start, cpu = time.perf_counter(), time.thread_time()
        for group in groups:
            for reply in service.execute_many(group):
                if not reply.ok:
                    raise RuntimeError(reply.to_json())
        wall, cpu = time.perf_counter() - start, time.thread_time() - cpu
    finally:
        service.app.close()
    commands = sum(len(g) for g in groups)
    totals["decide"] -= totals["load ticket (read + replay)"]
    totals["rest"] = wall - sum(totals.values())
    totals = {
        ("handler + reply (decide - load)" if k == "decide" else k): v for k, v in totals.items()
    }
    log(
        f"execute_many in-process: {commands} commands in {len(groups)} groups, "
        f"{commands / wall:.0f} commands/s, {wall / len(groups) * 1e3:.1f} ms per group, "
        f"{wall / commands * 1e3:.3f} ms per command ({cpu / commands * 1e3:.3f} ms CPU)"
    )
    for key, seconds in totals.items():
        log(f"  {key:40} {seconds / commands * 1e3:7.3f} ms/command  {seconds / wall:6.1%}")


async def relay_phases(endpoint: NatsEndpoint, relay_settings: Settings) -> None:
    """One more catch-up with each phase of the relay's loop timed (no profiler)."""
    totals: dict[str, float] = {}
    async with fresh_relay(endpoint, relay_settings) as relay:
        read, encode, publish_async = relay._read_after, relay.message_for, relay.js.publish_async

        def read_after(position: int) -> Any:
            with timed(totals, "read notifications (worker thread)"):
                return read(position)

        def message_for(notification: Any) -> Any:
            with timed(totals, "decode event + encode JSON (message_for)"):
                return encode(notification)

        async def timed_publish(*args: Any, **kwargs: Any) -> Any:
            with timed(totals, "js.publish_async calls"):
                return await publish_async(*args, **kwargs)

        relay._read_after = read_after  # type: ignore[method-assign]
        relay.message_for = message_for  # type: ignore[method-assign]
        relay.js.publish_async = timed_publish  # type: ignore[method-assign]
        start = time.perf_counter()
        await relay.run_until_caught_up()
        total = time.perf_counter() - start
        published = relay.stats.published
    log(f"relay (timed phases): {published} events in {total:.2f} s ({published / total:.0f}/s)")
    totals["rest (awaiting acks per batch, stream info)"] = total - sum(totals.values())
    for key, seconds in totals.items():
        log(f"  {key:45} {seconds:7.3f} s  {seconds / total:6.1%}")


async def relay_variants(endpoint: NatsEndpoint, relay_settings: Settings) -> None:
    """What the relay adds to raw publishing: its JetStream guards, and its own Python work."""
    async with fresh_relay(endpoint, relay_settings) as relay:
        start = time.perf_counter()
        position, count = 0, 0
        while batch := relay._read_after(position):
            for notification in batch:
                relay.message_for(notification)
            count += len(batch)
            position = batch[-1].id
        encode_rate = count / (time.perf_counter() - start)
        messages = encode_all(relay)
    guarded = []
    for sequence, (subject, payload, headers) in enumerate(messages):
        guards = {"Nats-Msg-Id": f"raw-{sequence}", "Nats-Expected-Last-Sequence": str(sequence)}
        guarded.append((subject, payload, {**headers, **guards}))
    plain = len(messages) / await publish_raw(endpoint, messages)
    with_guards = len(messages) / await publish_raw(endpoint, guarded)
    log(
        f"read + decode + encode only (no NATS): {encode_rate:.0f} events/s; raw publish "
        f"{plain:.0f}/s, raw with the relay's Nats-Msg-Id + Expected-Last-Sequence headers "
        f"{with_guards:.0f}/s; serial estimate 1/(1/raw + 1/encode) = "
        f"{1 / (1 / plain + 1 / encode_rate):.0f}/s"
    )


async def relay_profile(endpoint: NatsEndpoint, relay_settings: Settings) -> None:
    async with fresh_relay(endpoint, relay_settings) as relay:
        profiler = cProfile.Profile()
        profiler.enable()
        await relay.run_until_caught_up()
        profiler.disable()
    print_profile(profiler, "relay catch-up under cProfile (event loop thread)")


def diagnose_relay(endpoint: NatsEndpoint, relay_settings: Settings) -> None:
    asyncio.run(relay_phases(endpoint, relay_settings))
    asyncio.run(relay_variants(endpoint, relay_settings))
    asyncio.run(relay_profile(endpoint, relay_settings))


# --- running --------------------------------------------------------------------------------


@dataclass
class Ceiling:
    """The one-commit-per-command side: its own store, measured in slices that bracket the
    NATS cases (one slice before each case and one after the last)."""

    service: CommandService
    slices: list[list[m.Command]]
    latencies: list[int] = field(default_factory=list)
    slice_stats: list[tuple[int, float]] = field(default_factory=list)  # (commands, seconds)

    @classmethod
    def prepare(cls, home: Path, total: int, per_ticket: int) -> Ceiling:
        service = build_command_service(Settings(home=home))
        try:
            create_account(service)
            plan = plan_case("ceiling", total, 1, per_ticket)
            execute_grouped(service, plan.opens)
            for command in plan.warmup:
                service.execute(command)
        except BaseException:
            service.app.close()
            raise
        commands = plan.callers[0]
        slices, start = [], 0
        for size in split(len(commands), len(CASES) + 1):
            slices.append(commands[start : start + size])
            start += size
        return cls(service, slices)

    def measure(self, number: int) -> None:
        commands = self.slices[number]
        latencies, wall = run_ceiling(self.service, commands)
        self.latencies += latencies
        self.slice_stats.append((len(commands), wall))
        log(
            f"ceiling {number + 1}/{len(self.slices)}: {len(commands)} commands, "
            f"{len(commands) / wall:.0f} commands/s"
        )

    def summary(self) -> dict[str, Any]:
        return {
            **summary(self.latencies, sum(wall for _, wall in self.slice_stats)),
            "slices_commands_per_s": [round(n / wall, 1) for n, wall in self.slice_stats],
        }

    def rate_around(self, case_index: int) -> float:
        """Commands/s of the two slices just before and just after NATS case `case_index`."""
        pair = self.slice_stats[case_index : case_index + 2]
        return sum(n for n, _ in pair) / sum(wall for _, wall in pair)


def prepare_service_store(home: Path, plans: dict[int, Plan]) -> None:
    """Pre-open every ticket the NATS cases use, before the service starts."""
    service = build_command_service(Settings(home=home))
    try:
        create_account(service)
        for plan in plans.values():
            execute_grouped(service, plan.opens)
    finally:
        service.app.close()
    log(f"service store: {sum(len(p.opens) for p in plans.values())} tickets pre-opened")


def measure_nats(
    endpoint: NatsEndpoint, home: Path, plans: dict[int, Plan], connections: int, ceiling: Ceiling
) -> dict[str, Any]:
    """Every case against one command-service subprocess (stopped again before returning),
    each case preceded by a ceiling slice, and one more ceiling slice after the last."""
    process = start_process(
        home, ["-m", "ticketing.cli", "run", "command-service"], "command-service"
    )
    try:
        asyncio.run(wait_for_service(endpoint, process, home, "command-service"))
        cases: dict[str, Any] = {}
        for index, callers in enumerate(CASES):
            ceiling.measure(index)
            stats = asyncio.run(run_case(endpoint, plans[callers], connections))
            cases[str(callers)] = stats
            log(
                f"nats {callers:2} callers: {stats['commands_per_s']:.0f} commands/s, p50 "
                f"{stats['p50_ms']:.2f} ms, p99 {stats['p99_ms']:.2f} ms, mean group "
                f"{stats['mean_group_size']}"
            )
        ceiling.measure(len(CASES))
        return cases
    finally:
        stop_process(process)


def measure_relay(
    endpoint: NatsEndpoint, relay_settings: Settings, events: int, per_ticket: int, rounds: int
) -> dict[str, Any]:
    """Write the events; then `rounds` x (raw publish, relay from an empty stream) and one
    last raw publish, so raw runs bracket every relay run; rates are pooled over the runs."""
    writer = build_command_service(relay_settings)
    try:
        create_account(writer)
        start = time.perf_counter()
        write_relay_events(writer, events, per_ticket)
        messages = asyncio.run(raw_messages(endpoint, writer))
        log(f"relay store: {len(messages)} events written in {time.perf_counter() - start:.1f} s")
    finally:
        writer.app.close()
    raw_runs: list[float] = []
    relay_runs: list[float] = []
    batches = 0
    for number in range(rounds + 1):
        raw_runs.append(asyncio.run(publish_raw(endpoint, messages)))
        log(f"raw {number + 1}/{rounds + 1}: {len(messages) / raw_runs[-1]:.0f} messages/s")
        if number == rounds:
            break
        published, seconds, batches = asyncio.run(
            run_relay(endpoint, relay_settings, len(messages))
        )
        relay_runs.append(seconds)
        log(
            f"relay {number + 1}/{rounds}: {published} events in {seconds:.2f} s "
            f"({published / seconds:.0f}/s, {batches} batches)"
        )
    count = len(messages)
    return {
        "relay": {
            "events": count,
            "events_per_s": round(count * len(relay_runs) / sum(relay_runs), 1),
            "runs_events_per_s": [round(count / s, 1) for s in relay_runs],
            "batches": batches,
            "mean_payload_bytes": round(sum(len(p) for _, p, _ in messages) / count, 1),
        },
        "raw_publish_async": {
            "messages": count,
            "messages_per_s": round(count * len(raw_runs) / sum(raw_runs), 1),
            "runs_messages_per_s": [round(count / s, 1) for s in raw_runs],
        },
    }


def run(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    server_home = root / "service"
    server_home.mkdir()
    server = EmbeddedNats(server_home)
    ceiling: Ceiling | None = None
    load_before = machine_load()
    try:
        url = server.start()
        endpoint = NatsEndpoint(url, read_credentials(server.credentials_path))
        log(f"nats-server at {url}; homes under {root}")
        plans = {n: plan_case(f"case {n}", args.commands, n, args.per_ticket) for n in CASES}
        prepare_service_store(server_home, plans)
        ceiling = Ceiling.prepare(root / "ceiling", args.commands, args.per_ticket)
        cases = measure_nats(endpoint, server_home, plans, args.connections, ceiling)
        ceiling_stats = ceiling.summary()
        adjacent = ceiling.rate_around(CASES.index(64))
        ceiling.service.app.close()
        ceiling = None
        relay_settings = Settings(home=root / "relay-store")
        relay = measure_relay(
            endpoint, relay_settings, args.relay_events, args.per_ticket, args.relay_rounds
        )
        load_after = machine_load()
        if args.profile:
            diagnose_relay(endpoint, relay_settings)
            diagnose_group_commit(root, args.per_ticket, args.commands)
            diagnose_client(endpoint, server_home, args.per_ticket, args.commands)
            diagnose_service(endpoint, server_home, args.per_ticket, args.commands)
    finally:
        if ceiling is not None:
            ceiling.service.app.close()
        server.stop()

    ratio_64 = cases["64"]["commands_per_s"] / ceiling_stats["commands_per_s"]
    relay_ratio = relay["relay"]["events_per_s"] / relay["raw_publish_async"]["messages_per_s"]
    return {
        "benchmark": "pipeline",
        "store": "sqlite",
        "commands_per_case": args.commands,
        "commands_per_ticket": args.per_ticket,
        "connections": args.connections,
        "nats_request_reply": cases,
        "ceiling_one_commit_per_command": ceiling_stats,
        "ratio_64_vs_ceiling": round(ratio_64, 3),
        "ratio_64_vs_adjacent_ceiling_slices": round(cases["64"]["commands_per_s"] / adjacent, 3),
        "aims": {
            "ratio_64_vs_ceiling": aim(AIM_RATIO_64, ratio_64),
            "p99_ms_at_64": aim(AIM_P99_64_MS, cases["64"]["p99_ms"], higher_is_better=False),
            "relay_ratio": aim(AIM_RELAY_RATIO, relay_ratio),
        },
        **relay,
        "relay_ratio": round(relay_ratio, 3),
        **run_context(load_before, load_after, "eventsourcing", "nats-py"),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--commands", type=int, default=3000, help="commands per case (3000)")
    parser.add_argument(
        "--relay-events", type=int, default=20000, help="events for the relay (20000)"
    )
    parser.add_argument(
        "--relay-rounds", type=int, default=2, help="relay runs, each after a raw run (2)"
    )
    parser.add_argument(
        "--per-ticket", type=int, default=10, help="commands per ticket at most (10)"
    )
    parser.add_argument(
        "--connections", type=int, default=1, help="client connections shared by callers (1)"
    )
    parser.add_argument("--smoke", action="store_true", help="tiny run for CI (< 30 s)")
    parser.add_argument(
        "--profile", action="store_true", help="also print diagnostics (cProfile) to stderr"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument("--profiled-service", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--service-cprofile", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.smoke:
        args.commands, args.relay_events, args.per_ticket, args.relay_rounds = 128, 400, 4, 1
    sizes = (args.commands, args.relay_events, args.per_ticket, args.connections, args.relay_rounds)
    if min(sizes) < 1:
        parser.error("sizes must be positive")
    if args.commands < max(CASES):
        parser.error(f"--commands must be at least {max(CASES)} (one per caller)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.profiled_service is not None:
        profiled_service_main(args.profiled_service, args.service_cprofile)
        return 0
    log(
        f"bench pipeline: {args.commands} commands per case ({', '.join(map(str, CASES))} "
        f"callers, {args.connections} connection(s)), ceiling {args.commands} commands, "
        f"relay {args.relay_events} events, SQLite"
    )
    with temporary_root("pipeline", keep=args.keep) as root:
        result = run(args, root)
    log(
        f"ratio 64/ceiling {result['ratio_64_vs_ceiling']:.2f} (aim {AIM_RATIO_64}), p99@64 "
        f"{result['nats_request_reply']['64']['p99_ms']:.1f} ms (aim {AIM_P99_64_MS}), relay "
        f"ratio {result['relay_ratio']:.2f} (aim {AIM_RELAY_RATIO})"
    )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
