"""Fault tests for the NATS backbone: real processes, SIGKILLed by PID at awkward moments.

Every scenario ends with one invariant (`stream_checks.check_invariant`): once the relay has
caught up, the TICKETING stream holds exactly the stored domain events, one message each, in
store order, and every acknowledged command's events are in the store."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from uuid import UUID

import nats.errors
import nats.js.errors
import pytest

from commands import models as m
from commands.client import ClientError, TicketingClient
from commands.command_log import ticket_id_for
from commands.replies import Reply
from commands.service import CommandService
from tests.faults.stream_checks import check_invariant, store_entries, wait_for_relay
from tests.processes import kill, start_ticketing, stop
from ticketing.nats.connect import connect, resolve_endpoint
from ticketing.nats.roles import STREAM
from ticketing.nats.server import EmbeddedNats
from ticketing.runtime.bootstrap import build_command_service
from ticketing.settings import Settings

# The embedded server's `Popen` handle is dropped while the server runs on (a reported bug,
# pinned in tests/integration/test_nats_roles.py); each (re)start raises this warning.
pytestmark = [
    pytest.mark.integration,
    pytest.mark.nats,
    pytest.mark.slow,
]

# EmbeddedNats.start() promises to restart on the configured port. After a SIGKILL the dead
# server's accepted connections sit in TIME_WAIT on that port, and its free-port probe binds
# without SO_REUSEADDR, so it calls the port taken and moves to a new one (nats-server itself
# could bind: Go sets SO_REUSEADDR). These tests fail there until that is fixed.
SAME_PORT_NOTE = "ticketing/nats/server.py: EmbeddedNats.prepare() and _port_is_free()"
ACCOUNT = "acme"
AGENT = m.ActorModel(kind="agent", id="ana")


@pytest.fixture
def service(nats_home: Path) -> Iterator[CommandService]:
    """The Python API on the home's SQLite store (also used to read the store)."""
    service = build_command_service(Settings(home=nats_home))
    reply = service.execute(
        m.CreateAccount(command_id="account", account_id=ACCOUNT, account_name="Acme")
    )
    assert reply.ok, reply.as_dict()
    yield service
    service.app.close()


def kill_nats(home: Path) -> str:
    """SIGKILL the embedded nats-server; return the URL its clients will reconnect to."""
    server = EmbeddedNats(home)
    url = server.running_url()
    assert url is not None, "the embedded nats-server is not running"
    server.kill()
    return url


def assert_back_where_clients_reconnect(before: str | None, after: str | None) -> None:
    assert after == before, (
        f"the restarted nats-server listens on {after}, not on {before} where every client "
        "(relay, command service, callers) keeps reconnecting, so none of them reaches it; "
        f"see {SAME_PORT_NOTE}"
    )


def restart_nats(home: Path, url: str) -> None:
    """Start the server again on the same store; it must come back where clients reconnect."""
    assert_back_where_clients_reconnect(url, EmbeddedNats(home).start())


def alive(process: subprocess.Popen[bytes], name: str, home: Path) -> None:
    assert process.poll() is None, f"the {name} process died; see its log in {home}"


# --- 1. nats-server SIGKILLed during a 5,000-command run -----------------------------------

TICKETS = 500
CALLERS = 16
KILL_AFTER_ACKS = 1_500
FOLLOW_UPS = ("comment", "tag", "comment", "assign", "comment", "tag", "comment", "tag", "assign")
EXPECTED_PER_TICKET = {
    "TicketOpened": 1,
    "CommentAdded": FOLLOW_UPS.count("comment"),
    "TicketTagged": FOLLOW_UPS.count("tag"),
    "TicketAssigned": FOLLOW_UPS.count("assign"),
}


def follow_up(ticket: int, step: int) -> m.Command:
    ticket_id = ticket_id_for(f"s1-open-{ticket}")
    command_id = f"s1-{ticket}-{step}"
    kind = FOLLOW_UPS[step]
    if kind == "comment":
        return m.AddComment(command_id=command_id, ticket_id=ticket_id, body=f"note {step}")
    if kind == "tag":
        return m.TagTicket(command_id=command_id, ticket_id=ticket_id, tags=[f"t{step}"])
    return m.AssignTicket(command_id=command_id, ticket_id=ticket_id, agent=f"agent{step}")


def caller_plans() -> list[list[m.Command]]:
    """Caller c owns tickets c, c+16, …: opens them all, then one follow-up round at a time
    (so consecutive commands hit different tickets and share group commits)."""
    plans: list[list[m.Command]] = []
    for caller in range(CALLERS):
        mine = range(caller, TICKETS, CALLERS)
        plan: list[m.Command] = [
            m.OpenTicket(
                command_id=f"s1-open-{t}",
                account_id=ACCOUNT,
                requester=f"user{t}@acme.example",
                subject=f"problem {t}",
            )
            for t in mine
        ]
        plan += [follow_up(t, step) for step in range(len(FOLLOW_UPS)) for t in mine]
        plans.append(plan)
    return plans


