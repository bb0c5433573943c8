"""Benchmark: command-ack -> visible-in-queue latency through the running processes.

Run as a file, never imported:

    .venv/bin/python scripts/bench/queue_latency.py          # 500 commands/s for 10 s
    .venv/bin/python scripts/bench/queue_latency.py --smoke  # tiny sizes, for CI
    .venv/bin/python scripts/bench/queue_latency.py --rate 300 --seconds 5

Everything happens in one fresh temporary directory, with the embedded nats-server
(`EmbeddedNats(home).start()`) on the durable SQLite default, and is removed afterwards; every
process started here is stopped by its PID in `finally`, also on errors.

What is measured:

**command-ack -> visible-in-queue latency** at `--rate` commands/s for `--seconds`:
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

Percentiles are nearest-rank.

Aims: visible p99 <= 100 ms at 500 commands/s.

The latency part of the former `projectors.py`, with the same JSON keys (`visible_latency`,
`aims`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sqlite3
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nats.errors
import nats.js.errors
from benchkit import (
    aim,
    bench_main,
    bench_parser,
    chunks,
    distribution_ms,
    execute_checked,
    log,
    log_tail,
    machine_load,
    run_context,
    start_process,
    stop_process,
)
from nats.aio.msg import Msg

from commands import models as m
from commands.client import TicketingClient
from commands.command_log import ticket_id_for
from projections.queue.queries import open_reader
from projections.relay import VERSION_HEADER
from ticketing.domain.values import ActorKind, SlaTier, Visibility
from ticketing.nats.connect import NatsEndpoint, connect
from ticketing.nats.roles import read_credentials
from ticketing.nats.server import EmbeddedNats
from ticketing.runtime.bootstrap import build_command_service
from ticketing.settings import Settings, queue_path

AIM_VISIBLE_P99_MS = 100.0
GROUP = 128  # tickets per wave (distinct aggregates per execute_many group)
WARMUP_S = 0.5
POLL_S = 0.002
ACCOUNT_ID = "acme"
AGENT = m.ActorModel(kind=ActorKind.AGENT, id="ana")
CUSTOMER = m.ActorModel(kind=ActorKind.CUSTOMER, id="bob")
SERVICE_NAME = "ticketing-commands"


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


# --- running --------------------------------------------------------------------------------


def run(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    load_before = machine_load()
    latency = measure_latency(root, args.rate, args.seconds)
    load_after = machine_load()
    aims = {
        "visible_p99_ms": aim(
            AIM_VISIBLE_P99_MS, latency["visible_after_ack"]["p99_ms"], higher_is_better=False
        ),
    }
    return {
        "benchmark": "queue_latency",
        "store": "sqlite",
        "smoke": args.smoke,
        "visible_latency": latency,
        "aims": aims,
        **run_context(load_before, load_after, "nats-py", "duckdb", "pyarrow", sqlite=True),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = bench_parser(__doc__)
    parser.add_argument("--rate", type=float, default=500.0, help="commands/s (500)")
    parser.add_argument("--seconds", type=float, default=10.0, help="latency run seconds (10)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.seconds = 1.0
    if min(args.rate, args.seconds) <= 0:
        parser.error("sizes must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return bench_main(
        "queue-latency",
        args,
        f"bench queue latency: {args.rate:.0f} commands/s for {args.seconds:.0f} s",
        run,
    )


if __name__ == "__main__":
    sys.exit(main())