@dataclass
class Run:
    replies: dict[str, Reply] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    acks_at_kill: int | None = None
    url_before: str | None = None
    url_after: str | None = None
    reconnects: int = 0
    seconds: float = 0.0


async def drive_with_outage(home: Path, plans: Sequence[Sequence[m.Command]]) -> Run:
    """Run every plan concurrently over NATS (retrying with the same command id); after
    KILL_AFTER_ACKS ok replies, SIGKILL the nats-server, wait 1 s and restart it."""
    run = Run()
    reached = asyncio.Event()
    client = await TicketingClient.connect(resolve_endpoint(Settings(home=home)))
    started = time.monotonic()

    async def call(plan: Sequence[m.Command]) -> None:
        for command in plan:
            try:
                reply = await client.execute(command, retry_for=30, raise_errors=False)
            except ClientError as error:
                run.failures[command.command_id] = repr(error)
                continue
            run.replies[command.command_id] = reply
            if reply.ok and len(run.replies) >= KILL_AFTER_ACKS:
                reached.set()

    callers = [asyncio.create_task(call(plan)) for plan in plans]

    async def outage() -> None:
        await reached.wait()
        run.acks_at_kill = sum(r.ok for r in run.replies.values())
        run.url_before = await asyncio.to_thread(kill_nats, home)
        await asyncio.sleep(1.0)
        run.url_after = await asyncio.to_thread(EmbeddedNats(home).start)
        if run.url_after != run.url_before:  # nobody can reconnect: do not wait 30 s each
            for task in callers:
                task.cancel()

    fault = asyncio.create_task(outage())
    try:
        await asyncio.wait_for(asyncio.gather(*callers, return_exceptions=True), 150)
        await asyncio.wait_for(fault, 20)
    finally:
        fault.cancel()
        run.seconds = time.monotonic() - started
        run.reconnects = int(client.nc.stats["reconnects"])
        await client.close()
    return run


def test_nats_server_killed_mid_run_loses_and_doubles_nothing(
    nats_home: Path, service: CommandService
) -> None:
    # Given a command service and a relay, each in its own process
    processes = {
        "command-service": start_ticketing(nats_home, "run", "command-service"),
        "relay": start_ticketing(nats_home, "run", "relay"),
    }
    plans = caller_plans()
    commands = [c for plan in plans for c in plan]
    assert len(commands) == 5_000
    try:
        # When 16 callers issue 5,000 commands and the nats-server is SIGKILLed mid-run
        run = asyncio.run(drive_with_outage(nats_home, plans))

        # Then the server came back where clients reconnect, during the run
        assert run.url_before is not None, "the run ended before the fault"
        assert_back_where_clients_reconnect(run.url_before, run.url_after)
        assert run.acks_at_kill is not None and run.acks_at_kill < len(commands)
        assert run.reconnects >= 1, "the callers never lost their connection"
        # and every command was eventually acknowledged (retries reuse the command id)
        assert run.failures == {}, dict(list(run.failures.items())[:10])
        rejected = {k: r.as_dict() for k, r in run.replies.items() if not r.ok}
        assert rejected == {}, dict(list(rejected.items())[:5])
        assert sorted(run.replies) == sorted(c.command_id for c in commands)
        for name, process in processes.items():
            alive(process, name, nats_home)

        # and the stream is the store, every acknowledged event stored
        check_invariant(nats_home, service.app, run.replies.values())

        # and no command took effect twice: exactly the expected events per ticket
        announced = sum(len(r.events) for r in run.replies.values())
        assert len(store_entries(service.app)) == 1 + announced  # + the account
        last_version: dict[str, int] = {}
        for reply in run.replies.values():
            assert reply.ticket_id is not None and reply.version is not None
            last_version[reply.ticket_id] = max(reply.version, last_version.get(reply.ticket_id, 0))
        for ticket in range(TICKETS):
            ticket_id = ticket_id_for(f"s1-open-{ticket}")
            events = list(service.app.events.get(ticket_id))
            kinds = Counter(type(e).__name__ for e in events)
            counted = {kind: kinds[kind] for kind in EXPECTED_PER_TICKET}
            assert counted == EXPECTED_PER_TICKET, (ticket_id, kinds)
            assert events[-1].originator_version == last_version[str(ticket_id)], ticket_id
    finally:
        for process in processes.values():
            stop(process)


# --- 2. the relay SIGKILLed mid-batch, three times -----------------------------------------

OPEN_TICKETS = 2_000
ROUNDS = 9
GROUP = 200
KILL_FRACTIONS = (0.2, 0.45, 0.7)
RELAY_BATCH = 500  # projections.relay.Relay's default batch_size, as `ticketing run relay` uses


def write_events(service: CommandService) -> None:
    """About 20,000 events through the Python API, in groups of 200 (one commit each)."""
    opens = [
        m.OpenTicket(
            command_id=f"s2-open-{t}",
            account_id=ACCOUNT,
            requester=f"user{t}@acme.example",
            subject=f"problem {t}",
        )
        for t in range(OPEN_TICKETS)
    ]
    commands: list[m.Command] = list(opens)
    for step in range(ROUNDS):
        commands += [
            m.TagTicket(ticket_id=ticket_id_for(o.command_id), tags=[f"r{step}"]) for o in opens
        ]
    for start in range(0, len(commands), GROUP):
        replies = service.execute_many(commands[start : start + GROUP])
        assert all(r.ok for r in replies), [r.as_dict() for r in replies if not r.ok][:3]


async def wait_to_kill(home: Path, at_least: int, base: int, timeout: float = 60.0) -> int:
    """Poll the stream's message count on one connection; return it once it is >= at_least,
    preferably inside a relay batch (batches run from the relay's start position `base` in
    steps of RELAY_BATCH: the relay has messages in flight), else at most two batches later."""
    nc = await connect(resolve_endpoint(Settings(home=home)), "admin", name="fault-test-poll")
    try:
        js = nc.jetstream(timeout=2)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                messages = int((await js.stream_info(STREAM)).state.messages)
            except (nats.js.errors.NotFoundError, nats.errors.Error, TimeoutError):
                messages = 0
            mid_batch = (messages - base) % RELAY_BATCH != 0
            if messages >= at_least and (mid_batch or messages >= at_least + 2 * RELAY_BATCH):
                return messages
            await asyncio.sleep(0)
        raise AssertionError(f"the stream did not reach {at_least} messages in {timeout} s")
    finally:
        await nc.close()


async def settled_messages(home: Path) -> int:
    """The stream's message count once it stops moving (the killed relay's last publishes)."""
    nc = await connect(resolve_endpoint(Settings(home=home)), "admin", name="fault-test-settle")
    try:
        js = nc.jetstream(timeout=2)
        last = -1
        while True:
            messages = int((await js.stream_info(STREAM)).state.messages)
            if messages == last:
                return messages
            last = messages
            await asyncio.sleep(0.2)
    finally:
        await nc.close()


def test_relay_killed_mid_batch_three_times_resumes_exactly(
    nats_home: Path, service: CommandService
) -> None:
    # Given about 20,000 stored events and a relay publishing them
    write_events(service)
    total = len(store_entries(service.app))
    assert total > 20_000
    relay = start_ticketing(nats_home, "run", "relay")
    kills: list[tuple[int, int]] = []
    try:
        # When the relay is SIGKILLed three times part-way through
        base = 0
        for fraction in KILL_FRACTIONS:
            seen = asyncio.run(wait_to_kill(nats_home, int(total * fraction), base))
            kill(relay)
            base = asyncio.run(settled_messages(nats_home))
            kills.append((seen, base))
            relay = start_ticketing(nats_home, "run", "relay")

        # Then each kill hit a relay in the middle of its work: (seen, settled) stream counts
        assert all(after < total for _, after in kills), (total, kills)
        # and the restarted relay completes the stream: one message per event, in order
        check_invariant(nats_home, service.app)
        alive(relay, "relay", nats_home)
    finally:
        stop(relay)


# --- 3. NATS down for a whole burst of Python API commands ---------------------------------

BURST = 2_000
BURST_TICKETS = 100


def test_commands_succeed_while_nats_is_down_and_reach_the_stream_after(
    nats_home: Path, service: CommandService
) -> None:
    # Given a relay that has published the tickets opened so far
    relay = start_ticketing(nats_home, "run", "relay")
    try:
        opened = service.execute_many(
            [
                m.OpenTicket(
                    command_id=f"s3-open-{t}",
                    account_id=ACCOUNT,
                    requester=f"user{t}@acme.example",
                    subject=f"problem {t}",
                )
                for t in range(BURST_TICKETS)
            ]
        )
        assert all(r.ok for r in opened)
        wait_for_relay(nats_home, service.app, timeout=30)
        ticket_ids = [UUID(r.ticket_id) for r in opened if r.ticket_id]

        # When the nats-server is SIGKILLed and 2,000 commands run through the Python API
        url = kill_nats(nats_home)
        replies: list[Reply] = []
        for n in range(BURST):
            ticket_id = ticket_ids[n % BURST_TICKETS]
            command: m.Command = (
                m.AddComment(ticket_id=ticket_id, body=f"while NATS is down {n}", actor=AGENT)
                if n % 2
                else m.TagTicket(ticket_id=ticket_id, tags=[f"down{n}"])
            )
            replies.append(service.execute(command))

        # Then every command succeeded: NATS being down never fails a command
        failed = [r.as_dict() for r in replies if not r.ok]
        assert failed == [], failed[:5]

        # and once NATS is back the relay publishes all of it, exactly once and in order
        restart_nats(nats_home, url)
        check_invariant(nats_home, service.app, [*opened, *replies])
        alive(relay, "relay", nats_home)
    finally:
        stop(relay)
